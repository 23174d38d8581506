// ServiceRuntime's start-up checks and its shutdown, with a real SQLite
// file and no broker: the channel connects lazily and the consumers and the
// publisher keep retrying, which is what a shutdown must cut short.

#include "services/shared/service_runtime.h"

#include <grpcpp/client_context.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_channel.h"
#include "common/metrics.h"
#include "common/store/inbox.h"
#include "common/store/outbox.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::services {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::MetricNow;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using Health = grpc::health::v1::Health;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

std::vector<std::string> Schema() {
  std::vector<std::string> steps = store::Outbox::Migrations();
  for (std::string& s : store::Inbox::Migrations()) steps.push_back(std::move(s));
  for (std::string& s : store::Inbox::PruneIndexMigrations()) steps.push_back(std::move(s));
  for (std::string& s : store::Outbox::ParkedMigrations()) steps.push_back(std::move(s));
  return steps;
}

class ServiceRuntimeTest : public ::testing::Test {
 protected:
  ServiceRuntime::Options RuntimeOptions() {
    ServiceRuntime::Options o;
    // Nothing listens there: the consumer and the publisher keep retrying.
    o.broker_target = "127.0.0.1:1";
    o.db_path = dir_.Join("data/service.db");  // the directory does not exist yet
    o.migrations = Schema();
    o.shutdown_grace = absl::Seconds(30);
    return o;
  }

  // An opened and started runtime with one consumer and a stop hook that
  // counts its calls.
  std::unique_ptr<ServiceRuntime> StartRuntime(ServiceRuntime::Options o) {
    absl::StatusOr<std::unique_ptr<ServiceRuntime>> rt = ServiceRuntime::Open(std::move(o));
    EXPECT_THAT(rt, IsOk());
    if (!rt.ok()) return nullptr;
    events::Subscriber::Options subscription;
    subscription.topic = "orders";
    subscription.group = "runtime-test";
    (*rt)->AddConsumer(subscription, ServiceRuntime::LogLineHooks{});
    (*rt)->OnStop([this] { ++stop_hook_calls_; });
    EXPECT_THAT((*rt)->Start({}), IsOk());
    return std::move(*rt);
  }

  relay::testing::TempDir dir_;
  std::atomic<int> stop_hook_calls_{0};
};

// An idle client channel must not hold the server's stop for the grace.
// (A grpc.health.v1 Watch stream still does: gRPC's own health service
// ends it only at the deadline. The services' own streams end at step 3,
// see order_app_test.cc.)
TEST_F(ServiceRuntimeTest, ShutdownWithAnIdleClientChannelEndsWellWithinTheGrace) {
  std::unique_ptr<ServiceRuntime> rt = StartRuntime(RuntimeOptions());
  ASSERT_NE(rt, nullptr);
  std::shared_ptr<grpc::Channel> idle = MakeChannel(absl::StrCat("127.0.0.1:", rt->port()));
  ASSERT_TRUE(idle->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(20))));
  auto stub = Health::NewStub(idle);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::health::v1::HealthCheckRequest request;
  HealthResponse response;
  ASSERT_TRUE(stub->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), HealthResponse::SERVING);

  const absl::Time start = absl::Now();
  rt->Shutdown();
  // Generous: the point is that nothing waits for the 30 s grace.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(stop_hook_calls_.load(), 1);
  EXPECT_EQ(rt->db(), nullptr);
}

TEST_F(ServiceRuntimeTest, ShutdownIsIdempotentAndConcurrentCallsAreSafe) {
  std::unique_ptr<ServiceRuntime> rt = StartRuntime(RuntimeOptions());
  ASSERT_NE(rt, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&] { rt->Shutdown(); });
  for (std::thread& t : threads) t.join();
  rt->Shutdown();
  EXPECT_EQ(stop_hook_calls_.load(), 1);
  EXPECT_TRUE(rt->stopping());
  EXPECT_EQ(rt->consumer_stats().handled, 0u);
  rt.reset();  // the destructor's Shutdown() finds it done
}

// relay_db_transactions_total and relay_db_commits_total count the service
// database's transactions and the commits they took; they go with the runtime.
// (Opened, not started: the inbox pruner would commit too.)
TEST_F(ServiceRuntimeTest, ExportsTheDatabasesTransactionsAndCommits) {
  absl::StatusOr<std::unique_ptr<ServiceRuntime>> opened = ServiceRuntime::Open(RuntimeOptions());
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<ServiceRuntime> rt = std::move(*opened);
  const double transactions = MetricNow("relay_db_transactions_total");
  const double commits = MetricNow("relay_db_commits_total");
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(rt->db()->Transaction([](store::Tx& tx) { return tx.Exec("SELECT 1"); }), IsOk());
  }
  EXPECT_EQ(MetricNow("relay_db_transactions_total") - transactions, 3);
  EXPECT_EQ(MetricNow("relay_db_commits_total") - commits, 3);  // one after another: alone
  rt->Shutdown();
  EXPECT_THAT(metrics::Registry::Default().Expose(), Not(HasSubstr("relay_db_commits_total")));
}

TEST_F(ServiceRuntimeTest, BadOptionsAreInvalidArgumentsWithShortMessages) {
  struct Case {
    std::function<void(ServiceRuntime::Options&)> change;
    std::string names;
  };
  const std::vector<Case> cases = {
      {[](ServiceRuntime::Options& o) { o.db_path.clear(); }, "database path"},
      {[](ServiceRuntime::Options& o) { o.broker_target.clear(); }, "broker target"},
      {[](ServiceRuntime::Options& o) { o.handler_delay = absl::Seconds(-1); }, "handler_delay"},
      {[](ServiceRuntime::Options& o) { o.crash_after = -1; }, "crash_after"},
      {[](ServiceRuntime::Options& o) { o.shutdown_grace = absl::Seconds(-1); }, "shutdown_grace"},
      // A typo must not keep the inbox forever, as zero does.
      {[](ServiceRuntime::Options& o) { o.inbox_retention = absl::Hours(-1); }, "inbox_retention"},
  };
  for (const Case& c : cases) {
    ServiceRuntime::Options o = RuntimeOptions();
    c.change(o);
    absl::StatusOr<std::unique_ptr<ServiceRuntime>> rt = ServiceRuntime::Open(o);
    EXPECT_THAT(rt, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.names)));
    EXPECT_LT(rt.status().message().size(), 64u) << rt.status();
  }
}

TEST_F(ServiceRuntimeTest, AStartOnATakenPortFailsAndLeavesNothingRunning) {
  std::unique_ptr<ServiceRuntime> first = StartRuntime(RuntimeOptions());
  ASSERT_NE(first, nullptr);

  ServiceRuntime::Options o = RuntimeOptions();
  o.db_path = dir_.Join("second/service.db");
  o.listen = absl::StrCat("127.0.0.1:", first->port());
  absl::StatusOr<std::unique_ptr<ServiceRuntime>> second = ServiceRuntime::Open(o);
  ASSERT_THAT(second, IsOk());
  std::atomic<int> second_stops{0};
  (*second)->OnStop([&] { ++second_stops; });
  EXPECT_FALSE((*second)->Start({}).ok());
  // Shut down already: its stop hooks ran, its database is closed.
  EXPECT_EQ(second_stops.load(), 1);
  EXPECT_EQ((*second)->db(), nullptr);
  second->reset();

  // The database opens again, in a runtime that starts on a free port.
  o.listen = "127.0.0.1:0";
  std::unique_ptr<ServiceRuntime> again = StartRuntime(o);
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(again->db()->Transaction([](store::Tx& tx) {
    return tx.Exec(
        "INSERT INTO inbox(event_id, topic, type, handled_us) VALUES ('e-1', 't', 'x', 1)");
  }),
              IsOk());
  again->Shutdown();
  first->Shutdown();
}

}  // namespace
}  // namespace relay::services
