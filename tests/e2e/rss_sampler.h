#ifndef RELAY_TESTS_E2E_RSS_SAMPLER_H_
#define RELAY_TESTS_E2E_RSS_SAMPLER_H_

// Resident memory of processes over a long run (soak_test): a sampler that
// records /proc/<pid>/status VmRSS every period into a CSV file, and the
// per-process summary and bounded-memory verdict of docs/SOAK.md.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace relay::testing {

// VmRSS of `pid` in KiB, or -1 when it cannot be read (no such process, or
// a zombie).
int64_t ReadRssKb(pid_t pid);
// The 1-minute load average of the machine, or -1.
double LoadAverage1();

struct RssSample {
  double elapsed_s = 0;  // since the sampler started
  std::string process;
  pid_t pid = 0;
  int64_t rss_kb = 0;
  double load1 = 0;
};

// Samples every `period` (the first at once) on its own thread until Stop()
// or destruction, appending "elapsed_s,process,pid,rss_kb,load1" lines to
// `csv_path`. `pids` names the processes to sample now (a process being
// restarted may be left out); it is called on the sampler thread.
// Thread-safe.
class RssSampler {
 public:
  using PidSource = std::function<std::vector<std::pair<std::string, pid_t>>()>;
  RssSampler(std::string csv_path, absl::Duration period, PidSource pids);
  ~RssSampler();
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;

  // Stops sampling and waits for the thread. Idempotent.
  void Stop();
  std::vector<RssSample> samples() const;

 private:
  void Run();

  const std::string csv_path_;
  const absl::Duration period_;
  const PidSource pids_;
  absl::Notification stop_;
  mutable absl::Mutex mu_;
  std::vector<RssSample> samples_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// One process's memory over a run of `load_seconds` (samples after it, the
// settle phase, are left out).
struct RssSummary {
  std::string process;
  int samples = 0;
  int64_t min_kb = 0, median_kb = 0, max_kb = 0;
  int64_t first_quarter_median_kb = 0;
  // Baseline: median of the middle half of the run (25-75 %), counting only
  // the incarnation (pid) that is still running in the last quarter, so a
  // restarted broker is compared with itself.
  int64_t baseline_median_kb = 0;
  int64_t last_quarter_median_kb = 0;
  int64_t last_quarter_max_kb = 0;
  int64_t bound_kb = 0;  // kGrowthFactor * baseline + kSlackKb
  bool bounded = false;  // last_quarter_median_kb <= bound_kb
};

// The bounded-memory criterion (docs/SOAK.md): the last quarter's median RSS
// is at most kGrowthFactor times the baseline plus kSlackKb.
inline constexpr double kGrowthFactor = 1.5;
inline constexpr int64_t kSlackKb = 16 * 1024;

std::vector<RssSummary> SummarizeRss(const std::vector<RssSample>& samples, double load_seconds);
// A fixed-width table of `summaries`, one line per process, MiB.
std::string FormatRssTable(const std::vector<RssSummary>& summaries);

}  // namespace relay::testing

#endif  // RELAY_TESTS_E2E_RSS_SAMPLER_H_
