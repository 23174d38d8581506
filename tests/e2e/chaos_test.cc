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
#include <cstdlib>
#include <map>
#include <random>
#include <string>
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

TEST(Chaos, KillNineAnyProcessKeepsTheInvariants) {
  const char* env = std::getenv("RELAY_CHAOS_SECONDS");
  const int chaos_seconds = env != nullptr ? std::atoi(env) : 60;
  testing::TempDir dir;
  testing::RelaySystem system(dir.path(), testing::BuiltBinaries(), {"--checkpoint_interval=50ms"});
  ASSERT_TRUE(system.StartAll());
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  testing::RelayClients clients(system);
  auto& orders = clients.orders;
  // Enough money and stock that most orders confirm; GPU-1 keeps its single
  // unit (out-of-stock cancels), c-nobody has no account (declines), and
  // some orders are cancelled by the customer.
  testing::SeededState initial;
  ASSERT_TRUE(testing::SeedForLoad(clients, 100000000, 100000, &initial));
  testing::OrderLoad load(orders.get(), initial, absl::Milliseconds(20));  // ~50 orders/s

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
  load.Stop();
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  // Settle: every order terminal.
  testing::Settled settled = testing::Settle(*orders, absl::Seconds(120));
  std::string kill_summary;
  for (const auto& [name, n] : kills) absl::StrAppend(&kill_summary, name, "=", n, " ");
  std::printf(
      "chaos: %zu orders (accepted %d, refused %d), kills: %s| confirmed %d, cancelled %d, "
      "pending %d, settled in %s\n",
      settled.all.size(), load.accepted(), load.refused(), kill_summary.c_str(), settled.confirmed,
      settled.cancelled, settled.pending, absl::FormatDuration(settled.took).c_str());
  testing::ExpectSettledExactly(clients, initial, settled);
  testing::ExpectCleanStop(system);
}

}  // namespace
}  // namespace relay
