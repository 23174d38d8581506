#ifndef RELAY_BENCH_SAGA_BENCH_SCENARIOS_H_
#define RELAY_BENCH_SAGA_BENCH_SCENARIOS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "bench/saga_bench_system.h"

namespace relay::bench {

// What every saga_bench run is given (flags of saga_bench.cc).
struct SagaConfig {
  SagaSystem::Options system;
  absl::Duration duration = absl::Seconds(30);  // measured window of S1 and S2
  absl::Duration grace = absl::Seconds(15);     // after the window, for the rest to end
  int concurrency = 128;                        // S1: PlaceOrder calls outstanding
  int64_t max_backlog = 5000;                   // S1: placed but not terminal (0: no limit)
  double rate = 1000;                           // S2: orders/s on an absolute schedule
  int warmup = 200;                             // orders placed and ended before measuring
  int64_t max_orders = 1'000'000;               // hard cap per scenario
  absl::Duration rpc_timeout = absl::Seconds(10);
};

// Percentiles of a latency, in ms. When some orders had not ended by the
// end of the grace period (or their PlaceOrder failed) they count with the
// time they had waited by then, and a percentile at or above one of them is
// only a lower bound (`*_lb`).
struct Latency {
  uint64_t count = 0;     // orders in it
  uint64_t censored = 0;  // of them, not ended: lower bounds
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
  bool p50_lb = false, p90_lb = false, p99_lb = false, max_lb = false;
};

// One scenario run: "S1" (throughput) or "S2" (latency at a fixed rate).
struct SagaRun {
  std::string scenario;
  int run = 0;
  bool tls = false;  // every connection with mutual TLS (SagaSystem::Options::pki)
  bool ok = true;
  std::string error;
  double load_before = 0;  // 1-minute load average when the run started

  double seconds = 0;  // the measured window
  uint64_t scheduled = 0;
  uint64_t placed = 0;  // PlaceOrder OK (by the end of the grace period)
  uint64_t placed_in_window = 0;
  uint64_t place_failed = 0;  // PlaceOrder errors (by code in `failures`)
  std::map<std::string, uint64_t> failures;
  uint64_t terminal_in_window = 0;  // terminal events received within the window
  uint64_t backlog_at_end = 0;      // placed (or in flight) but not terminal at the window's end
  uint64_t confirmed = 0, cancelled = 0, not_terminal = 0;  // by the end of the grace period
  double drain_seconds = 0;  // window end -> last terminal event (grace when not drained)
  uint64_t unmatched = 0;    // terminal events of orders the bench did not see placed
  uint64_t duplicates = 0;   // terminal events delivered again
  double placed_per_second = 0;
  double terminal_per_second = 0;
  // S1: terminal events per whole second of the window, first second left out.
  double per_second_min = 0, per_second_median = 0, per_second_max = 0;
  double max_send_lag_ms = 0;  // S2: how far the sender fell behind its schedule
  double events_per_delivery_message = 0;

  // S1: placed -> terminal; S2: placed -> confirmed. From the scheduled send
  // time to the bench receiving the event (`latency`), to the broker's
  // publish_time of the event (`to_publish`), and to PlaceOrder's answer.
  Latency latency, to_publish, place_rpc;

  // CPU seconds over the window: broker, order, inventory, payment, bench.
  std::vector<double> cpu;
  // Context switches over the window, of the same five (the threads alive
  // at its end).
  std::vector<double> switches;
  // Of the same five once every order ended, before the stop: the peak
  // resident set since start (VmHWM) and the resident set then, idle (VmRSS).
  std::vector<double> peak_rss_mb, rss_after_mb;
};

inline constexpr const char* kCpuNames[5] = {"broker", "order", "inventory", "payment", "bench"};

// Starts a fresh system, warms it up, runs the scenario, stops the system.
// Never hangs: every wait has a deadline derived from the config.
SagaRun RunThroughput(const SagaConfig& config, int run);
SagaRun RunLatency(const SagaConfig& config, int run);

}  // namespace relay::bench

#endif  // RELAY_BENCH_SAGA_BENCH_SCENARIOS_H_
