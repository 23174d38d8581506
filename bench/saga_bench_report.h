#ifndef RELAY_BENCH_SAGA_BENCH_REPORT_H_
#define RELAY_BENCH_SAGA_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "bench/saga_bench_scenarios.h"

namespace relay::bench {

// The medians of one scenario's successful runs (of all when none
// succeeded); not-ended orders and PlaceOrder failures: the worst run.
struct SagaSummary {
  std::string scenario;
  bool tls = false;  // the mutual TLS runs (else plaintext)
  int runs = 0;
  int failed = 0;
  double placed_per_second = 0, terminal_per_second = 0, per_second_min = 0;
  double backlog_at_end = 0, drain_seconds = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
  bool p99_lb = false;  // the median p99 is a lower bound (orders had not ended)
  double publish_p50 = 0, publish_p99 = 0, place_p50 = 0, place_p99 = 0;
  uint64_t not_terminal = 0, place_failed = 0, cancelled = 0;
  std::vector<double> cpu;  // median CPU seconds per process (kCpuNames)
  // Median CPU milliseconds per order terminal in the window, per process
  // (kCpuNames) and in all.
  std::vector<double> cpu_ms_per_order;
  double total_cpu_ms_per_order = 0;
  // Median context switches per order terminal in the window, per process
  // (kCpuNames) and in all.
  std::vector<double> switches_per_order;
  double total_switches_per_order = 0;
  // Per process (kCpuNames): the largest peak RSS (VmHWM) and the largest
  // RSS after a run (VmRSS once its orders ended) of any run, MB.
  std::vector<double> peak_rss_mb, rss_after_mb;
  double seconds = 0;
  std::string target;
  bool target_met = false;
};

// One summary per scenario and transport, in first-seen order.
std::vector<SagaSummary> SummarizeSaga(const std::vector<SagaRun>& runs);

// What mutual TLS costs, per scenario that ran both ways (--tls=both): the
// TLS median against the plaintext median, and "paired", the median over
// run numbers of the difference between that run's TLS and plaintext runs
// (run one after the other). One line each.
std::vector<std::string> SagaTlsCostLines(const std::vector<SagaRun>& runs,
                                          const std::vector<SagaSummary>& summaries);

// Human-readable: a few lines per run / per summary.
std::string SagaRunLines(const SagaRun& r, int runs);
std::string SagaSummaryLines(const SagaSummary& s);

// Everything as one JSON document.
std::string SagaJson(const SagaConfig& config, const std::vector<SagaRun>& runs,
                     const std::vector<SagaSummary>& summaries);

}  // namespace relay::bench

#endif  // RELAY_BENCH_SAGA_BENCH_REPORT_H_
