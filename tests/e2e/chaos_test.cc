// Chaos: the four binaries as real processes under a steady stream of
// orders, one of them (the broker too) killed with SIGKILL every few seconds
// and restarted. Then the load stops and the invariants of docs/INVARIANTS.md are checked
// over every order:
//   I1 every order is CONFIRMED or CANCELLED;
//   I2 every balance = initial - totals of the customer's CONFIRMED orders,
//      and no cancelled order keeps a capture;
//   I3 every on-hand = initial - quantities of CONFIRMED orders, and no
//      reservation is still held.
// Bounded: RELAY_CHAOS_SECONDS of chaos (default 60), then at most 120 s to
// settle.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/e2e/relay_system.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using testing::Call;
using testing::Proc;

testing::RelayBinaries Binaries() {
  return {RELAY_BROKER_BIN, RELAY_ORDER_BIN, RELAY_INVENTORY_BIN, RELAY_PAYMENT_BIN};
}

TEST(Chaos, KillNineAnyProcessKeepsTheInvariants) {
  const char* env = std::getenv("RELAY_CHAOS_SECONDS");
  const int chaos_seconds = env != nullptr ? std::atoi(env) : 60;
  testing::TempDir dir;
  testing::RelaySystem system(dir.path(), Binaries(), {"--checkpoint_interval=50ms"});
  ASSERT_TRUE(system.StartAll());
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  testing::RelayClients clients(system);
  auto& orders = clients.orders;
  // Enough money and stock that most orders confirm; GPU-1 keeps its single
  // unit (out-of-stock cancels), c-nobody has no account (declines), and
  // some orders are cancelled by the customer.
  testing::SeededState initial;
  ASSERT_TRUE(testing::SeedForLoad(clients, 100000000, 100000, &initial));
  const std::vector<std::string>& skus = initial.skus;
  const std::vector<std::string>& customers = initial.customers;

  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0}, refused{0};
  std::thread load([&] {
    std::mt19937 rng(7);
    int n = 0;
    absl::Time next = absl::Now();
    while (!stop) {
      next += absl::Milliseconds(20);  // ~50 orders/s
      absl::SleepFor(next - absl::Now());
      order::v1::PlaceOrderRequest req;
      req.set_customer_id(customers[rng() % customers.size()]);
      req.set_idempotency_key(absl::StrCat("chaos-", n++));
      int lines = 1 + static_cast<int>(rng() % 2);
      std::vector<std::string> picked;
      for (int i = 0; i < lines; ++i) {
        const std::string& sku = skus[rng() % skus.size()];
        if (std::find(picked.begin(), picked.end(), sku) != picked.end()) continue;
        picked.push_back(sku);
        auto* item = req.add_items();
        item->set_sku(sku);
        item->set_quantity(1 + static_cast<int>(rng() % 2));
      }
      // Retry with the same idempotency key while order-service is down.
      bool ok = false;
      std::string placed_id;
      for (int attempt = 0; attempt < 20 && !stop && !ok; ++attempt) {
        order::v1::PlaceOrderResponse resp;
        grpc::Status s = Call([&](grpc::ClientContext* c) { return orders->PlaceOrder(c, req, &resp); });
        if (s.ok()) {
          ok = true;
          placed_id = resp.order().order_id();
        } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          absl::SleepFor(absl::Milliseconds(100));
        } else {
          break;
        }
      }
      (ok ? accepted : refused)++;
      if (ok && rng() % 20 == 0) {  // the customer changes their mind (may be too late)
        order::v1::CancelOrderRequest cancel;
        cancel.set_order_id(placed_id);
        order::v1::Order out;
        Call([&](grpc::ClientContext* c) { return orders->CancelOrder(c, cancel, &out); });
      }
    }
  });

  // Kill a random process every 3-6 s and restart it.
  std::mt19937 rng(42);
  std::map<std::string, int> kills;
  absl::Time chaos_end = absl::Now() + absl::Seconds(chaos_seconds);
  while (absl::Now() < chaos_end) {
    absl::SleepFor(absl::Milliseconds(3000 + rng() % 3000));
    Proc& victim = *system.procs()[rng() % system.procs().size()];
    victim.process.Stop(SIGKILL);
    ++kills[victim.name];
    ASSERT_TRUE(system.Start(victim)) << "restarting " << victim.name;
  }
  stop = true;
  load.join();
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  // Settle: every order terminal.
  absl::Time settle_start = absl::Now();
  std::vector<order::v1::Order> all;
  bool settled = testing::WaitFor(
      [&] {
        if (!testing::ListAllOrders(*orders, &all)) return false;
        for (const auto& o : all) {
          if (o.status() == order::v1::ORDER_STATUS_PENDING) return false;
        }
        return true;
      },
      absl::Seconds(120));
  absl::Duration settle_time = absl::Now() - settle_start;
  int confirmed = 0, cancelled = 0, pending = 0;
  for (const auto& o : all) {
    if (o.status() == order::v1::ORDER_STATUS_CONFIRMED) ++confirmed;
    else if (o.status() == order::v1::ORDER_STATUS_CANCELLED) ++cancelled;
    else ++pending;
  }
  std::string kill_summary;
  for (const auto& [name, n] : kills) absl::StrAppend(&kill_summary, name, "=", n, " ");
  std::printf("chaos: %zu orders (accepted %d, refused %d), kills: %s| confirmed %d, cancelled %d, "
              "pending %d, settled in %s\n",
              all.size(), accepted.load(), refused.load(), kill_summary.c_str(), confirmed,
              cancelled, pending, absl::FormatDuration(settle_time).c_str());
  EXPECT_TRUE(settled) << pending << " orders still PENDING (I1)";
  // The mix must exercise both paths, or the invariants prove little.
  EXPECT_GT(confirmed, static_cast<int>(all.size()) / 2);
  EXPECT_GT(cancelled, 0);

  testing::ExpectMoneyAndStockInvariants(clients, initial, all, all.size(), absl::Seconds(60));

  for (auto& p : system.procs()) {
    int status = p->process.Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << p->name << " did not exit 0 on SIGTERM (status " << status << ")";
  }
}

}  // namespace
}  // namespace relay
