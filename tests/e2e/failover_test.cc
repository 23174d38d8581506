// Failover: the four binaries as real processes plus a standby broker, on a
// three-node NATS JetStream cluster (three replicas), under a steady stream
// of orders. The active broker is killed with SIGKILL; the standby takes the
// lease and the services find it by themselves (they were given both
// addresses). The killed broker comes back as the standby. Then the load
// stops and the invariants of docs/INVARIANTS.md (I1-I3) are checked over
// every order, exactly as after chaos.
//
// Printed: the takeover time (kill -> the standby accepts connections) and
// the pipeline's recovery time (kill -> the first order placed after the
// kill is CONFIRMED or CANCELLED). bench/failover measures them five times.

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/e2e/relay_system.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using testing::Call;
using testing::Proc;

// The status of order `id` (UNSPECIFIED when the call failed).
order::v1::OrderStatus StatusOf(order::v1::OrderService::Stub& orders, const std::string& id) {
  order::v1::GetOrderRequest req;
  req.set_order_id(id);
  order::v1::Order out;
  if (!Call([&](grpc::ClientContext* c) { return orders.GetOrder(c, req, &out); }).ok()) {
    return order::v1::ORDER_STATUS_UNSPECIFIED;
  }
  return out.status();
}

TEST(Failover, KillNineOfTheActiveBrokerUnderASagaLoadKeepsTheInvariants) {
  absl::StatusOr<std::unique_ptr<testing::NatsServer>> nats = testing::NatsServer::Start(3);
  ASSERT_TRUE(nats.ok()) << nats.status();
  testing::TempDir dir;
  testing::RelaySystem system(
      dir.path(), testing::BuiltBinaries(),
      {"--storage=jetstream", "--nats=" + (*nats)->urls(), "--replicas=3", "--lease_ttl=2s"});
  system.AddStandbyBroker();
  ASSERT_TRUE(system.StartAll());
  ASSERT_TRUE(system.WaitReady(absl::Seconds(60)));

  testing::RelayClients clients(system);
  auto& orders = clients.orders;
  testing::SeededState initial;
  ASSERT_TRUE(testing::SeedForLoad(clients, 100000000, 100000, &initial));
  testing::OrderLoad load(orders.get(), initial, absl::Milliseconds(40));  // ~25 orders/s

  // Some orders through the first broker, then its kill.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const std::string id = load.FirstPlacedAfter(absl::InfinitePast());
        return !id.empty() && StatusOf(*orders, id) != order::v1::ORDER_STATUS_PENDING;
      },
      absl::Seconds(60)));
  Proc* active = system.ActiveBroker();
  ASSERT_NE(active, nullptr);
  const std::string killed_name = active->name;
  const absl::Time killed = absl::Now();
  active->process.Stop(SIGKILL);

  // The standby takes over; an order placed after the kill goes through.
  Proc* next = nullptr;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        next = system.ActiveBroker();
        return next != nullptr;
      },
      absl::Seconds(60)));
  const absl::Duration takeover = absl::Now() - killed;
  EXPECT_NE(next->name, killed_name);
  std::string probe;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        if (probe.empty()) probe = load.FirstPlacedAfter(killed);
        return !probe.empty() && StatusOf(*orders, probe) != order::v1::ORDER_STATUS_PENDING;
      },
      absl::Seconds(60)));
  const absl::Duration recovery = absl::Now() - killed;

  // The killed broker returns, as the standby; more load, then the settle.
  ASSERT_TRUE(system.Start(*active));
  const int before = load.accepted();
  ASSERT_TRUE(testing::WaitFor([&] { return load.accepted() >= before + 50; }, absl::Seconds(60)));
  EXPECT_EQ(system.ActiveBroker(), next);
  load.Stop();

  testing::Settled settled = testing::Settle(*orders, absl::Seconds(120));
  std::printf(
      "failover: takeover %s, first order after the kill terminal after %s | %zu orders "
      "(accepted %d, refused %d): confirmed %d, cancelled %d, pending %d, settled in %s\n",
      absl::FormatDuration(takeover).c_str(), absl::FormatDuration(recovery).c_str(),
      settled.all.size(), load.accepted(), load.refused(), settled.confirmed, settled.cancelled,
      settled.pending, absl::FormatDuration(settled.took).c_str());
  testing::ExpectSettledExactly(clients, initial, settled);
  testing::ExpectCleanStop(system);
}

}  // namespace
}  // namespace relay
