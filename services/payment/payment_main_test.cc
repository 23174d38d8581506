// The payment-service binary as a process: flags and environment, the
// "serving" line, SIGTERM, a fatal start-up error, and the crash_after
// fault (kill -9 between an event's commit and its ack) with a restart.

#include <grpcpp/client_context.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/grpc_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::payment {
namespace {

namespace ev = relay::events::v1;
using relay::testing::IsOk;
using relay::testing::WaitFor;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// payment-service on a fixed port of its own, against `broker`.
class PaymentProcess {
 public:
  PaymentProcess(std::string dir, std::string broker)
      : dir_(std::move(dir)), broker_(std::move(broker)), port_(relay::testing::PickFreePort()) {}

  void Start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {RELAY_PAYMENT_BIN, absl::StrCat("--listen=", target()),
                                     "--broker=" + broker_,
                                     "--db=" + dir_ + "/data/payment/payment.db"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(proc_.Start(argv, log_path()));
  }

  bool WaitServing() {
    auto channel = relay::MakeChannel(target());
    return channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  }

  // Sends `signal` (0: none) and returns the wait status once it ended.
  int Stop(int signal, absl::Duration timeout = absl::Seconds(20)) {
    return proc_.Stop(signal, timeout);
  }

  int64_t Balance(const std::string& customer) {
    auto stub = v1::PaymentService::NewStub(relay::MakeChannel(target()));
    v1::GetAccountRequest request;
    request.set_customer_id(customer);
    v1::Account account;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (!stub->GetAccount(&context, request, &account).ok()) return -1;
    return account.balance().amount_minor();
  }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  pid_t pid() const { return proc_.pid(); }
  std::string log_path() const { return dir_ + "/payment.log"; }
  std::string log() const { return ReadFile(log_path()); }

 private:
  std::string dir_;
  std::string broker_;
  int port_;
  relay::testing::Subprocess proc_;
};

ev::Event Created(const std::string& order_id, const std::string& customer, int64_t total) {
  ev::OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  m.mutable_total()->set_amount_minor(total);
  m.mutable_total()->set_currency("USD");
  ev::Event e;
  e.set_id(order_id + "-created");
  e.set_type("order.created");
  e.set_key(order_id);
  (*e.mutable_headers())["correlation_id"] = order_id;
  m.SerializeToString(e.mutable_data());
  return e;
}

std::vector<std::string> PaymentTypes(const std::string& broker, const std::string& order_id) {
  auto stub = relay::broker::v1::Broker::NewStub(relay::MakeChannel(broker));
  relay::broker::v1::ReadRequest request;
  request.set_topic("payments");
  request.set_offset(0);
  request.set_key(order_id);
  relay::broker::v1::ReadResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  std::vector<std::string> types;
  if (!stub->Read(&context, request, &response).ok()) return types;
  for (const ev::Event& e : response.events()) types.push_back(e.type());
  return types;
}

// Members of the broker's group "payment-service" on topic "orders" (-1
// when the broker does not answer).
int GroupMembers(const std::string& broker) {
  auto stub = relay::broker::v1::Broker::NewStub(relay::MakeChannel(broker));
  relay::broker::v1::DescribeGroupsRequest request;
  request.set_topic("orders");
  request.set_group("payment-service");
  relay::broker::v1::DescribeGroupsResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  if (!stub->DescribeGroups(&context, request, &response).ok()) return -1;
  return response.groups_size() == 0 ? 0 : response.groups(0).members_size();
}

class PaymentMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
        relay::testing::StartBroker(dir_.Join("broker"));
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
  }

  void Publish(const ev::Event& e) {
    relay::events::Publisher publisher(relay::MakeChannel(broker_->target()), {});
    std::future<absl::StatusOr<uint64_t>> offset = publisher.Publish("orders", e);
    ASSERT_EQ(offset.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    ASSERT_THAT(offset.get(), IsOk());
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<relay::broker::BrokerServer> broker_;
};

TEST_F(PaymentMainTest, ServesUntilSigtermThenExitsZero) {
  PaymentProcess payment(dir_.path(), broker_->target());
  ASSERT_NO_FATAL_FAILURE(payment.Start({"--log_format=json"}));
  ASSERT_TRUE(payment.WaitServing()) << payment.log();
  EXPECT_EQ(payment.Balance("c-dave"), 500);

  int status = payment.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << payment.log();
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string log = payment.log();
  EXPECT_THAT(log, ::testing::HasSubstr(R"("service":"payment-service","msg":"serving")"));
  EXPECT_THAT(log, ::testing::HasSubstr(R"("msg":"stopped")"));
}

// Issue 7, item 7: SIGTERM waited the whole --shutdown_grace when a client
// channel was open, even an idle one.
TEST_F(PaymentMainTest, SigtermWithAnIdleClientChannelExitsBeforeTheGracePeriod) {
  PaymentProcess payment(dir_.path(), broker_->target());
  ASSERT_NO_FATAL_FAILURE(payment.Start({"--shutdown_grace=5s"}));
  auto channel = relay::MakeChannel(payment.target());
  ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(20))))
      << payment.log();
  EXPECT_EQ(payment.Balance("c-dave"), 500);

  int status = payment.Stop(SIGTERM, absl::Seconds(2));  // -1: still running
  ASSERT_NE(status, -1) << "still running 2 s after SIGTERM\n" << payment.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << payment.log();
}

TEST_F(PaymentMainTest, AFatalStartErrorIsOneLineOnStderrAndExitOne) {
  PaymentProcess payment(dir_.path(), broker_->target());
  ASSERT_NO_FATAL_FAILURE(payment.Start({"--decline_rate=2"}));
  int status = payment.Stop(0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(payment.log(), "payment-service: decline_rate must be within 0..1, got 2\n");
}

TEST_F(PaymentMainTest, ABadEnvironmentValueIsAFatalStartError) {
  PaymentProcess payment(dir_.path(), broker_->target());
  setenv("RELAY_PAYMENT_CRASH_AFTER", "soon", 1);
  payment.Start();
  unsetenv("RELAY_PAYMENT_CRASH_AFTER");
  int status = payment.Stop(0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::vector<std::string> lines = absl::StrSplit(payment.log(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << payment.log();
  EXPECT_THAT(lines[0], ::testing::HasSubstr("RELAY_PAYMENT_CRASH_AFTER"));
}

TEST_F(PaymentMainTest, CrashAfterKillsBetweenCommitAndAckAndTheRestartChargesOnce) {
  PaymentProcess payment(dir_.path(), broker_->target());
  ASSERT_NO_FATAL_FAILURE(payment.Start({"--crash_after=1"}));
  ASSERT_TRUE(payment.WaitServing()) << payment.log();
  ASSERT_NO_FATAL_FAILURE(Publish(Created("ord-1", "c-alice", 1250)));

  int status = payment.Stop(0);
  ASSERT_TRUE(WIFSIGNALED(status)) << payment.log();
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_THAT(payment.log(), ::testing::HasSubstr("payment captured order=ord-1"));

  ASSERT_NO_FATAL_FAILURE(payment.Start());
  ASSERT_TRUE(payment.WaitServing()) << payment.log();
  // The event was never acked: it comes again and finds its inbox row.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(payment.log(), "event handled before"); },
                      absl::Seconds(30)))
      << payment.log();
  ASSERT_TRUE(WaitFor([&] { return !PaymentTypes(broker_->target(), "ord-1").empty(); },
                      absl::Seconds(30)));
  EXPECT_THAT(PaymentTypes(broker_->target(), "ord-1"), ::testing::ElementsAre("payment.captured"));
  EXPECT_EQ(payment.Balance("c-alice"), 100000 - 1250);
  int stopped = payment.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << payment.log();
}

// Issue 7, item 2: no channel or server set keepalive, so a consumer that
// hangs without dying (here: SIGSTOP, its kernel still acks TCP) kept its
// deliveries until their ack deadline (30 s), and a half-open connection
// for minutes. The broker's keepalive pings now end its stream within
// time + timeout, and the group hands its delivery to the other member.
TEST_F(PaymentMainTest, APausedConsumersStreamEndsByKeepaliveAndAnotherMemberGetsItsWork) {
  broker_.reset();
  relay::testing::BrokerTestOptions options;
  options.keepalive.time = absl::Milliseconds(500);
  options.keepalive.timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
      relay::testing::StartBroker(dir_.Join("keepalive-broker"), options);
  ASSERT_THAT(broker, IsOk());
  broker_ = std::move(*broker);

  std::filesystem::create_directories(dir_.Join("a"));
  std::filesystem::create_directories(dir_.Join("b"));
  PaymentProcess paused(dir_.Join("a"), broker_->target());
  ASSERT_NO_FATAL_FAILURE(paused.Start());
  ASSERT_TRUE(WaitFor([&] { return GroupMembers(broker_->target()) == 1; }, absl::Seconds(20)))
      << paused.log();
  ASSERT_EQ(kill(paused.pid(), SIGSTOP), 0);
  // The group's only member is paused: the event goes to it.
  ASSERT_NO_FATAL_FAILURE(Publish(Created("ord-1", "c-alice", 1250)));

  PaymentProcess healthy(dir_.Join("b"), broker_->target());
  ASSERT_NO_FATAL_FAILURE(healthy.Start());
  // Well inside the 30 s ack deadline: only keepalive can explain it.
  EXPECT_TRUE(
      WaitFor([&] { return !PaymentTypes(broker_->target(), "ord-1").empty(); }, absl::Seconds(12)))
      << healthy.log();
  EXPECT_THAT(healthy.log(), ::testing::HasSubstr("payment captured order=ord-1"));
  EXPECT_EQ(GroupMembers(broker_->target()), 1);  // the paused one left

  paused.Stop(SIGKILL);
  int stopped = healthy.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << healthy.log();
}

}  // namespace
}  // namespace relay::payment
