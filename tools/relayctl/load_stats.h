#ifndef RELAY_TOOLS_RELAYCTL_LOAD_STATS_H_
#define RELAY_TOOLS_RELAYCTL_LOAD_STATS_H_

// The arithmetic of `relayctl load` and `relayctl compare`: latency
// percentiles, a log-scale histogram, the outcome counts and the reports,
// separate from the gRPC driving so they are tested on their own.

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace relay::ctl {

struct LatencySummary {
  size_t count = 0;
  absl::Duration p50, p90, p99, max;
};

// Nearest-rank percentiles of `samples` (any order); all zero when empty.
LatencySummary SummarizeLatencies(std::vector<absl::Duration> samples);

struct HistogramBucket {
  absl::Duration upper;  // Inclusive; InfiniteDuration() for the last.
  size_t count = 0;
};

// Counts of `samples` in 1-2-5 buckets from 1ms to 10s plus one above,
// trimmed of empty buckets at both ends.
std::vector<HistogramBucket> LatencyHistogram(const std::vector<absl::Duration>& samples);

// What happened to the orders of one load run.
struct LoadTally {
  uint64_t scheduled = 0;  // PlaceOrder calls made.
  uint64_t placed = 0;     // Accepted by order-service.
  uint64_t confirmed = 0;
  std::map<std::string, uint64_t> cancelled;          // By cause, e.g. "out_of_stock".
  std::map<std::string, uint64_t> errors;             // By "place: UNAVAILABLE", "watch: ...".
  std::map<std::string, std::string> error_examples;  // One message per error kind.
  uint64_t not_terminal = 0;              // Placed but not ended within the grace period.
  uint64_t place_unavailable = 0;         // Place errors that were UNAVAILABLE/DEADLINE_EXCEEDED.
  std::vector<absl::Duration> latencies;  // Place sent -> terminal state seen.

  uint64_t cancelled_total() const;
  uint64_t errors_total() const;
};

// The report for people: outcome table, percentiles, histogram.
void PrintLoadReport(std::ostream& out, const LoadTally& tally, double rate,
                     absl::Duration duration, absl::Duration elapsed, absl::Duration grace);

// The same as one JSON value.
google::protobuf::Value LoadReportJson(const LoadTally& tally, double rate, absl::Duration duration,
                                       absl::Duration elapsed);

// One column of `relayctl compare`: one flow's load run.
struct FlowRun {
  std::string flow;     // "events", "sync".
  std::string address;  // The order-service the run went through.
  LoadTally tally;
  absl::Duration elapsed;    // First order sent to last one ended.
  bool interrupted = false;  // Ctrl-C cut the run short.
};

// Orders of `run` that ended (confirmed or cancelled) per second of the
// run: the `duration` orders were placed for, or `elapsed` when longer (the
// last ones ended after it) or cut short; zero for no time.
double EndedPerSecond(const FlowRun& run, absl::Duration duration);

// One table with a column per run: orders sent and placed, confirmed,
// cancelled by cause, errors by kind, not ended, placed -> end p50/p99 and
// orders/s ended, then what it means.
void PrintCompareReport(std::ostream& out, const std::vector<FlowRun>& runs, double rate,
                        absl::Duration duration, absl::Duration grace);

// The same as one JSON value: {"rate", "duration_ms", "grace_ms", "flows":
// {flow: LoadReportJson() plus "address" and "ended_per_s"}}.
google::protobuf::Value CompareReportJson(const std::vector<FlowRun>& runs, double rate,
                                          absl::Duration duration, absl::Duration grace);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_LOAD_STATS_H_
