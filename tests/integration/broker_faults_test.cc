// The broker under partial faults, over real gRPC: a damaged segment, a
// hung consumer, a changed type filter, an unreadable checkpoint, a failing
// checkpoint disk, a topic name at the length limit. The delivery rules are
// tested against both storage backends (BrokerFaultsTest/<test>/file,
// /jetstream); damaged segment files and checkpoint files only against the
// file backend (FileBrokerFaultsTest; the JetStream group store has its own,
// broker/jetstream_group_store_test.cc).

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "broker/group_store.h"
#include "broker/storage/fault_injection_env.h"
#include "broker/storage/jetstream_names.h"
#include "common/events/subscriber.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using broker::v1::PublishRequest;
using broker::v1::PublishResponse;
using broker::v1::SubscribeRequest;
using broker::v1::SubscribeResponse;
using events::Subscriber;
using events::v1::Event;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

class BrokerFaultsTest : public ::testing::TestWithParam<broker::Storage> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::TestBackend>> backend =
        testing::TestBackend::Start(GetParam());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
    backend_->Apply(&options_);
  }

  void Start() {
    absl::StatusOr<std::unique_ptr<broker::BrokerServer>> s =
        testing::StartBroker(dir_.path(), options_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    stub_ = broker::v1::Broker::NewStub(testing::Channel(server_->target()));
  }

  void Stop() {
    server_->Shutdown(absl::Seconds(1));
    server_.reset();
  }

  // Publishes events "<topic>-<i>" of type t.<i % types>, each with its own key.
  void Publish(const std::string& topic, int first, int n, int types = 1) {
    PublishRequest req;
    req.set_topic(topic);
    for (int i = first; i < first + n; ++i) {
      Event* e = req.add_events();
      e->set_id(absl::StrCat(topic, "-", i));
      e->set_type(absl::StrCat("t.", i % types));
      e->set_key(absl::StrCat("k", i));
      e->set_data(std::string(100, 'd'));
    }
    grpc::ClientContext ctx;
    PublishResponse resp;
    grpc::Status s = stub_->Publish(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  broker::v1::GroupInfo Group(const std::string& topic, const std::string& group) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    broker::v1::DescribeGroupsRequest req;
    req.set_topic(topic);
    req.set_group(group);
    broker::v1::DescribeGroupsResponse resp;
    EXPECT_TRUE(stub_->DescribeGroups(&ctx, req, &resp).ok());
    return resp.groups_size() == 1 ? resp.groups(0) : broker::v1::GroupInfo();
  }

  // A subscriber that acks everything of `types` (empty: every type) and
  // counts distinct event ids.
  std::unique_ptr<Subscriber> Consume(const std::string& topic, const std::string& group,
                                      std::vector<std::string> types, std::set<std::string>* ids,
                                      absl::Duration ack_deadline = absl::Seconds(5)) {
    Subscriber::Options o;
    o.topic = topic;
    o.group = group;
    o.ack_deadline = ack_deadline;
    o.filter_types = !types.empty();
    auto sub = std::make_unique<Subscriber>(testing::Channel(server_->target()), o);
    auto record = [this, ids](const Event& e, const events::DeliveryInfo&) {
      absl::MutexLock lock(&mu_);
      ids->insert(e.id());
      return absl::OkStatus();
    };
    if (types.empty()) {
      sub->OnBatch([this, ids](absl::Span<const Subscriber::Delivery> batch) {
        absl::MutexLock lock(&mu_);
        for (const Subscriber::Delivery& d : batch) ids->insert(d.event->id());
        return std::vector<absl::Status>(batch.size(), absl::OkStatus());
      });
    } else {
      for (const std::string& t : types) sub->On(t, record);
    }
    sub->Start();
    return sub;
  }

  using RawStream = grpc::ClientReaderWriter<SubscribeRequest, SubscribeResponse>;

  // A raw Subscribe stream of group "g" on `topic`, past its `opened`
  // answer (null, with a test failure, if the broker did not open it).
  std::unique_ptr<RawStream> OpenRaw(grpc::ClientContext* ctx, const std::string& topic,
                                     uint32_t max_in_flight = 0, int ack_deadline_ms = 0) {
    std::unique_ptr<RawStream> stream = stub_->Subscribe(ctx);
    SubscribeRequest open;
    open.mutable_open()->set_topic(topic);
    open.mutable_open()->set_group("g");
    open.mutable_open()->set_max_in_flight(max_in_flight);
    if (ack_deadline_ms > 0) {
      *open.mutable_open()->mutable_ack_deadline() =
          google::protobuf::util::TimeUtil::MillisecondsToDuration(ack_deadline_ms);
    }
    SubscribeResponse opened;
    if (!stream->Write(open) || !stream->Read(&opened) || !opened.has_opened()) {
      ADD_FAILURE() << "the broker did not open the stream";
      return nullptr;
    }
    return stream;
  }

  size_t Count(const std::set<std::string>& ids) {
    absl::MutexLock lock(&mu_);
    return ids.size();
  }

  TempDir dir_;
  testing::BrokerTestOptions options_;
  // Outlives the broker, which closes its log on destruction.
  std::unique_ptr<testing::TestBackend> backend_;
  std::unique_ptr<broker::BrokerServer> server_;
  std::unique_ptr<broker::v1::Broker::Stub> stub_;
  absl::Mutex mu_;
};

// Tests that damage the file backend's segment or checkpoint files: nothing
// of the kind exists with JetStream, which keeps its own store and checksums.
class FileBrokerFaultsTest : public BrokerFaultsTest {
 protected:
  // Fails the log's writes (or syncs) with `set_fault`; see the tests.
  void CheckAStorageFailureStopsTheLog(
      const std::function<void(broker::FaultInjectionEnv*, absl::Status)>& set_fault);
};

// Flips one byte in the middle of the file.
void Corrupt(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  f.seekp(size / 2);
  c = static_cast<char>(c ^ 0x5a);
  f.write(&c, 1);
}

std::vector<std::string> SegmentFiles(const std::string& topic_dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(topic_dir)) {
    if (entry.path().extension() == ".log") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_P(FileBrokerFaultsTest, DamagedSegmentIsSkippedAndNoTopicStops) {
  options_.segment_bytes = 4096;
  Start();
  Publish("damaged", 0, 60);
  Publish("healthy", 0, 5);
  Stop();
  std::vector<std::string> segments = SegmentFiles(dir_.Join("topics/damaged"));
  ASSERT_GE(segments.size(), 3u);
  Corrupt(segments[0]);  // an older segment, not the active one
  Start();

  std::set<std::string> damaged, healthy;
  auto a = Consume("damaged", "g", {}, &damaged);
  auto b = Consume("healthy", "g", {}, &healthy);
  ASSERT_TRUE(WaitFor([&] { return Count(healthy) == 5; }));
  ASSERT_TRUE(WaitFor([&] { return Group("damaged", "g").committed_offset() == 60; }));
  const broker::v1::GroupInfo info = Group("damaged", "g");
  EXPECT_GT(info.skipped_offsets(), 0u);
  EXPECT_EQ(Count(damaged) + info.skipped_offsets(), 60u);
  EXPECT_GT(Count(damaged), 30u);
  // New events still flow on both topics.
  Publish("damaged", 60, 3);
  Publish("healthy", 5, 3);
  EXPECT_TRUE(WaitFor([&] { return Count(healthy) == 8; }));
  EXPECT_TRUE(WaitFor([&] { return Group("damaged", "g").committed_offset() == 63; }));
  a->Stop();
  b->Stop();
  // And a clean stop does not hang.
  Stop();
}

TEST_P(FileBrokerFaultsTest, EventThatTurnsUnreadableIsSkippedAloneAfterRetries) {
  options_.segment_bytes = 4096;
  // Read from the disk: the events are not in memory any more.
  options_.tail_cache_bytes = 0;
  Start();
  Publish("rotting", 0, 60);
  std::vector<std::string> segments = SegmentFiles(dir_.Join("topics/rotting"));
  ASSERT_GE(segments.size(), 3u);
  // The disk goes bad under a running broker: one record of an older
  // segment no longer matches its CRC.
  Corrupt(segments[0]);

  std::set<std::string> ids;
  auto sub = Consume("rotting", "g", {}, &ids);
  // Read errors are retried (a second apart) before the event is skipped.
  ASSERT_TRUE(
      WaitFor([&] { return Group("rotting", "g").committed_offset() == 60; }, absl::Seconds(20)));
  EXPECT_EQ(Group("rotting", "g").skipped_offsets(), 1u);
  EXPECT_EQ(Count(ids), 59u);
  sub->Stop();
}

TEST_P(BrokerFaultsTest, HungConsumerDoesNotDeadLetterHealthyEvents) {
  options_.max_deliveries = 3;
  Start();
  Publish("orders", 0, 200);

  // The hung member: connected, reads nothing after the open, never acks.
  grpc::ClientContext hung_ctx;
  auto hung = OpenRaw(&hung_ctx, "orders", /*max_in_flight=*/100, /*ack_deadline_ms=*/300);
  ASSERT_NE(hung, nullptr);

  std::set<std::string> ids;
  auto healthy = Consume("orders", "g", {}, &ids, absl::Milliseconds(300));
  ASSERT_TRUE(
      WaitFor([&] { return Group("orders", "g").committed_offset() == 200; }, absl::Seconds(30)));
  const broker::v1::GroupInfo info = Group("orders", "g");
  EXPECT_EQ(info.dead_lettered(), 0u);
  EXPECT_EQ(Count(ids), 200u);
  bool saw_stalled = false;
  for (const broker::v1::MemberInfo& m : info.members()) saw_stalled |= m.stalled();
  EXPECT_TRUE(saw_stalled);
  healthy->Stop();
  hung_ctx.TryCancel();
}

TEST_P(BrokerFaultsTest, GroupTakesANewTypeFilterWhenTheOldMembersAreGone) {
  Start();
  std::set<std::string> v1_ids;
  auto v1 = Consume("orders", "svc", {"t.0"}, &v1_ids);
  Publish("orders", 0, 10, /*types=*/2);
  ASSERT_TRUE(WaitFor([&] { return Count(v1_ids) == 5; }));

  // A second version that handles one more type, while v1 is connected:
  // refused with a message that says why.
  {
    grpc::ClientContext ctx;
    auto stream = stub_->Subscribe(&ctx);
    SubscribeRequest open;
    open.mutable_open()->set_topic("orders");
    open.mutable_open()->set_group("svc");
    open.mutable_open()->add_types("t.0");
    open.mutable_open()->add_types("t.1");
    ASSERT_TRUE(stream->Write(open));
    grpc::Status s = testing::DrainAndFinish(*stream);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("connected with that filter"));
  }
  v1->Stop();
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "svc").members_size() == 0; }));

  // v2 alone: takes the new filter and consumes both types from now on.
  std::set<std::string> v2_ids;
  auto v2 = Consume("orders", "svc", {"t.0", "t.1"}, &v2_ids);
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "svc").types_size() == 2; }));
  Publish("orders", 10, 10, /*types=*/2);
  EXPECT_TRUE(WaitFor([&] { return Count(v2_ids) == 10; }));
  EXPECT_TRUE(WaitFor([&] { return Group("orders", "svc").committed_offset() == 20; }));
  v2->Stop();

  // The new filter survives a restart.
  Stop();
  Start();
  EXPECT_EQ(Group("orders", "svc").types_size(), 2);
}

TEST_P(FileBrokerFaultsTest, UnreadableCheckpointStopsTheStartWithAClearError) {
  Start();
  std::set<std::string> ids;
  auto sub = Consume("orders", "svc", {}, &ids);
  Publish("orders", 0, 3);
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "svc").committed_offset() == 3; }));
  sub->Stop();
  Stop();
  // A bit flipped in the group's first checkpoint record (more follow it:
  // the creation's, the progress', the stop's), not a torn tail.
  const std::string path = dir_.Join("groups/group_checkpoints.log");
  {
    std::fstream log(path, std::ios::binary | std::ios::in | std::ios::out);
    log.seekg(10);
    char c = 0;
    ASSERT_TRUE(log.get(c));
    log.seekp(10);
    log.put(static_cast<char>(c ^ 0x01));
  }
  absl::StatusOr<std::unique_ptr<broker::BrokerServer>> s =
      testing::StartBroker(dir_.path(), options_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.status().message(), HasSubstr(path));
}

TEST_P(FileBrokerFaultsTest, FailedCheckpointSaveIsRetried) {
  broker::FaultInjectionEnv env(broker::Env::Default());
  options_.groups_env = &env;
  Start();
  std::set<std::string> ids;
  auto sub = Consume("orders", "svc", {}, &ids);
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "svc").members_size() == 1; }));
  env.SetSyncError(absl::InternalError("disk hiccup"));
  Publish("orders", 0, 10);
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "svc").committed_offset() == 10; }));
  auto on_disk = [&] {
    absl::StatusOr<std::vector<broker::GroupCheckpoint>> all =
        broker::FileGroupStore(dir_.Join("groups")).LoadAll();
    return all.ok() && all->size() == 1 ? (*all)[0].committed_offset() : 0;
  };
  // While the disk fails nothing new is saved; once it recovers, the
  // progress is, without any further ack.
  EXPECT_LT(on_disk(), 10u);
  env.SetSyncError(absl::OkStatus());
  EXPECT_TRUE(WaitFor([&] { return on_disk() == 10; }));
  sub->Stop();
  Stop();  // before `env` goes
}

// A write or fsync the disk refuses (full, here) stops the file log for
// good: the broker answers NOT_SERVING to health checks from then on and
// tells its owner, and relay-broker exits so that a restart recovers the
// log from its files (tests/e2e/broker_crash_test.cc runs that). Nothing
// acknowledged is lost, nothing refused is stored (a failed fsync's batch
// was written: it is cut off), and a broker started again on the same
// files takes appends.
void FileBrokerFaultsTest::CheckAStorageFailureStopsTheLog(
    const std::function<void(broker::FaultInjectionEnv*, absl::Status)>& set_fault) {
  broker::FaultInjectionEnv env(broker::Env::Default());
  options_.log_env = &env;
  absl::Notification failed;
  absl::Mutex cause_mu;
  absl::Status cause;
  options_.on_storage_failure = [&](const absl::Status& status) {
    {
      absl::MutexLock lock(&cause_mu);
      cause = status;
    }
    failed.Notify();
  };
  Start();
  // The broker goes before what its log and listener use, whatever fails.
  absl::Cleanup stop = [this] {
    if (server_ != nullptr) Stop();
  };
  auto health = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = grpc::health::v1::Health::NewStub(testing::Channel(server_->target()))
                         ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.status();
  };
  auto publish = [&](int first, int n, PublishResponse* resp) {
    PublishRequest req;
    req.set_topic("orders");
    for (int i = first; i < first + n; ++i) {
      Event* e = req.add_events();
      e->set_id(absl::StrCat("orders-", i));
      e->set_type("t.0");
      e->set_key(absl::StrCat("k", i));
      e->set_data(std::string(100, 'd'));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Publish(&ctx, req, resp);
  };
  auto end_offset = [&] {
    grpc::ClientContext ctx;
    broker::v1::ListTopicsResponse topics;
    EXPECT_TRUE(stub_->ListTopics(&ctx, {}, &topics).ok());
    return topics.topics_size() == 1 ? topics.topics(0).end_offset() : 0;
  };
  PublishResponse resp;
  EXPECT_EQ(health(), grpc::health::v1::HealthCheckResponse::SERVING);
  ASSERT_TRUE(publish(0, 10, &resp).ok());

  set_fault(&env, absl::ResourceExhaustedError("No space left on device"));
  EXPECT_FALSE(publish(10, 10, &resp).ok());
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  {
    absl::MutexLock lock(&cause_mu);
    EXPECT_THAT(cause.message(), HasSubstr("No space left on device"));
  }
  EXPECT_FALSE(server_->storage_failure().ok());
  EXPECT_EQ(health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // Space again, but the log takes nothing until a restart recovers it.
  set_fault(&env, absl::OkStatus());
  EXPECT_FALSE(publish(10, 10, &resp).ok());

  Stop();
  options_.log_env = nullptr;
  options_.on_storage_failure = nullptr;
  Start();
  EXPECT_EQ(health(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(end_offset(), 10u);              // nothing of the refused batch
  ASSERT_TRUE(publish(10, 10, &resp).ok());  // its retry
  ASSERT_EQ(resp.results_size(), 10);
  for (const auto& r : resp.results()) EXPECT_FALSE(r.duplicate()) << r.offset();
  EXPECT_EQ(end_offset(), 20u);
  std::set<std::string> ids;
  auto sub = Consume("orders", "g", {}, &ids);
  EXPECT_TRUE(WaitFor([&] { return Count(ids) == 20; }));
  sub->Stop();
}

TEST_P(FileBrokerFaultsTest, AFailedWriteStopsTheLogAndTheBrokerSaysSo) {
  CheckAStorageFailureStopsTheLog(
      [](broker::FaultInjectionEnv* env, absl::Status error) { env->SetWriteError(error); });
}

TEST_P(FileBrokerFaultsTest, AFailedFsyncStopsTheLogAndCutsWhatItWrote) {
  CheckAStorageFailureStopsTheLog(
      [](broker::FaultInjectionEnv* env, absl::Status error) { env->SetSyncError(error); });
}

TEST_P(BrokerFaultsTest, TopicAtTheNameLimitStillDeadLetters) {
  options_.max_deliveries = 2;
  Start();
  const std::string topic(128, 'a');
  Publish(topic, 0, 2);
  Subscriber::Options o;
  o.topic = topic;
  o.group = "g";
  o.min_backoff = absl::Milliseconds(10);
  Subscriber sub(testing::Channel(server_->target()), o);
  sub.On("t.0", [](const Event& e, const events::DeliveryInfo&) {
    return e.id() == std::string(128, 'a') + "-0" ? absl::InternalError("poison")
                                                  : absl::OkStatus();
  });
  sub.Start();
  ASSERT_TRUE(
      WaitFor([&] { return Group(topic, "g").committed_offset() == 2; }, absl::Seconds(20)));
  EXPECT_EQ(Group(topic, "g").dead_lettered(), 1u);
  sub.Stop();
}

// The soak of issue 7 found the window's byte count leaking: an acked event
// was subtracted at its protobuf cached size, which the move into the window
// had reset to 0. After 64 MiB of events every group held one event at a
// time (the window looked full; an empty buffer lets one through), and
// consumption fell from ~1,000 to ~40 events/s. So: after a first window is
// acked, the count is back to 0 and the next window is as wide as the first.
TEST_P(BrokerFaultsTest, GroupWindowIsBoundedInBytes) {
  options_.group_window_bytes = 1 << 20;
  Start();
  // Events of 200 KB: the window holds about 1 MiB of them, whatever the
  // members' max_in_flight.
  auto publish = [&](int first, int n) {
    for (int i = first; i < first + n; ++i) {
      PublishRequest req;
      req.set_topic("big");
      Event* e = req.add_events();
      e->set_id(absl::StrCat("big-", i));
      e->set_type("t.0");
      e->set_key(absl::StrCat("k", i));
      e->set_data(std::string(200 << 10, 'x'));
      grpc::ClientContext ctx;
      PublishResponse resp;
      ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
    }
  };
  grpc::ClientContext ctx;
  auto stream = OpenRaw(&ctx, "big", /*max_in_flight=*/1000);
  ASSERT_NE(stream, nullptr);
  int acked = 0;
  // Acks what arrives until `until` events were acked in all.
  auto ack_until = [&](int until) {
    SubscribeResponse resp;
    while (acked < until && stream->Read(&resp)) {
      SubscribeRequest acks;
      for (const broker::v1::Delivery& d : resp.deliveries()) {
        auto* a = acks.add_acks();
        a->set_offset(d.event().offset());
        a->set_attempt(d.attempt());
        ++acked;
      }
      ASSERT_TRUE(stream->Write(acks));
    }
  };
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    ASSERT_NO_FATAL_FAILURE(publish(20 * round, 20));
    // Deliveries arrive; not acked yet, so the window does not move.
    ASSERT_TRUE(WaitFor([&] { return Group("big", "g").in_flight() >= 4; }));
    const broker::v1::GroupInfo info = Group("big", "g");
    EXPECT_LE(info.window_bytes(), (1u << 20) + (210u << 10));
    EXPECT_LE(info.in_flight(), 6u);
    // Acking makes room for the rest.
    ASSERT_NO_FATAL_FAILURE(ack_until(20 * (round + 1)));
    EXPECT_EQ(acked, 20 * (round + 1));
    const uint64_t end = 20u * static_cast<uint64_t>(round + 1);
    EXPECT_TRUE(WaitFor([&] { return Group("big", "g").committed_offset() == end; }));
    EXPECT_TRUE(WaitFor([&] { return Group("big", "g").window_bytes() == 0; }))
        << Group("big", "g").window_bytes() << " bytes left in an empty window";
  }
  ctx.TryCancel();
}

TEST_P(BrokerFaultsTest, ReadAnswerFitsADefaultClient) {
  Start();
  PublishRequest req;
  req.set_topic("wide");
  for (int i = 0; i < 40; ++i) {
    Event* e = req.add_events();
    e->set_id(absl::StrCat("w-", i));
    e->set_type("t.0");
    e->set_data(std::string(200 << 10, 'x'));
  }
  {
    grpc::ClientContext ctx;
    PublishResponse resp;
    ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
  }
  // A stub on a channel with gRPC's default 4 MiB receive limit.
  auto plain = broker::v1::Broker::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  uint64_t next = 0;
  int events = 0;
  for (int call = 0; call < 40 && next < 40; ++call) {
    grpc::ClientContext ctx;
    broker::v1::ReadRequest read;
    read.set_topic("wide");
    read.set_offset(next);
    read.set_max_events(10000);
    broker::v1::ReadResponse resp;
    grpc::Status s = plain->Read(&ctx, read, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_GT(resp.events_size(), 0);
    EXPECT_LE(resp.ByteSizeLong(), size_t{4} << 20);
    events += resp.events_size();
    next = resp.next_offset();
  }
  EXPECT_EQ(events, 40);
}

TEST_P(BrokerFaultsTest, OversizedFieldsAreRefusedWithoutEchoingThem) {
  Start();
  const std::string huge(2 << 20, 'k');
  struct Case {
    std::string name;
    std::function<void(Event*)> mutate;
    std::string message;
  };
  std::vector<Case> cases = {
      {"id", [&](Event* e) { e->set_id(huge); }, "id is 2097152 bytes; the limit is 256"},
      {"type", [&](Event* e) { e->set_type(std::string(300, 't')); }, "type is 300 bytes"},
      {"key", [&](Event* e) { e->set_key(huge); }, "key is 2097152 bytes"},
      {"source", [&](Event* e) { e->set_source(std::string(129, 's')); }, "source is 129 bytes"},
      {"header", [&](Event* e) { (*e->mutable_headers())["h"] = huge; }, "header 'h'"},
  };
  // A default client: a message that echoed the input would not fit its
  // metadata limit and turn into RESOURCE_EXHAUSTED.
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto plain = broker::v1::Broker::NewStub(
      grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args));
  for (const Case& c : cases) {
    PublishRequest req;
    req.set_topic("orders");
    Event* e = req.add_events();
    e->set_id("ok");
    e->set_type("t.0");
    c.mutate(e);
    grpc::ClientContext ctx;
    PublishResponse resp;
    grpc::Status s = plain->Publish(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.message)) << c.name;
    EXPECT_LT(s.error_message().size(), 300u) << c.name;
  }
  grpc::ClientContext ctx;
  broker::v1::ReadRequest read;
  read.set_topic("orders");
  read.set_key(huge);
  broker::v1::ReadResponse resp;
  grpc::Status s = plain->Read(&ctx, read, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(s.error_message().size(), 300u);
}

TEST_P(BrokerFaultsTest, NackWithAnAbsurdRetryDelayIsRefusedAndChangesNothing) {
  Start();
  Publish("orders", 0, 1);
  grpc::ClientContext ctx;
  auto stream = OpenRaw(&ctx, "orders");
  ASSERT_NE(stream, nullptr);
  SubscribeResponse resp;
  do {
    ASSERT_TRUE(stream->Read(&resp));
  } while (resp.deliveries_size() == 0);
  // 2^54 s: converted to milliseconds unchecked, it wraps to a short delay.
  SubscribeRequest nack;
  auto* n = nack.add_nacks();
  n->set_offset(0);
  n->set_attempt(resp.deliveries(0).attempt());
  n->mutable_retry_delay()->set_seconds(int64_t{1} << 54);
  ASSERT_TRUE(stream->Write(nack));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("retry_delay"));
  EXPECT_EQ(Group("orders", "g").redelivered(), 0u);
}

// Every attempt's reason is kept until the event is done and goes into the
// dead letter: a 12 MiB reason made a dead letter over the log's largest
// event, whose append then failed every second for good, the key waiting.
TEST_P(BrokerFaultsTest, NackWithAnOverlongReasonIsRefusedAndChangesNothing) {
  Start();
  Publish("orders", 0, 1);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = OpenRaw(&ctx, "orders");
  ASSERT_NE(stream, nullptr);
  auto next_delivery = [&] {
    SubscribeResponse resp;
    do {
      if (!stream->Read(&resp)) return broker::v1::Delivery();
    } while (resp.deliveries_size() == 0);
    return resp.deliveries(0);
  };
  auto nack = [&](uint32_t attempt, size_t reason_bytes) {
    SubscribeRequest request;
    auto* n = request.add_nacks();
    n->set_offset(0);
    n->set_attempt(attempt);
    n->set_reason(std::string(reason_bytes, 'r'));
    n->mutable_retry_delay()->set_nanos(1'000'000);
    return stream->Write(request);
  };
  ASSERT_EQ(next_delivery().attempt(), 1u);
  ASSERT_TRUE(nack(1, 1024));  // at the bound: taken
  ASSERT_EQ(next_delivery().attempt(), 2u);
  ASSERT_TRUE(nack(2, 1025));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("reason of 1025 bytes; the limit is 1024"));
  EXPECT_LT(s.error_message().size(), 200u);
  EXPECT_EQ(Group("orders", "g").redelivered(), 1u);
}

// Only JetStream has a store that can be away while the broker runs.
class JetStreamBrokerFaultsTest : public BrokerFaultsTest {};

// A read that fails because JetStream does not answer is no damage: the
// group waits for the event instead of skipping it after three tries (it
// skipped one acknowledged event each ~3 s of the outage).
TEST_P(JetStreamBrokerFaultsTest, ReadsThatFailWhileJetStreamIsAwayAreRetriedNotSkipped) {
  options_.jetstream_request_timeout = absl::Milliseconds(200);
  options_.group_window_events = 10;  // most events are still to be read
  Start();
  Publish("orders", 0, 100);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = OpenRaw(&ctx, "orders", /*max_in_flight=*/5);
  ASSERT_NE(stream, nullptr);
  std::set<uint64_t> delivered;
  // Reads one message of deliveries; then `before_acking`; then acks them.
  auto ack_next = [&](const std::function<void()>& before_acking) {
    SubscribeResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    SubscribeRequest acks;
    for (const broker::v1::Delivery& d : resp.deliveries()) {
      delivered.insert(d.event().offset());
      auto* a = acks.add_acks();
      a->set_offset(d.event().offset());
      a->set_attempt(d.attempt());
    }
    before_acking();
    ASSERT_TRUE(stream->Write(acks));
  };
  // The acks free the window only once JetStream answers nothing (acks need
  // no NATS): the group's reads for the next events fail, again and again,
  // for several seconds.
  ASSERT_NO_FATAL_FAILURE(ack_next([&] { backend_->nats()->Pause(0); }));
  absl::SleepFor(absl::Seconds(5));  // the outage's length, not a wait for a result
  backend_->nats()->Resume(0);
  // Every event is delivered, or skipped.
  while (delivered.size() + Group("orders", "g").skipped_offsets() < 100) {
    ASSERT_NO_FATAL_FAILURE(ack_next([] {}));
  }
  ASSERT_TRUE(
      WaitFor([&] { return Group("orders", "g").committed_offset() == 100; }, absl::Seconds(20)));
  EXPECT_EQ(Group("orders", "g").skipped_offsets(), 0u);
  ctx.TryCancel();
}

// An event near the largest JetStream stores (the server's max_payload less
// 1 KiB) makes a dead letter over that limit: the letter's own fields come on
// top of the whole event. The log refused its append, every second for good,
// and the key never moved on. It is now written trimmed
// (DeadLetter.event_trimmed): without the event's data and headers, which
// stay in the topic, and with the last 16 attempts.
TEST_P(JetStreamBrokerFaultsTest, ADeadLetterTooLargeForTheLogIsWrittenTrimmed) {
  options_.max_deliveries = 18;  // more attempts than a trimmed letter keeps
  Start();
  constexpr size_t kLargestEvent = (size_t{1} << 20) - 1024;  // nats-server's default max_payload
  PublishRequest req;
  req.set_topic("orders");
  Event* big = req.add_events();
  big->set_id("big");
  big->set_type("t.0");
  big->set_key("k");
  (*big->mutable_headers())["h"] = std::string(3000, 'h');
  big->set_data(std::string(kLargestEvent - 3100, 'd'));
  ASSERT_LE(big->ByteSizeLong(), kLargestEvent);
  ASSERT_GT(big->ByteSizeLong(), kLargestEvent - 200);
  Event* next = req.add_events();
  next->set_id("next");
  next->set_type("t.0");
  next->set_key("k");  // waits behind "big"
  {
    grpc::ClientContext ctx;
    PublishResponse resp;
    grpc::Status s = stub_->Publish(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = OpenRaw(&ctx, "orders");
  ASSERT_NE(stream, nullptr);
  SubscribeResponse resp;
  for (uint32_t attempt = 1; attempt <= 18; ++attempt) {
    do {
      ASSERT_TRUE(stream->Read(&resp));
    } while (resp.deliveries_size() == 0);
    ASSERT_EQ(resp.deliveries(0).event().id(), "big");
    ASSERT_EQ(resp.deliveries(0).attempt(), attempt);
    SubscribeRequest nack;
    auto* n = nack.add_nacks();
    n->set_offset(0);
    n->set_attempt(attempt);
    n->set_reason(std::string(1000, 'r'));
    n->mutable_retry_delay()->set_nanos(1'000'000);
    ASSERT_TRUE(stream->Write(nack));
  }
  // The key moves on: "next" is delivered.
  do {
    ASSERT_TRUE(stream->Read(&resp));
  } while (resp.deliveries_size() == 0);
  ASSERT_EQ(resp.deliveries(0).event().id(), "next");
  SubscribeRequest ack;
  ack.add_acks()->set_offset(1);
  ack.mutable_acks(0)->set_attempt(resp.deliveries(0).attempt());
  ASSERT_TRUE(stream->Write(ack));
  ASSERT_TRUE(
      WaitFor([&] { return Group("orders", "g").committed_offset() == 2; }, absl::Seconds(20)));
  ctx.TryCancel();

  grpc::ClientContext read_ctx;
  broker::v1::ReadRequest read;
  read.set_topic("orders.dlq");
  broker::v1::ReadResponse dlq;
  ASSERT_TRUE(stub_->Read(&read_ctx, read, &dlq).ok());
  ASSERT_EQ(dlq.events_size(), 1);
  const Event& dead = dlq.events(0);
  EXPECT_EQ(dead.type(), "relay.dead_letter");
  EXPECT_EQ(dead.headers().count("h"), 0u);  // in the topic, with the data
  EXPECT_EQ(dead.headers().at("dlq_group"), "g");
  EXPECT_EQ(dead.headers().at("dlq_offset"), "0");
  broker::v1::DeadLetter letter;
  ASSERT_TRUE(letter.ParseFromString(dead.data()));
  EXPECT_TRUE(letter.event_trimmed());
  EXPECT_EQ(letter.event().id(), "big");
  EXPECT_EQ(letter.event().offset(), 0u);
  EXPECT_TRUE(letter.event().data().empty());
  EXPECT_TRUE(letter.event().headers().empty());
  ASSERT_EQ(letter.attempts_size(), 16);  // the last 16
  EXPECT_EQ(letter.attempts_omitted(), 2u);
  EXPECT_EQ(letter.attempts(0).attempt(), 3u);
  EXPECT_EQ(letter.attempts(15).attempt(), 18u);
  EXPECT_EQ(letter.attempts(0).outcome().size(), 128u);
  EXPECT_THAT(letter.last_error(), HasSubstr(std::string(1000, 'r')));
  EXPECT_EQ(Group("orders", "g").dead_lettered(), 1u);
}

// A request of a publish stream that fails midway (here: an event over the
// stream's max_msg_size, set by hand; a leader election can fail any event
// alone) gets the stream's later requests refused too, those read before
// its failure was known and those after: the Publisher sends them all
// again, in order, on a new stream, so that none is stored before the
// failed one (docs/JETSTREAM.md#order).
TEST_P(JetStreamBrokerFaultsTest, APublishStreamStoresNothingAfterARequestThatFailed) {
  ASSERT_THAT(
      testing::AddStream(backend_->nats()->urls(),
                         {broker::StreamNameForTopic("orders"), broker::SubjectForTopic("orders"),
                          broker::StreamDescriptionForTopic("orders"), 1024}),
      testing::IsOk());
  Start();
  auto request = [](uint64_t id, std::vector<std::pair<std::string, size_t>> events) {
    PublishRequest req;
    req.set_topic("orders");
    req.set_request_id(id);
    for (const auto& [event_id, bytes] : events) {
      Event* e = req.add_events();
      e->set_id(event_id);
      e->set_type("t.0");
      e->set_key(event_id);
      e->set_data(std::string(bytes, 'd'));
    }
    return req;
  };
  auto stored = [&] {
    grpc::ClientContext ctx;
    broker::v1::ReadRequest read;
    read.set_topic("orders");
    read.set_max_events(100);
    broker::v1::ReadResponse resp;
    grpc::Status s = stub_->Read(&ctx, read, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const Event& e : resp.events()) ids.push_back(e.id());
    return ids;
  };
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto stream = stub_->PublishStream(&ctx);
    ASSERT_TRUE(stream->Write(request(1, {{"p-0", 10}, {"p-1", 2000}})));
    ASSERT_TRUE(stream->Write(request(2, {{"p-2", 10}})));
    PublishResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.request_id(), 1u);
    EXPECT_EQ(resp.error().code(), grpc::StatusCode::UNAVAILABLE) << resp.error().message();
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.request_id(), 2u);
    EXPECT_EQ(resp.error().code(), grpc::StatusCode::UNAVAILABLE) << resp.error().message();
    ASSERT_TRUE(stream->Write(request(3, {{"p-2", 10}})));
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.request_id(), 3u);
    EXPECT_EQ(resp.error().code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(resp.error().message(),
                HasSubstr("an earlier batch of this publish stream was not stored"));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }
  EXPECT_THAT(stored(), ::testing::ElementsAre("p-0"));

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto again = stub_->PublishStream(&ctx);
  ASSERT_TRUE(again->Write(request(1, {{"p-0", 10}})));
  ASSERT_TRUE(again->Write(request(2, {{"p-2", 10}})));
  for (uint64_t id : {1u, 2u}) {
    PublishResponse resp;
    ASSERT_TRUE(again->Read(&resp));
    EXPECT_EQ(resp.request_id(), id);
    EXPECT_FALSE(resp.has_error()) << resp.error().message();
  }
  again->WritesDone();
  EXPECT_TRUE(again->Finish().ok());
  EXPECT_THAT(stored(), ::testing::ElementsAre("p-0", "p-2"));
}

INSTANTIATE_TEST_SUITE_P(
    Backends, BrokerFaultsTest, ::testing::ValuesIn(testing::TestBackend::All()),
    testing::TestBackend::ParamName<::testing::TestParamInfo<broker::Storage>>);
INSTANTIATE_TEST_SUITE_P(
    File, FileBrokerFaultsTest, ::testing::Values(broker::Storage::kFile),
    testing::TestBackend::ParamName<::testing::TestParamInfo<broker::Storage>>);
INSTANTIATE_TEST_SUITE_P(
    JetStream, JetStreamBrokerFaultsTest, ::testing::Values(broker::Storage::kJetStream),
    testing::TestBackend::ParamName<::testing::TestParamInfo<broker::Storage>>);

}  // namespace
}  // namespace relay
