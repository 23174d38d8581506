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
  int runs = 0;
  int failed = 0;
  double seconds = 0;
  double events_per_second = 0;
  double publish_events_per_second = 0;
  bool has_latency = false;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
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

// One summary per workload, in first-seen order.
std::vector<Summary> Summarize(const std::vector<RunResult>& results);

// One human-readable line per run / per summary.
std::string RunLine(const RunResult& r, int runs);
std::string SummaryLine(const Summary& s);

// Everything as one JSON document.
std::string ToJson(const BenchConfig& config, const std::vector<RunResult>& results,
                   const std::vector<Summary>& summaries);

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_REPORT_H_
