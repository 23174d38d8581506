#ifndef RELAY_BENCH_BENCH_REPORT_H_
#define RELAY_BENCH_BENCH_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "bench/workloads.h"

namespace relay::bench {

// The medians of one workload's successful runs (of all its runs when none
// succeeded); missing and duplicates: the worst run.
struct Summary {
  std::string workload;
  bool tls = false;  // the mutual TLS runs of the workload (else plaintext)
  int runs = 0;
  int failed = 0;
  double seconds = 0;
  double events_per_second = 0;
  double publish_events_per_second = 0;
  bool has_latency = false;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // CPU per event (published, or received for W2/W3), in microseconds.
  double broker_cpu_us_per_event = 0, bench_cpu_us_per_event = 0;
  // W4: the broker's CPU seconds over the window, and its fsync and
  // fdatasync calls per second (has_syncs: perf counted them in every run
  // that counts).
  int groups = 0;
  double broker_cpu_seconds = 0;
  // The largest of the runs' (RunResult).
  double broker_peak_rss_mb = 0, broker_rss_after_mb = 0;
  bool has_syncs = false;
  double fsyncs_per_second = 0, fdatasyncs_per_second = 0;
  uint64_t missing = 0;
  uint64_t duplicates = 0;
  // The target for this workload, e.g. "events/s >= 300000", and
  // whether the median meets it.
  std::string target;
  bool target_met = false;
};

// Median of `v` (mean of the middle two for an even count; 0 when empty).
double Median(std::vector<double> v);

// Nearest-rank percentile `p` (0..1) of sorted `v`; 0 when empty.
int64_t Percentile(const std::vector<int64_t>& v, double p);

// Where a bench puts its runs' directories: `flag` (--temp_root) when set,
// else $TMPDIR when set, else /tmp.
std::string TempRoot(const std::string& flag);

// One summary per workload and transport, in first-seen order.
std::vector<Summary> Summarize(const std::vector<RunResult>& results);

// What mutual TLS costs one workload against plaintext runs of the same
// invocation (--tls=both). Two views: the ratio of the two medians, and
// the median over run numbers of the ratio between that run's TLS and
// plaintext runs, which were measured one after the other ("paired").
struct TlsCost {
  std::string workload;
  int pairs = 0;  // run numbers where both transports succeeded
  double throughput_ratio = 0, paired_throughput_ratio = 0;  // events/s, TLS / plaintext
  double broker_cpu_ratio = 0, bench_cpu_ratio = 0;          // CPU per event, TLS / plaintext
  bool has_latency = false;                                  // W3
  double p50_delta_ms = 0, p99_delta_ms = 0, paired_p50_delta_ms = 0;  // TLS - plaintext
  // The goal for TLS: W2 throughput at most 15 % lower, W3 p50 at
  // most 0.2 ms higher, judged on the paired figure; empty for W1.
  std::string goal;
  bool goal_met = false;
};

// One TlsCost per workload that has both plaintext and TLS summaries.
std::vector<TlsCost> CompareTls(const std::vector<RunResult>& results,
                                const std::vector<Summary>& summaries);
std::string TlsCostLine(const TlsCost& c);

// One human-readable line per run / per summary.
std::string RunLine(const RunResult& r, int runs);
std::string SummaryLine(const Summary& s);

// "W1", or "W1+mTLS" for a TLS run (a workload or a saga scenario).
std::string Label(const std::string& workload, bool tls);

// Everything as one JSON document. `tls_mode`: --tls as given.
std::string ToJson(const BenchConfig& config, const std::string& tls_mode,
                   const std::vector<RunResult>& results, const std::vector<Summary>& summaries,
                   const std::vector<TlsCost>& tls_costs);

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_REPORT_H_
