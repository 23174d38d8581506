// The inventory-service binary as a process: flags and environment, the
// "serving" line, SIGTERM, fatal start-up errors, and the crash_after fault
// (kill -9 between an event's commit and its ack) with a restart.

#include <grpcpp/client_context.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
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
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "services/inventory/inventory_test_util.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::inventory {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// inventory-service on a fixed port of its own, against `broker`.
class InventoryProcess {
 public:
  InventoryProcess(std::string dir, std::string broker)
      : dir_(std::move(dir)), broker_(std::move(broker)), port_(relay::testing::PickFreePort()) {}

  void Start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {RELAY_INVENTORY_BIN, absl::StrCat("--listen=", target()),
                                     "--db=" + dir_ + "/data/inventory/inventory.db"};
    if (!broker_.empty()) argv.push_back("--broker=" + broker_);
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(proc_.Start(argv, log_path()));
  }

  bool WaitServing() {
    auto channel = MakeChannel(target());
    return channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  }

  // Sends `signal` (0: none) and returns the wait status once it ended.
  int Stop(int signal, absl::Duration timeout = absl::Seconds(20)) {
    return proc_.Stop(signal, timeout);
  }

  absl::StatusOr<v1::Product> GetStock(const std::string& sku) {
    auto stub = v1::InventoryService::NewStub(MakeChannel(target()));
    v1::GetStockRequest request;
    request.set_sku(sku);
    v1::Product product;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status s = stub->GetStock(&context, request, &product);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return product;
  }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string log_path() const { return dir_ + "/inventory.log"; }
  std::string log() const { return ReadFile(log_path()); }

 private:
  std::string dir_;
  std::string broker_;
  int port_;
  relay::testing::Subprocess proc_;
};

// The types of the events on topic "inventory" keyed `key`.
std::vector<std::string> InventoryTypes(const std::string& broker, const std::string& key) {
  auto stub = broker::v1::Broker::NewStub(MakeChannel(broker));
  broker::v1::ReadRequest request;
  request.set_topic("inventory");
  request.set_offset(0);
  request.set_key(key);
  broker::v1::ReadResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  std::vector<std::string> types;
  if (!stub->Read(&context, request, &response).ok()) return types;
  for (const events::v1::Event& e : response.events()) types.push_back(e.type());
  return types;
}

class InventoryMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = relay::testing::StartBroker(dir_.Join("broker"));
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    target_ = absl::StrCat("127.0.0.1:", broker_->port());
  }

  void Publish(const events::v1::Event& e) {
    events::Publisher publisher(MakeChannel(target_), {});
    std::future<absl::StatusOr<uint64_t>> offset = publisher.Publish("orders", e);
    ASSERT_EQ(offset.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    ASSERT_THAT(offset.get(), IsOk());
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<broker::BrokerServer> broker_;
  std::string target_;
};

TEST_F(InventoryMainTest, ServesUntilSigtermThenExitsZero) {
  // The broker from the environment: every flag has a RELAY_INVENTORY_ twin.
  InventoryProcess inventory(dir_.path(), "");
  setenv("RELAY_INVENTORY_BROKER", target_.c_str(), 1);
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--log_format=json"}));
  unsetenv("RELAY_INVENTORY_BROKER");
  ASSERT_TRUE(inventory.WaitServing()) << inventory.log();
  auto gpu = inventory.GetStock("GPU-1");
  ASSERT_THAT(gpu, IsOk());
  EXPECT_EQ(gpu->on_hand(), 1);
  ASSERT_TRUE(
      WaitFor([&] { return InventoryTypes(target_, "GPU-1").size() == 1; }, absl::Seconds(20)));

  int status = inventory.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << inventory.log();
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string log = inventory.log();
  EXPECT_THAT(log, HasSubstr(R"("service":"inventory-service","msg":"serving")"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat(R"("broker":")", target_, R"(")")));
  EXPECT_THAT(log, HasSubstr(R"("msg":"stopped")"));
}

// Issue 7, item 7: SIGTERM waited the whole --shutdown_grace when a client
// channel was open, even an idle one.
TEST_F(InventoryMainTest, SigtermWithAnIdleClientChannelExitsBeforeTheGracePeriod) {
  InventoryProcess inventory(dir_.path(), target_);
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--shutdown_grace=30s"}));
  ASSERT_TRUE(inventory.WaitServing()) << inventory.log();
  auto channel = MakeChannel(inventory.target());
  ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(20))))
      << inventory.log();

  int status = inventory.Stop(SIGTERM, absl::Seconds(10));  // -1: still running
  ASSERT_NE(status, -1) << "still running 10 s after SIGTERM (grace 30 s)\n" << inventory.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << inventory.log();
}

TEST_F(InventoryMainTest, AFatalStartErrorIsOneLineOnStderrAndExitOne) {
  InventoryProcess inventory(dir_.path(), target_);
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--crash_after=-1"}));
  int status = inventory.Stop(0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(inventory.log(), "inventory-service: crash_after must not be negative\n");
}

TEST_F(InventoryMainTest, ADatabaseThatIsNotOneIsAFatalStartError) {
  std::ofstream(dir_.Join("garbage.db")) << "this is not a database, just text\n";
  InventoryProcess inventory(dir_.path(), target_);
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--db=" + dir_.Join("garbage.db")}));
  int status = inventory.Stop(0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::vector<std::string> lines = absl::StrSplit(inventory.log(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << inventory.log();
  EXPECT_THAT(lines[0], HasSubstr("inventory-service: "));
  EXPECT_THAT(lines[0], HasSubstr("garbage.db"));
}

TEST_F(InventoryMainTest, ABadEnvironmentValueIsAFatalStartError) {
  InventoryProcess inventory(dir_.path(), target_);
  setenv("RELAY_INVENTORY_SEED", "maybe", 1);
  ASSERT_NO_FATAL_FAILURE(inventory.Start());
  unsetenv("RELAY_INVENTORY_SEED");
  int status = inventory.Stop(0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::vector<std::string> lines = absl::StrSplit(inventory.log(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << inventory.log();
  EXPECT_THAT(lines[0], HasSubstr("RELAY_INVENTORY_SEED"));
}

TEST_F(InventoryMainTest, CrashAfterKillsBetweenCommitAndAckAndTheRestartReservesOnce) {
  InventoryProcess inventory(dir_.path(), target_);
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--crash_after=1"}));
  ASSERT_TRUE(inventory.WaitServing()) << inventory.log();
  ASSERT_NO_FATAL_FAILURE(Publish(
      test_util::Created("ord-1", {test_util::Line("KB-1", 2), test_util::Line("MS-1", 1)})));

  int status = inventory.Stop(0);
  ASSERT_TRUE(WIFSIGNALED(status)) << inventory.log();
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_THAT(inventory.log(), HasSubstr("stock reserved order=ord-1 lines=KB-1x2,MS-1x1"));

  // Restarted with the same fault: it must still make progress.
  ASSERT_NO_FATAL_FAILURE(inventory.Start({"--crash_after=1"}));
  ASSERT_TRUE(inventory.WaitServing()) << inventory.log();
  // The event was never acked: it comes again and finds its inbox row.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(inventory.log(), "event handled before"); },
                      absl::Seconds(30)))
      << inventory.log();
  ASSERT_TRUE(
      WaitFor([&] { return !InventoryTypes(target_, "ord-1").empty(); }, absl::Seconds(30)));
  EXPECT_THAT(InventoryTypes(target_, "ord-1"), ElementsAre("stock.reserved"));
  auto kb = inventory.GetStock("KB-1");
  ASSERT_THAT(kb, IsOk());
  EXPECT_EQ(kb->reserved(), 2);
  int stopped = inventory.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << inventory.log();
}

}  // namespace
}  // namespace relay::inventory
