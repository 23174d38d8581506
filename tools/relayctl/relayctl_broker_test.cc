// relayctl's broker verbs against a real in-process broker (ephemeral port,
// real log files): broker topics|groups, events tail (-f), trace, health.

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/events/v1/payment_events.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/dev_pki.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"
#include "tools/relayctl/cli.h"

namespace relay::ctl {
namespace {

namespace bv1 = relay::broker::v1;
namespace ev = relay::events::v1;
using ::relay::testing::IsOk;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// An ostream buffer that another thread may read while relayctl writes.
class LockedBuffer : public std::streambuf {
 public:
  std::string contents() {
    absl::MutexLock lock(&mu_);
    return text_;
  }

 protected:
  int overflow(int c) override {
    if (c != traits_type::eof()) {
      absl::MutexLock lock(&mu_);
      text_.push_back(static_cast<char>(c));
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, n);
    return n;
  }

 private:
  absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
};

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

ev::Money Usd(int64_t minor) {
  ev::Money m;
  m.set_amount_minor(minor);
  m.set_currency("USD");
  return m;
}

ev::Event MakeEvent(const std::string& id, const std::string& type, const std::string& order_id,
                    const std::string& source, const google::protobuf::Message& payload) {
  ev::Event e;
  e.set_id(id);
  e.set_type(type);
  e.set_key(order_id);
  e.set_source(source);
  (*e.mutable_headers())["correlation_id"] = order_id;
  e.set_data(payload.SerializeAsString());
  return e;
}

ev::OrderCreated Created(const std::string& order_id, const std::string& customer) {
  ev::OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  ev::OrderLine* line = m.add_lines();
  line->set_sku("KB-1");
  line->set_quantity(2);
  *line->mutable_unit_price() = Usd(1250);
  *m.mutable_total() = Usd(2500);
  return m;
}

class RelayctlBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = relay::testing::StartBroker(dir_.path());
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    stub_ = bv1::Broker::NewStub(relay::testing::Channel(server_->target()));
  }

  void Publish(const std::string& topic, const ev::Event& event) {
    bv1::PublishRequest request;
    request.set_topic(topic);
    *request.add_events() = event;
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    bv1::PublishResponse response;
    grpc::Status status = stub_->Publish(&call, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // One order's saga: created, reserved, captured, confirmed.
  void PublishSaga(const std::string& order_id, const std::string& customer) {
    Publish("orders", MakeEvent(order_id + "-e1", "order.created", order_id, "order-service",
                                Created(order_id, customer)));
    ev::StockReserved reserved;
    reserved.set_order_id(order_id);
    ev::StockLine* line = reserved.add_lines();
    line->set_sku("KB-1");
    line->set_quantity(2);
    Publish("inventory",
            MakeEvent(order_id + "-e2", "stock.reserved", order_id, "inventory-service", reserved));
    ev::PaymentCaptured captured;
    captured.set_order_id(order_id);
    captured.set_customer_id(customer);
    captured.set_payment_id("pay-" + order_id);
    *captured.mutable_amount() = Usd(2500);
    Publish("payments",
            MakeEvent(order_id + "-e3", "payment.captured", order_id, "payment-service", captured));
    ev::OrderConfirmed confirmed;
    confirmed.set_order_id(order_id);
    confirmed.set_customer_id(customer);
    *confirmed.mutable_total() = Usd(2500);
    Publish("orders",
            MakeEvent(order_id + "-e4", "order.confirmed", order_id, "order-service", confirmed));
  }

  Outcome Relayctl(std::vector<std::string> argv, Io io = {}) {
    argv.push_back("--broker");
    argv.push_back(server_->target());
    std::ostringstream out, err;
    if (io.out == nullptr) io.out = &out;
    if (io.err == nullptr) io.err = &err;
    int code = ::relay::ctl::Run(argv, io);
    return {code, out.str(), err.str()};
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<broker::BrokerServer> server_;
  std::unique_ptr<bv1::Broker::Stub> stub_;
};

TEST_F(RelayctlBrokerTest, BrokerTopicsListsEveryTopicWithItsCounts) {
  PublishSaga("o-1", "c-1");
  Outcome o = Relayctl({"broker", "topics"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, StartsWith("TOPIC"));
  EXPECT_THAT(o.out, ContainsRegex("\norders +2 +[0-9.]+ (B|KiB) +0 +2 "));
  EXPECT_THAT(o.out, ContainsRegex("\npayments +1 "));
  EXPECT_THAT(o.out, ContainsRegex("\ninventory +1 "));

  o = Relayctl({"broker", "topics", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"name\": \"orders\""));
  EXPECT_THAT(o.out, HasSubstr("\"end_offset\": \"2\""));
}

TEST_F(RelayctlBrokerTest, EventsTailPrintsTheLatestEventsDecoded) {
  PublishSaga("o-1", "c-1");
  PublishSaga("o-2", "c-2");
  Outcome o = Relayctl({"events", "tail", "--topic", "orders"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 4) << o.out;
  EXPECT_THAT(o.out, ContainsRegex("Z  orders +0  order.created +key=o-1  corr=o-1  "
                                   "customer=c-1 items=KB-1x2 total=25.00 USD\n"));

  o = Relayctl({"events", "tail", "--topic", "orders", "--limit", "1"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("^[^\n]* orders +3  order.confirmed +key=o-2  [^\n]*\n$"));

  o = Relayctl({"events", "tail", "--from-beginning", "--limit", "2"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("^[^\n]* orders +0  order.created [^\n]*\n"
                                   "[^\n]* inventory +0  stock.reserved +key=o-1  corr=o-1  "
                                   "items=KB-1x2\n$"));

  // Every topic, merged by publish time: the last event is o-2's confirmation.
  o = Relayctl({"events", "tail"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 8) << o.out;
  EXPECT_THAT(o.out,
              ContainsRegex("payment.captured +key=o-2  corr=o-2  payment=pay-o-2 "
                            "customer=c-2 amount=25.00 USD\n[^\n]*order.confirmed[^\n]*\n$"));

  o = Relayctl({"events", "tail", "--topic", "orders", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"events\": ["));
  EXPECT_THAT(o.out, HasSubstr("\"customer_id\": \"c-2\""));
}

TEST_F(RelayctlBrokerTest, EventsTailOfAMissingTopicIsNotFound) {
  Outcome o = Relayctl({"events", "tail", "--topic", "nope"});
  EXPECT_EQ(o.code, 3);
  EXPECT_EQ(o.err, "relayctl: events tail: no topic 'nope'\n");
}

TEST_F(RelayctlBrokerTest, EventsTailFollowPrintsNewEventsUntilInterrupted) {
  PublishSaga("o-1", "c-1");
  LockedBuffer buffer;
  std::ostream out(&buffer);
  absl::Notification following;
  std::atomic<bool> interrupted{false};
  Io io;
  io.out = &out;
  io.arm_interrupt = [&] { following.Notify(); };
  io.interrupted = [&] { return interrupted.load(); };
  Outcome outcome;
  std::thread tail([&] { outcome = Relayctl({"events", "tail", "-f", "--limit", "1"}, io); });

  ASSERT_TRUE(following.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_THAT(buffer.contents(), HasSubstr("order.confirmed"));
  // A new topic and an old one: both show up.
  Publish("orders.dlq", MakeEvent("late-1", "thing.happened", "o-9", "test", ev::Money()));
  PublishSaga("o-2", "c-2");
  EXPECT_TRUE(relay::testing::WaitFor([&] {
    return buffer.contents().find("order.confirmed    key=o-2") != std::string::npos;
  })) << buffer.contents();
  interrupted = true;
  tail.join();
  EXPECT_EQ(outcome.code, 0) << outcome.err;
  const std::string text = buffer.contents();
  EXPECT_THAT(text, HasSubstr("orders.dlq      0  thing.happened     key=o-9"));
  EXPECT_THAT(text, Not(HasSubstr("order.created  key=o-1")));  // Before the last 1.
  EXPECT_THAT(text, HasSubstr("order.created      key=o-2"));
}

// Reads `topic` as `group`, acknowledging only the first delivery, and
// keeps the stream open until destroyed.
class AckFirstOnly {
 public:
  AckFirstOnly(bv1::Broker::Stub* stub, const std::string& topic, const std::string& group) {
    stream_ = stub->Subscribe(&context_);
    bv1::SubscribeRequest open;
    open.mutable_open()->set_topic(topic);
    open.mutable_open()->set_group(group);
    EXPECT_TRUE(stream_->Write(open));
    bv1::SubscribeResponse response;
    while (stream_->Read(&response) && response.deliveries().empty()) {
    }
    const bv1::Delivery& first = response.deliveries(0);
    bv1::SubscribeRequest ack;
    bv1::SubscribeRequest::Ack* a = ack.add_acks();
    a->set_offset(first.event().offset());
    a->set_attempt(first.attempt());
    EXPECT_TRUE(stream_->Write(ack));
  }
  ~AckFirstOnly() {
    context_.TryCancel();
    stream_->Finish().IgnoreError();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<bv1::SubscribeRequest, bv1::SubscribeResponse>> stream_;
};

bv1::GroupInfo Group(bv1::Broker::Stub& stub, const std::string& group) {
  grpc::ClientContext call;
  bv1::DescribeGroupsRequest request;
  request.set_group(group);
  bv1::DescribeGroupsResponse response;
  if (!stub.DescribeGroups(&call, request, &response).ok() || response.groups().empty()) return {};
  return response.groups(0);
}

uint64_t Committed(bv1::Broker::Stub& stub, const std::string& group) {
  return Group(stub, group).committed_offset();
}

TEST_F(RelayctlBrokerTest, TraceShowsTheOrdersTimelineAndWhoAcknowledgedEachEvent) {
  PublishSaga("o-1", "c-1");
  PublishSaga("o-2", "c-2");
  AckFirstOnly inventory(stub_.get(), "orders", "inventory-service");
  ASSERT_TRUE(relay::testing::WaitFor([&] { return Committed(*stub_, "inventory-service") == 1; }));

  Outcome o = Relayctl({"trace", "o-1"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("^trace o-1: 4 events in inventory, orders, payments over "
                                   "[0-9.]+m?s\n\nTIME +\\+PREV +\\+FIRST +TOPIC"));
  // In publish order, o-2 left out; deltas from the previous and first event.
  EXPECT_THAT(o.out,
              ContainsRegex("\n[0-9T:.-]+Z +- +0.0ms +orders +0 +order.created +order-service +"
                            "inventory-service +- +customer=c-1 items=KB-1x2 total=25.00 USD\n"
                            "[^\n]+ [0-9.]+m?s +[0-9.]+m?s +inventory +0 +stock.reserved +"
                            "inventory-service +- +- +items=KB-1x2\n"
                            "[^\n]+ payments +0 +payment.captured +payment-service +- +- +"
                            "payment=pay-o-1 customer=c-1 amount=25.00 USD\n"
                            "[^\n]+ orders +1 +order.confirmed +order-service +- +"
                            "inventory-service +customer=c-1 total=25.00 USD\n$"));
  EXPECT_THAT(o.out, Not(HasSubstr("o-2")));

  o = Relayctl({"trace", "o-1", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"order_id\": \"o-1\""));
  EXPECT_THAT(o.out, HasSubstr("\"since_previous_ms\": "));
  EXPECT_THAT(o.out, ContainsRegex("\"acked_by\": \\[\\s*\"inventory-service\"\\s*\\]"));
  EXPECT_THAT(o.out, ContainsRegex("\"not_acked_by\": \\[\\s*\"inventory-service\"\\s*\\]"));
  EXPECT_THAT(o.out, HasSubstr("\"payment_id\": \"pay-o-1\""));
}

TEST_F(RelayctlBrokerTest, TraceOfAnUnknownOrderIsNotFound) {
  PublishSaga("o-1", "c-1");
  Outcome o = Relayctl({"trace", "o-404"});
  EXPECT_EQ(o.code, 3);
  EXPECT_EQ(o.err,
            "relayctl: trace 'o-404': no events with correlation_id 'o-404' in orders, inventory, "
            "payments, orders.dlq, inventory.dlq, payments.dlq\n");
}

TEST_F(RelayctlBrokerTest, BrokerGroupsShowsCommittedOffsetAndLag) {
  PublishSaga("o-1", "c-1");
  AckFirstOnly inventory(stub_.get(), "orders", "inventory-service");
  // The second event (same key) is handed out only after the first is
  // acked: wait for both, or the table may be read in between.
  ASSERT_TRUE(relay::testing::WaitFor([&] {
    bv1::GroupInfo g = Group(*stub_, "inventory-service");
    return g.committed_offset() == 1 && g.in_flight() == 1;
  }));
  Outcome o = Relayctl({"broker", "groups"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out,
              StartsWith("TOPIC   GROUP              MEMBERS  COMMITTED  END  LAG  IN FLIGHT"));
  EXPECT_THAT(o.out, ContainsRegex("\norders +inventory-service +1 +1 +2 +1 +1 +0 +0 +0 +\\*\n"));

  o = Relayctl({"broker", "groups", "--group", "nobody"});
  EXPECT_EQ(o.code, 3);
  EXPECT_EQ(o.err, "relayctl: describe groups: no group matches\n");
  o = Relayctl({"broker", "groups", "--group", "nobody", "--json"});  // exited 0 before
  EXPECT_EQ(o.code, 3);
  EXPECT_EQ(o.err, "relayctl: describe groups: no group matches\n");
}

TEST_F(RelayctlBrokerTest, HealthOfTheBrokerIsServing) {
  Outcome o = Relayctl({"health", "--service", "broker", "--timeout", "2s"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nbroker +127.0.0.1:[0-9]+ +SERVING +[0-9.]+m?s +-\n"));
  EXPECT_EQ(o.err, "");
}

TEST_F(RelayctlBrokerTest, AStoppedBrokerIsUnavailable) {
  const std::string target = server_->target();
  server_->Shutdown(absl::ZeroDuration());
  Outcome o = Relayctl({"broker", "topics", "--timeout", "2s"});
  EXPECT_EQ(o.code, 4);
  EXPECT_THAT(o.err, StartsWith(absl::StrCat("relayctl: list topics: cannot reach ", target)));
  o = Relayctl({"health", "--service", "broker", "--timeout", "2s"});
  EXPECT_NE(o.code, 0);
}

// relayctl over mutual TLS to a broker with the shipped policy: its
// certificate from flags or the environment, refused without one, and a
// policy denial shown as what it is.
TEST(RelayctlTls, SpeaksMutualTlsFromFlagsOrEnvironment) {
  relay::testing::TempDir dir;
  const std::string pki = dir.Join("pki");
  ASSERT_TRUE(relay::testing::RunDevPki(pki).ok());
  relay::testing::BrokerTestOptions options;
  options.tls = relay::testing::PkiFiles(pki, "broker");
  options.policy_file = RELAY_SHIPPED_POLICY;
  auto server = relay::testing::StartBroker(dir.Join("data"), options);
  ASSERT_THAT(server, IsOk());
  // The certificate names 127.0.0.1 (and localhost, which c-ares would resolve
  // with a leak that LeakSanitizer reports).
  const std::string broker = absl::StrCat("127.0.0.1:", (*server)->port());
  auto run = [&](std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
    argv.insert(argv.end(), {"--broker", broker, "--timeout", "5s"});
    std::ostringstream out, err;
    Io io;
    io.out = &out;
    io.err = &err;
    io.getenv = [env](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    };
    int code = ::relay::ctl::Run(argv, io);
    return Outcome{code, out.str(), err.str()};
  };
  const std::vector<std::string> as_relayctl = {"--tls-cert", pki + "/relayctl.crt",
                                                "--tls-key",  pki + "/relayctl.key",
                                                "--tls-ca",   pki + "/ca.crt"};
  std::vector<std::string> argv = {"broker", "topics"};
  argv.insert(argv.end(), as_relayctl.begin(), as_relayctl.end());
  Outcome o = run(argv);
  EXPECT_EQ(o.code, 0) << o.err;

  // One file with key and certificate, as the binaries take it.
  o = run({"broker", "groups"},
          {{"RELAY_TLS_CERT", pki + "/relayctl.pem"}, {"RELAY_TLS_CA", pki + "/ca.crt"}});
  EXPECT_EQ(o.code, 0) << o.err;

  o = run({"broker", "topics"});  // plaintext
  EXPECT_EQ(o.code, 4) << o.err;
  EXPECT_THAT(o.err, StartsWith("relayctl: list topics: cannot reach " + broker));

  o = run({"broker", "topics", "--tls-cert", pki + "/payment-service.crt", "--tls-key",
           pki + "/payment-service.key", "--tls-ca", pki + "/ca.crt"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err,
            "relayctl: list topics: relay://payment-service may not call ListTopics (an admin "
            "RPC): policy " RELAY_SHIPPED_POLICY " has no `admin` rule for it\n");

  // A bad file is a usage error of one line, before any call.
  o = run(
      {"broker", "topics", "--tls-cert", pki + "/relayctl.crt", "--tls-key", pki + "/broker.key"});
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, HasSubstr("is not the key of the certificate"));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

}  // namespace
}  // namespace relay::ctl
