#include "tests/e2e/rss_sampler.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace relay::testing {

int64_t ReadRssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    int64_t kb = -1;
    fields >> kb;
    return kb;
  }
  return -1;
}

double LoadAverage1() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

RssSampler::RssSampler(std::string csv_path, absl::Duration period, PidSource pids)
    : csv_path_(std::move(csv_path)), period_(period), pids_(std::move(pids)) {
  std::ofstream(csv_path_, std::ios::trunc) << "elapsed_s,process,pid,rss_kb,load1\n";
  thread_ = std::thread([this] { Run(); });
}

RssSampler::~RssSampler() { Stop(); }

void RssSampler::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::vector<RssSample> RssSampler::samples() const {
  absl::MutexLock lock(&mu_);
  return samples_;
}

void RssSampler::Run() {
  const absl::Time start = absl::Now();
  std::ofstream csv(csv_path_, std::ios::app);
  do {
    // pids_() may wait for a restart in progress: take the time after it.
    const std::vector<std::pair<std::string, pid_t>> pids = pids_();
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    const double load1 = LoadAverage1();
    for (const auto& [name, pid] : pids) {
      int64_t kb = ReadRssKb(pid);
      // Under 1 MiB: a process caught inside exec() or while exiting (VmRSS
      // of a few KiB), not a running server; it would only distort the min.
      if (kb < 1024) continue;
      csv << absl::StrFormat("%.1f,%s,%d,%d,%.2f\n", elapsed, name, pid, kb, load1);
      absl::MutexLock lock(&mu_);
      samples_.push_back({elapsed, name, pid, kb, load1});
    }
    csv.flush();
  } while (!stop_.WaitForNotificationWithTimeout(period_));  // the sampling period
}

namespace {

int64_t Median(std::vector<int64_t> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

std::vector<RssSummary> SummarizeRss(const std::vector<RssSample>& samples, double load_seconds) {
  std::map<std::string, std::vector<const RssSample*>> by_process;
  for (const RssSample& s : samples) {
    if (s.elapsed_s <= load_seconds) by_process[s.process].push_back(&s);
  }
  std::vector<RssSummary> out;
  for (const auto& [name, list] : by_process) {
    RssSummary r;
    r.process = name;
    r.samples = static_cast<int>(list.size());
    std::vector<int64_t> all, q1, baseline, q4;
    const pid_t last_pid = list.back()->pid;
    for (const RssSample* s : list) {
      const double f = s->elapsed_s / load_seconds;
      all.push_back(s->rss_kb);
      if (f < 0.25) q1.push_back(s->rss_kb);
      if (f >= 0.25 && f < 0.75 && s->pid == last_pid) baseline.push_back(s->rss_kb);
      if (f >= 0.75) q4.push_back(s->rss_kb);
    }
    r.min_kb = *std::min_element(all.begin(), all.end());
    r.max_kb = *std::max_element(all.begin(), all.end());
    r.median_kb = Median(all);
    r.first_quarter_median_kb = Median(q1);
    r.baseline_median_kb = Median(baseline);
    r.last_quarter_median_kb = Median(q4);
    r.last_quarter_max_kb = q4.empty() ? 0 : *std::max_element(q4.begin(), q4.end());
    r.bound_kb =
        static_cast<int64_t>(kGrowthFactor * static_cast<double>(r.baseline_median_kb)) + kSlackKb;
    r.bounded = !baseline.empty() && !q4.empty() && r.last_quarter_median_kb <= r.bound_kb;
    out.push_back(r);
  }
  return out;
}

std::string FormatRssTable(const std::vector<RssSummary>& summaries) {
  auto mib = [](int64_t kb) { return absl::StrFormat("%.1f", static_cast<double>(kb) / 1024); };
  std::string out =
      absl::StrFormat("%-10s %4s %8s %8s %8s | %8s %8s %8s %8s | %8s %s\n", "RSS MiB", "n", "min",
                      "median", "max", "Q1 med", "base", "Q4 med", "Q4 max", "bound", "bounded");
  for (const RssSummary& r : summaries) {
    absl::StrAppend(&out,
                    absl::StrFormat("%-10s %4d %8s %8s %8s | %8s %8s %8s %8s | %8s %s\n", r.process,
                                    r.samples, mib(r.min_kb), mib(r.median_kb), mib(r.max_kb),
                                    mib(r.first_quarter_median_kb), mib(r.baseline_median_kb),
                                    mib(r.last_quarter_median_kb), mib(r.last_quarter_max_kb),
                                    mib(r.bound_kb), r.bounded ? "yes" : "NO"));
  }
  return out;
}

}  // namespace relay::testing
