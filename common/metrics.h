#ifndef RELAY_COMMON_METRICS_H_
#define RELAY_COMMON_METRICS_H_

// Prometheus metrics (docs/OBSERVABILITY.md): counters, gauges and
// histograms kept in atomics, rendered in the text exposition format
// (version 0.0.4) when scraped.
//
//   metrics::Registry& r = metrics::Registry::Default();
//   metrics::Family<metrics::Counter>& appended = r.AddCounter(
//       "relay_broker_events_appended_total", "Events appended, by topic", {"topic"});
//   metrics::Counter& orders = appended.With({"orders"});  // keep the reference
//   orders.Add(12);                                         // on the hot path: one atomic add
//
// A value that already lives elsewhere (a group's lag, a log's size on disk)
// is read when scraped instead, by a collector:
//
//   r.AddCollector([&](metrics::Collection& c) {
//     c.Gauge("relay_broker_log_bytes", "Bytes of the topic's log on disk", {{"topic", t}}, n);
//   });
//
// Names follow Prometheus' conventions: base units, `_total` on counters,
// `_seconds`/`_bytes` suffixes, bounded label sets (topics, groups, event
// types; never an order or event id).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace relay::metrics {

// A count that only goes up. Thread-safe; Add is one relaxed atomic add.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending), with
// their sum. Thread-safe and lock-free: Observe is a search of the bounds
// and two or three relaxed atomic adds. A scrape may see a count and a sum
// that differ by the observations in progress.
class Histogram {
 public:
  // REQUIRES: `bounds` strictly ascending and finite (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Bucket bounds for durations in seconds, 50 µs to 10 s.
std::vector<double> LatencyBuckets();

// One metric name with its help text and label names; each distinct set of
// label values is a child made on first use and kept (at a stable address)
// for the registry's life. Thread-safe. With() takes a lock: call it once
// and keep the reference where the value moves often.
template <typename M>
class Family {
 public:
  // REQUIRES: as many values as the family has label names.
  M& With(const std::vector<std::string>& label_values);

 private:
  friend class Registry;
  // Appends the family in the text format: its header, then every child.
  void Render(std::string* out) const;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<M>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<M>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_ ABSL_GUARDED_BY(mu_);
};

using Labels = std::vector<std::pair<std::string, std::string>>;

// What a collector reports at scrape time. Samples of the same name are
// gathered into one family, whatever order they come in.
class Collection {
 public:
  void Counter(absl::string_view name, absl::string_view help, Labels labels, double value);
  void Gauge(absl::string_view name, absl::string_view help, Labels labels, double value);

 private:
  friend class Registry;
  struct Sample {
    Labels labels;
    double value;
  };
  struct Entry {
    std::string type;
    std::string help;
    std::vector<Sample> samples;
  };
  void Add(absl::string_view type, absl::string_view name, absl::string_view help, Labels labels,
           double value);
  std::map<std::string, Entry> families_;
};

// The metrics of a process. Thread-safe. Metric and label names are the
// programmer's: a name that is not valid Prometheus, or registered twice,
// aborts with a message (a bug found by the first test that starts it).
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process's registry, served by --metrics_listen (common/process.h).
  static Registry& Default();

  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);

  // `collect` runs on every scrape, on the scraping thread: it must be quick
  // and must not call back into the registry. Returns an id for
  // RemoveCollector, which must be called before what `collect` reads goes.
  int AddCollector(std::function<void(Collection&)> collect);
  // Waits for a scrape running the collector to finish.
  void RemoveCollector(int id);

  // Every metric, in the text exposition format, families sorted by name.
  std::string Expose() const;

 private:
  struct Entry;
  // Registers a family whose children `make` builds.
  template <typename M>
  Family<M>& Add(const std::string& name, const std::string& help,
                 std::vector<std::string> label_names, std::function<std::unique_ptr<M>()> make);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> families_ ABSL_GUARDED_BY(mu_);
  // Separate from mu_: see Expose().
  mutable absl::Mutex collect_mu_;
  std::map<int, std::function<void(Collection&)>> collectors_ ABSL_GUARDED_BY(collect_mu_);
  int next_collector_ ABSL_GUARDED_BY(collect_mu_) = 0;
};

// Prometheus text format helpers, exposed for tests and for callers that
// format their own samples.
bool IsValidMetricName(absl::string_view name);
bool IsValidLabelName(absl::string_view name);
// `\`, `"` and newline escaped, as a label value must be.
std::string EscapeLabelValue(absl::string_view value);
// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled so.
std::string FormatValue(double value);

}  // namespace relay::metrics

#endif  // RELAY_COMMON_METRICS_H_
