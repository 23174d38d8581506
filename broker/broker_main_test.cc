// relay-broker as a process: what it prints and how it starts and stops.

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "broker/jetstream_group_store.h"
#include "broker/storage/file_event_log.h"
#include "common/events/publisher.h"
#include "common/events/subscriber.h"
#include "common/grpc_channel.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/dev_pki.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::broker {
namespace {

using relay::testing::IsOk;
using relay::testing::SampleValue;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The `msg` of every line of `text` that is a JSON object; a line that is
// not fails the test, naming it.
std::vector<std::string> JsonMessages(const std::string& text) {
  std::vector<std::string> messages;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct object;
    google::protobuf::util::Status parsed =
        google::protobuf::util::JsonStringToMessage(std::string(line), &object);
    EXPECT_TRUE(parsed.ok()) << "not a JSON line: " << line;
    if (!parsed.ok()) continue;
    auto msg = object.fields().find("msg");
    EXPECT_NE(msg, object.fields().end()) << "no msg: " << line;
    if (msg != object.fields().end()) messages.push_back(msg->second.string_value());
  }
  return messages;
}

// Writes `n` events to topic `orders` under `data_dir`, with the broker's
// own storage, and returns the path of the segment written.
std::string WriteTopic(const std::string& data_dir, int n) {
  FileEventLog::Options options;
  options.data_dir = data_dir;
  auto log = FileEventLog::Open(options);
  EXPECT_THAT(log, IsOk());
  if (!log.ok()) return "";
  std::vector<Event> events(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) events[static_cast<size_t>(i)].set_id(absl::StrCat("e-", i));
  absl::Notification done;
  (*log)->Append("orders", std::move(events),
                 [&](absl::StatusOr<std::vector<AppendResult>>) { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_THAT((*log)->Close(), IsOk());
  for (const auto& entry : std::filesystem::directory_iterator(data_dir + "/topics/orders")) {
    if (entry.path().extension() == ".log") return entry.path().string();
  }
  ADD_FAILURE() << "no segment written";
  return "";
}

class BrokerProcess {
 public:
  explicit BrokerProcess(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
  }

  // Starts relay-broker on a free port; returns the port (0: it did not
  // start serving).
  int Start(const std::vector<std::string>& extra = {}) {
    if (!Launch(extra)) return 0;
    return WaitPort(absl::Seconds(20));
  }
  // Starts it without waiting for it to serve (a standby does not).
  bool Launch(const std::vector<std::string>& extra) {
    std::filesystem::remove(port_file());
    std::vector<std::string> argv = {RELAY_BROKER_BIN, "--listen=127.0.0.1:0",
                                     "--data_dir=" + dir_ + "/data", "--port_file=" + port_file()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return proc_.Start(argv, log_path());
  }
  // The port once it serves (0: not within `timeout`).
  int WaitPort(absl::Duration timeout) {
    return relay::testing::WaitForPortFile(port_file(), timeout);
  }
  bool serving() const { return std::filesystem::exists(port_file()); }
  void Signal(int signal) { ::kill(proc_.pid(), signal); }
  // Starts relay-broker expecting it to exit by itself; returns the wait
  // status.
  int RunToExit(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {RELAY_BROKER_BIN, "--listen=127.0.0.1:0",
                                     "--data_dir=" + dir_ + "/data"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!proc_.Start(argv, log_path())) return -1;
    return proc_.Stop(0, absl::Seconds(20));
  }
  int Stop(int signal, absl::Duration timeout = absl::Seconds(20)) {
    return proc_.Stop(signal, timeout);
  }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_path() const { return dir_ + "/broker.log"; }
  std::string log() const { return ReadFile(log_path()); }
  pid_t pid() const { return proc_.pid(); }

 private:
  std::string port_file() const { return dir_ + "/port"; }
  std::string dir_;
  relay::testing::Subprocess proc_;
};

// Issue 7 item 9: the storage layer's lines (here the torn-tail recovery)
// used to be plain text on stderr whatever --log_format said.
TEST(BrokerMain, WithJsonLogsEveryLineIsJsonIncludingStorageRecovery) {
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  std::filesystem::create_directories(broker.data_dir());
  std::string segment = WriteTopic(broker.data_dir(), 3);
  ASSERT_FALSE(segment.empty());
  {
    std::ofstream torn(segment, std::ios::app | std::ios::binary);
    torn << std::string(7, '\x01');  // a torn write: less than a record header
  }

  ASSERT_GT(broker.Start({"--log_format=json"}), 0) << broker.log();
  int status = broker.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << broker.log();

  std::vector<std::string> messages = JsonMessages(broker.log());
  EXPECT_THAT(messages, ::testing::Contains(HasSubstr("torn tail cut off"))) << broker.log();
  EXPECT_THAT(messages, ::testing::Contains(HasSubstr("topic loaded"))) << broker.log();
  EXPECT_THAT(messages, ::testing::Contains("serving"));
  EXPECT_THAT(messages, ::testing::Contains("stopped"));
}

// Issue 7, item 7: SIGTERM waited the whole --shutdown_grace (5 s) whenever
// a client held a stream open, even an idle subscriber. Idle streams are now
// ended first, so a clean stop takes well under a second.
TEST(BrokerMain, SigtermWithAnIdleSubscriberExitsBeforeTheGracePeriod) {
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  int port = broker.Start({"--shutdown_grace=5s"});
  ASSERT_GT(port, 0) << broker.log();

  relay::events::Subscriber::Options options;
  options.topic = "orders";
  options.group = "idle-group";
  options.filter_types = false;
  relay::events::Subscriber subscriber(relay::MakeChannel(absl::StrCat("127.0.0.1:", port)),
                                       options);
  subscriber.Start();
  ASSERT_TRUE(subscriber.WaitUntilOpen(absl::Seconds(20))) << broker.log();

  // Stop() gives up (-1) after the timeout: 2 s is well below the grace.
  int status = broker.Stop(SIGTERM, absl::Seconds(2));
  ASSERT_NE(status, -1) << "still running 2 s after SIGTERM\n" << broker.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << broker.log();
  EXPECT_THAT(broker.log(), HasSubstr("member left"));
  subscriber.Stop();
}

// Issue 7, item 7: a --max_event_bytes above the gRPC receive limit made a
// publisher resend such an event forever; the broker refuses it at start.
TEST(BrokerMain, AMaxEventBytesAboveTheMessageLimitIsAFatalStartError) {
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  std::filesystem::create_directories(broker.data_dir());
  int status = broker.RunToExit({"--max_event_bytes=67108864"});
  ASSERT_TRUE(WIFEXITED(status)) << broker.log();
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(broker.log(), HasSubstr("relay-broker: max_event_bytes 67108864 does not fit"));
}

// SIGHUP re-reads --policy: a bad file is refused (logged, the old policy
// stays in force), a good one applies to the next call; the broker never
// stops for it.
TEST(BrokerMain, SighupReloadsThePolicyAndRefusesABadOne) {
  relay::testing::TempDir dir;
  const std::string pki = dir.Join("pki");
  ASSERT_TRUE(relay::testing::RunDevPki(pki).ok());
  const std::string policy = dir.Join("policy.conf");
  std::filesystem::copy_file(RELAY_SHIPPED_POLICY, policy);
  BrokerProcess broker(dir.Join("broker"));
  const int port = broker.Start(
      {"--tls_cert=" + pki + "/broker.pem", "--tls_ca=" + pki + "/ca.crt", "--policy=" + policy});
  ASSERT_GT(port, 0) << broker.log();
  auto payment = v1::Broker::NewStub(relay::MakeChannel(
      absl::StrCat("127.0.0.1:", port), {}, relay::testing::PkiFiles(pki, "payment-service")));
  auto list_topics = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListTopicsResponse response;
    return payment->ListTopics(&context, {}, &response).error_code();
  };
  ASSERT_EQ(list_topics(), grpc::StatusCode::PERMISSION_DENIED);

  {
    std::ofstream out(policy, std::ios::app);
    out << "allow payment-service admin extra\n";
  }
  broker.Signal(SIGHUP);
  ASSERT_TRUE(relay::testing::WaitFor([&] {
    return absl::StrContains(broker.log(), "new policy refused");
  })) << broker.log();
  EXPECT_THAT(broker.log(), HasSubstr("admin takes nothing more"));
  EXPECT_EQ(list_topics(), grpc::StatusCode::PERMISSION_DENIED);

  std::filesystem::copy_file(RELAY_SHIPPED_POLICY, policy,
                             std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream out(policy, std::ios::app);
    out << "allow payment-service admin\n";
  }
  broker.Signal(SIGHUP);
  ASSERT_TRUE(relay::testing::WaitFor([&] {
    return absl::StrContains(broker.log(), "SIGHUP: policy reloaded");
  })) << broker.log();
  EXPECT_EQ(list_topics(), grpc::StatusCode::OK);
  const int status = broker.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << broker.log();
}

// Issue 10: /metrics on the real binary counts exactly what a client did.
TEST(BrokerMain, ServesMetricsThatCountExactlyTheEventsPublishedDeliveredAndAcked) {
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  const int port = broker.Start({"--metrics_listen=127.0.0.1:0"});
  ASSERT_GT(port, 0) << broker.log();
  // "metrics served listen=127.0.0.1:0 port=NNNN path=/metrics"
  int metrics_port = 0;
  for (absl::string_view line : absl::StrSplit(broker.log(), '\n')) {
    if (!absl::StrContains(line, "metrics served")) continue;
    size_t at = line.find(" port=");
    ASSERT_NE(at, absl::string_view::npos) << line;
    absl::string_view rest = line.substr(at + 6);
    ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &metrics_port)) << line;
  }
  ASSERT_GT(metrics_port, 0) << broker.log();
  httplib::Client http("127.0.0.1", metrics_port);
  auto scrape = [&] {
    httplib::Result res = http.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
  };

  constexpr int kEvents = 25;
  auto stub = v1::Broker::NewStub(relay::MakeChannel(absl::StrCat("127.0.0.1:", port)));
  v1::PublishRequest request;
  request.set_topic("orders");
  for (int i = 0; i < kEvents; ++i) {
    Event* e = request.add_events();
    e->set_id(absl::StrCat("m-", i));
    e->set_type("order.placed");
  }
  *request.add_events() = request.events(0);  // a repeat: deduplicated
  // Types the subscriber does not handle: passed over by its group's filter.
  constexpr int kOther = 5;
  for (int i = 0; i < kOther; ++i) {
    Event* e = request.add_events();
    e->set_id(absl::StrCat("other-", i));
    e->set_type("order.noted");
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::PublishResponse response;
    ASSERT_TRUE(stub->Publish(&context, request, &response).ok());
  }

  relay::events::Subscriber::Options options;
  options.topic = "orders";
  options.group = "metrics-group";
  options.filter_types = true;
  relay::events::Subscriber subscriber(relay::MakeChannel(absl::StrCat("127.0.0.1:", port)),
                                       options);
  std::atomic<int> handled{0};
  subscriber.On("order.placed", [&](const Event&, const relay::events::DeliveryInfo&) {
    handled.fetch_add(1);
    return absl::OkStatus();
  });
  subscriber.Start();
  const std::string group = "{topic=\"orders\",group=\"metrics-group\"}";
  std::string body;
  // Acks travel after the handler returns: wait for the broker to count them.
  EXPECT_TRUE(relay::testing::WaitFor([&] {
    body = scrape();
    return SampleValue(body, "relay_broker_acks_total" + group) == kEvents &&
           SampleValue(body, "relay_broker_group_lag" + group) == 0;
  })) << body;
  subscriber.Stop();
  EXPECT_EQ(handled.load(), kEvents);

  EXPECT_EQ(SampleValue(body, "relay_broker_events_appended_total{topic=\"orders\"}"),
            kEvents + kOther);
  EXPECT_EQ(SampleValue(body, "relay_broker_filtered_total" + group), kOther);
  EXPECT_EQ(SampleValue(body, "relay_broker_publish_duplicates_total{topic=\"orders\"}"), 1);
  EXPECT_EQ(SampleValue(body, "relay_broker_deliveries_total" + group), kEvents);
  EXPECT_EQ(SampleValue(body, "relay_broker_nacks_total" + group), 0);
  EXPECT_EQ(SampleValue(body, "relay_broker_log_events{topic=\"orders\"}"), kEvents + kOther);
  EXPECT_GT(SampleValue(body, "relay_broker_appended_bytes_total{topic=\"orders\"}"), 0);
  EXPECT_GT(SampleValue(body, "relay_broker_log_bytes{topic=\"orders\"}"), 0);
  // One publish batch: at least one fsync, and one answer.
  EXPECT_GE(SampleValue(body, "relay_broker_fsync_seconds_count"), 1);
  EXPECT_EQ(SampleValue(body, "relay_broker_publish_durable_seconds_count"), 1);
  EXPECT_GT(SampleValue(body, "process_resident_memory_bytes"), 0);
  EXPECT_GT(SampleValue(body, "process_start_time_seconds"), 0);
  EXPECT_THAT(body, HasSubstr("relay_build_info{binary=\"relay-broker\",version=\""));
  EXPECT_THAT(body, HasSubstr("# TYPE relay_broker_fsync_seconds histogram"));

  const int status = broker.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << broker.log();
}

// A metrics address that cannot be served stops the start with one line.
TEST(BrokerMain, ABadMetricsAddressIsAFatalStartErrorOfOneLine) {
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  std::filesystem::create_directories(broker.data_dir());
  const int status = broker.RunToExit({"--metrics_listen=" + std::string(3000, 'x')});
  ASSERT_TRUE(WIFEXITED(status)) << broker.log();
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(broker.log(), HasSubstr("relay-broker: metrics address 'xxxx"));
  EXPECT_LT(broker.log().size(), 300u) << broker.log();
}

TEST(BrokerMain, BadTlsFilesOrAPolicyWithoutThemAreAFatalStartErrorOfOneLine) {
  relay::testing::TempDir dir;
  const std::string pki = dir.Join("pki");
  ASSERT_TRUE(relay::testing::RunDevPki(pki).ok());
  struct Case {
    std::vector<std::string> flags;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--tls_cert=" + pki + "/broker.crt", "--tls_key=" + pki + "/relayctl.key"},
       "is not the key of the certificate"},
      {{"--tls_cert=" + pki + "/nope.crt", "--tls_key=" + pki + "/broker.key"},
       "nope.crt': cannot read the file"},
      {{"--tls_ca=" + pki + "/ca.crt"}, "a TLS server needs its certificate and key"},
      {{"--policy=" RELAY_SHIPPED_POLICY}, "--policy needs mutual TLS"},
  };
  for (const Case& c : cases) {
    BrokerProcess broker(dir.Join(absl::StrCat("b", &c - cases.data())));
    std::filesystem::create_directories(broker.data_dir());
    const int status = broker.RunToExit(c.flags);
    ASSERT_TRUE(WIFEXITED(status)) << broker.log();
    EXPECT_EQ(WEXITSTATUS(status), 1) << broker.log();
    EXPECT_THAT(broker.log(), HasSubstr(c.error));
    EXPECT_THAT(broker.log(), HasSubstr("relay-broker: "));
  }
}

TEST(BrokerMain, BadStorageFlagsAreAFatalStartErrorOfOneLine) {
  struct Case {
    std::vector<std::string> flags;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--storage=foo"}, "relay-broker: --storage must be file or jetstream, got 'foo'"},
      {{"--storage=jetstream", "--replicas=6"}, "relay-broker: --replicas must be 1 to 5, got 6"},
      {{"--storage=jetstream", "--nats=nats://127.0.0.1:4222,"},
       "relay-broker: --nats must be URL[,URL...] with no empty URL"},
      // The error quotes the flag, but never its password.
      {{"--storage=jetstream", "--nats=nats://u:s3cret@h:4222,"}, "nats://u:***@h:4222"},
      {{"--max_deliveries=0"}, "relay-broker: --max_deliveries must be 1 to 1000, got 0"},
      {{"--max_deliveries=1001"}, "relay-broker: --max_deliveries must be 1 to 1000, got 1001"},
      // Checked before NATS is asked for anything (none listens here).
      {{"--storage=jetstream", "--nats=nats://127.0.0.1:1", "--lease_ttl=500ms"},
       "relay-broker: --lease_ttl must be 1s to 60s, got 500ms"},
  };
  for (const Case& c : cases) {
    relay::testing::TempDir dir;
    BrokerProcess broker(dir.path());
    int status = broker.RunToExit(c.flags);
    ASSERT_TRUE(WIFEXITED(status)) << broker.log();
    EXPECT_EQ(WEXITSTATUS(status), 1) << c.flags[0];
    EXPECT_THAT(broker.log(), HasSubstr(c.error));
    EXPECT_THAT(broker.log(), ::testing::Not(HasSubstr("s3cret")));
  }
}

TEST(BrokerMain, OnJetStreamItServesNamesTheStorageAndWritesNothingToTheDataDir) {
  absl::StatusOr<std::unique_ptr<relay::testing::NatsServer>> nats =
      relay::testing::NatsServer::Start();
  ASSERT_THAT(nats, IsOk());
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.path());
  // --fsync is the file backend's: ignored here, even a bad value.
  const int port = broker.Start(
      {"--storage=jetstream", "--nats=" + (*nats)->urls(), "--replicas=1", "--fsync=bogus"});
  ASSERT_GT(port, 0) << broker.log();
  EXPECT_THAT(broker.log(), HasSubstr("storage=jetstream"));
  EXPECT_THAT(broker.log(), HasSubstr("nats=" + (*nats)->urls()));
  EXPECT_THAT(broker.log(), HasSubstr("group_bucket=relay_groups"));
  // Topics and group checkpoints are all in JetStream.
  EXPECT_FALSE(std::filesystem::exists(broker.data_dir()));
  const int status = broker.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << broker.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << broker.log();
}

// The committed offset of `group` on "orders" in the replicated group
// bucket (-1: no such group, or NATS did not answer).
int64_t ReplicatedCommitted(const std::string& nats, const std::string& group) {
  JetStreamGroupStore::Options options;
  options.servers = nats;
  absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store = JetStreamGroupStore::Open(options);
  if (!store.ok()) return -1;
  absl::StatusOr<std::vector<GroupCheckpoint>> all = (*store)->LoadAll();
  if (!all.ok()) return -1;
  for (const GroupCheckpoint& c : *all) {
    if (c.topic() == "orders" && c.group() == group) {
      return static_cast<int64_t>(c.committed_offset());
    }
  }
  return -1;
}

// Publishes events "<prefix>0".. to "orders" on the broker at `port`, each
// answered within 20 s (the Publisher retries an unanswered event for good:
// a broker that never stores it must fail the test, not hang it).
void PublishTo(int port, const std::string& prefix, int n) {
  relay::events::Publisher publisher(relay::MakeChannel(absl::StrCat("127.0.0.1:", port)), {});
  for (int i = 0; i < n; ++i) {
    relay::events::v1::Event e;
    e.set_id(absl::StrCat(prefix, i));
    e.set_type("thing.happened");
    std::future<absl::StatusOr<uint64_t>> done = publisher.Publish("orders", e);
    ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready) << e.id();
    ASSERT_THAT(done.get(), IsOk());
  }
}

// Consumes "orders" as group "g" on the broker at `port` until `until`
// offsets were handled (acking each); returns the offsets in the order
// handled.
std::vector<uint64_t> ConsumeFrom(int port, size_t until) {
  absl::Mutex mu;
  std::vector<uint64_t> offsets;
  relay::events::Subscriber::Options options;
  options.topic = "orders";
  options.group = "g";
  options.start.set_earliest(true);
  relay::events::Subscriber sub(relay::MakeChannel(absl::StrCat("127.0.0.1:", port)), options);
  sub.On("thing.happened",
         [&](const relay::events::v1::Event& e, const relay::events::DeliveryInfo&) {
           absl::MutexLock lock(&mu);
           offsets.push_back(e.offset());
           return absl::OkStatus();
         });
  sub.Start();
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return offsets.size() >= until;
      },
      absl::Seconds(30)));
  sub.Stop();
  absl::MutexLock lock(&mu);
  return offsets;
}

// Two relay-brokers on one fresh nats-server, --lease_ttl=2s: `a` started
// first and serving, `b` launched after it and standing by.
class BrokerStandby : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<relay::testing::NatsServer>> nats =
        relay::testing::NatsServer::Start();
    ASSERT_THAT(nats, IsOk());
    nats_ = std::move(*nats);
    flags_ = {"--storage=jetstream", "--nats=" + nats_->urls(), "--lease_ttl=2s"};
    port_a_ = a_.Start(flags_);
    ASSERT_GT(port_a_, 0) << a_.log();
    ASSERT_TRUE(b_.Launch(flags_));
    ASSERT_TRUE(StandsBy(b_)) << b_.log();
  }

  // Waits until `broker` logs that it stands by.
  static bool StandsBy(const BrokerProcess& broker) {
    return relay::testing::WaitFor(
        [&] { return absl::StrContains(broker.log(), "standby: waiting for the broker lease"); },
        absl::Seconds(20));
  }

  // Waits until the bucket holds `committed` for group g.
  bool Replicated(int64_t committed) {
    return relay::testing::WaitFor(
        [&] { return ReplicatedCommitted(nats_->urls(), "g") == committed; }, absl::Seconds(20));
  }

  std::unique_ptr<relay::testing::NatsServer> nats_;
  relay::testing::TempDir dir_;
  std::vector<std::string> flags_;
  BrokerProcess a_{dir_.Join("a")};
  BrokerProcess b_{dir_.Join("b")};
  int port_a_ = 0;
};

// Issue 8: two brokers on one NATS. One holds the lease and serves; the
// other stands by without listening. kill -9 of the active one: the standby
// takes over and the group resumes from its replicated checkpoint; the
// killed one, restarted, stands by; a SIGTERM of the active one hands the
// lease back at once.
TEST_F(BrokerStandby, TheStandbyTakesOverAfterKillNineAndGroupsResumeFromTheBucket) {
  EXPECT_FALSE(b_.serving());
  ASSERT_NO_FATAL_FAILURE(PublishTo(port_a_, "first-", 3));
  EXPECT_EQ(ConsumeFrom(port_a_, 3), (std::vector<uint64_t>{0, 1, 2}));
  // Replicated: the bucket has the group's progress.
  ASSERT_TRUE(Replicated(3));
  ASSERT_NO_FATAL_FAILURE(PublishTo(port_a_, "second-", 2));
  EXPECT_FALSE(b_.serving());

  const absl::Time killed = absl::Now();
  a_.Stop(SIGKILL);
  const int port_b = b_.WaitPort(absl::Seconds(30));
  ASSERT_GT(port_b, 0) << b_.log();
  std::cerr << "takeover after kill -9: " << absl::FormatDuration(absl::Now() - killed) << "\n";
  EXPECT_THAT(b_.log(), HasSubstr("broker lease acquired: this broker is active"));
  // The group goes on where the bucket says: 3, not 0.
  EXPECT_EQ(ConsumeFrom(port_b, 2), (std::vector<uint64_t>{3, 4}));

  // The killed broker comes back as the standby.
  ASSERT_TRUE(a_.Launch(flags_));
  ASSERT_TRUE(StandsBy(a_)) << a_.log();
  EXPECT_FALSE(a_.serving());

  // A SIGTERM of the active broker releases the lease: no ttl to wait.
  const int status = b_.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << b_.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << b_.log();
  EXPECT_THAT(b_.log(), HasSubstr("broker lease released"));
  EXPECT_GT(a_.WaitPort(absl::Seconds(30)), 0) << a_.log();
  EXPECT_EQ(a_.Stop(SIGTERM), 0) << a_.log();
}

// Issue 8: the active broker is paused (SIGSTOP) for longer than the lease.
// The standby takes over and the group advances there; the paused one,
// resumed, finds its lease taken and exits 3 -- and the group's replicated
// progress is not moved back by it.
TEST_F(BrokerStandby, APausedActiveBrokerLosesTheLeaseAndExitsWithoutMovingAGroup) {
  ASSERT_NO_FATAL_FAILURE(PublishTo(port_a_, "first-", 3));
  EXPECT_EQ(ConsumeFrom(port_a_, 3).size(), 3u);
  ASSERT_TRUE(Replicated(3));

  a_.Signal(SIGSTOP);
  const int port_b = b_.WaitPort(absl::Seconds(30));
  ASSERT_GT(port_b, 0) << b_.log();
  ASSERT_NO_FATAL_FAILURE(PublishTo(port_b, "second-", 2));
  EXPECT_EQ(ConsumeFrom(port_b, 2), (std::vector<uint64_t>{3, 4}));
  ASSERT_TRUE(Replicated(5));

  a_.Signal(SIGCONT);
  const int status = a_.Stop(0, absl::Seconds(30));  // no signal: it exits by itself
  ASSERT_TRUE(WIFEXITED(status)) << a_.log();
  EXPECT_EQ(WEXITSTATUS(status), 3) << a_.log();
  EXPECT_THAT(a_.log(), HasSubstr("exiting: lost the broker lease"));
  EXPECT_EQ(ReplicatedCommitted(nats_->urls(), "g"), 5);
  EXPECT_GT(b_.WaitPort(absl::Seconds(1)), 0);
  EXPECT_EQ(b_.Stop(SIGTERM), 0) << b_.log();
}

// docs/JETSTREAM.md ("What the broker's NATS user needs") lists the subjects
// a broker's NATS user must be allowed. A nats-server with authorization
// gives user `relay` exactly those (a bucket of one copy needs no stream
// update; it is listed and allowed all the same) and user `nokv` the same
// less the group bucket's subjects. `relay` runs a broker through its
// life: the lease, topic streams, publishes, a group's deliveries, acks
// and checkpoints, Read, a retention pass that purges, a restart that
// loads the group.
// The server logs every subject it refused: none for `relay`, while `nokv`
// is refused its first checkpoint (so the list is what the server enforces).
std::string PermissionsConfig() {
  const std::string documented = R"("relay.*", "$KV.relay_lease.>", "$JS.API.INFO",
      "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.LIST",
      "$JS.API.STREAM.PURGE.*", "$JS.API.STREAM.UPDATE.KV_*", "$JS.API.STREAM.MSG.GET.*",
      "$JS.API.DIRECT.GET.>")";
  return absl::StrCat(R"(authorization {
  users = [
    {user: admin, password: admin}
    {user: relay, password: secret, permissions: {
      publish: {allow: ["$KV.relay_groups.>", )",
                      documented, R"(]}
      subscribe: {allow: ["_INBOX.>"]}}}
    {user: nokv, password: secret, permissions: {
      publish: {allow: [)",
                      documented, R"(]}
      subscribe: {allow: ["_INBOX.>"]}}}
  ]
}
no_auth_user: admin
)");
}

TEST(BrokerMain, OnJetStreamTheDocumentedNatsPermissionsAreAllTheBrokerUses) {
  absl::StatusOr<std::unique_ptr<relay::testing::NatsServer>> nats =
      relay::testing::NatsServer::Start(1, absl::Seconds(30), PermissionsConfig());
  ASSERT_THAT(nats, IsOk());
  const std::string port = (*nats)->url(0).substr((*nats)->url(0).rfind(':') + 1);
  relay::testing::TempDir dir;
  BrokerProcess broker(dir.Join("relay"));
  const std::vector<std::string> flags = {
      "--storage=jetstream", "--nats=nats://relay:secret@127.0.0.1:" + port,
      "--lease_ttl=20s",       // outlives the NATS restart below
      "--retention_bytes=1"};  // retention purges what the group has acked
  int broker_port = broker.Start(flags);
  ASSERT_GT(broker_port, 0) << broker.log() << ReadFile((*nats)->log_path(0));
  // The password stays out of the broker's log.
  EXPECT_THAT(broker.log(), HasSubstr("nats=nats://relay:***@127.0.0.1:"));
  EXPECT_THAT(broker.log(), ::testing::Not(HasSubstr("secret")));
  ASSERT_NO_FATAL_FAILURE(PublishTo(broker_port, "first-", 3)) << ReadFile((*nats)->log_path(0));
  EXPECT_EQ(ConsumeFrom(broker_port, 3), (std::vector<uint64_t>{0, 1, 2}));
  ASSERT_TRUE(relay::testing::WaitFor(
      [&] { return ReplicatedCommitted((*nats)->urls(), "g") == 3; }, absl::Seconds(20)));
  {
    auto stub = v1::Broker::NewStub(relay::MakeChannel(absl::StrCat("127.0.0.1:", broker_port)));
    grpc::ClientContext read_ctx;
    v1::ReadRequest read;
    read.set_topic("orders");
    v1::ReadResponse events;
    ASSERT_TRUE(stub->Read(&read_ctx, read, &events).ok());
    ASSERT_GE(events.events_size(), 1);
    EXPECT_EQ(events.events(events.events_size() - 1).id(), "first-2");
    // A retention pass (every 10 s) lists the streams and purges below the
    // group's committed offset.
    EXPECT_TRUE(relay::testing::WaitFor(
        [&] {
          grpc::ClientContext list_ctx;
          v1::ListTopicsResponse topics;
          return stub->ListTopics(&list_ctx, v1::ListTopicsRequest(), &topics).ok() &&
                 topics.topics_size() == 1 && topics.topics(0).first_offset() == 3;
        },
        absl::Seconds(30)))
        << ReadFile((*nats)->log_path(0));
  }
  // The server the connection comes back to is logged without the password.
  (*nats)->Kill(0);
  ASSERT_THAT((*nats)->Restart(0), IsOk());
  ASSERT_TRUE(relay::testing::WaitFor(
      [&] { return absl::StrContains(broker.log(), "storage: NATS connection back"); },
      absl::Seconds(20)))
      << broker.log();
  EXPECT_THAT(broker.log(), ::testing::Not(HasSubstr("secret")));
  ASSERT_EQ(broker.Stop(SIGTERM), 0) << broker.log();
  broker_port = broker.Start(flags);
  ASSERT_GT(broker_port, 0) << broker.log();
  ASSERT_NO_FATAL_FAILURE(PublishTo(broker_port, "second-", 2));
  EXPECT_EQ(ConsumeFrom(broker_port, 2), (std::vector<uint64_t>{3, 4}));
  ASSERT_EQ(broker.Stop(SIGTERM), 0) << broker.log();
  EXPECT_THAT(ReadFile((*nats)->log_path(0)), ::testing::Not(HasSubstr("Violation")));

  // The same less the group bucket's subjects: the server refuses them.
  BrokerProcess nokv(dir.Join("nokv"));
  const int nokv_port = nokv.Start(
      {"--storage=jetstream", "--nats=nats://nokv:secret@127.0.0.1:" + port, "--lease_ttl=2s"});
  ASSERT_GT(nokv_port, 0) << nokv.log();
  relay::events::Subscriber::Options options;
  options.topic = "orders";
  options.group = "h";
  relay::events::Subscriber sub(relay::MakeChannel(absl::StrCat("127.0.0.1:", nokv_port)), options);
  sub.On("thing.happened", [](const relay::events::v1::Event&, const relay::events::DeliveryInfo&) {
    return absl::OkStatus();
  });
  sub.Start();
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] {
        return absl::StrContains(ReadFile((*nats)->log_path(0)),
                                 "Publish Violation - User \"nokv\", Subject \"$KV.relay_groups.");
      },
      absl::Seconds(20)))
      << ReadFile((*nats)->log_path(0));
  sub.Stop();
  nokv.Stop(SIGKILL);
}

}  // namespace
}  // namespace relay::broker
