#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace relay::metrics {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "metrics: %s\n", message.c_str());
  std::abort();
}

void AtomicAdd(std::atomic<double>& a, double delta) {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + delta, std::memory_order_relaxed)) {
  }
}

// Backslash and newline escaped, and with `quote` the double quote too: a
// `# HELP` text, or (quoted) a label value.
std::string Escape(absl::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
  }
  out += '}';
  return out;
}

Labels Zip(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  Labels labels;
  labels.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) labels.emplace_back(names[i], values[i]);
  return labels;
}

void AppendHeader(std::string* out, absl::string_view name, absl::string_view help,
                  absl::string_view type) {
  absl::StrAppend(out, "# HELP ", name, " ", Escape(help, /*quote=*/false), "\n# TYPE ", name, " ",
                  type, "\n");
}

void AppendSample(std::string* out, absl::string_view name, const Labels& labels, double value) {
  absl::StrAppend(out, name, FormatLabels(labels), " ", FormatValue(value), "\n");
}

void CheckLabelNames(const std::string& metric, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (!IsValidLabelName(n) || n == "le") {
      Die(absl::StrCat("metric ", metric, ": label name '", n, "' is not valid"));
    }
  }
}

}  // namespace

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || absl::string_view(name).substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeLabelValue(absl::string_view value) { return Escape(value, /*quote=*/true); }

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest text that reads back as the same double.
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Die("histogram bounds must be finite and strictly ascending");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // The first bucket whose upper bound holds v (le: less or equal).
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

template <typename M>
M& Family<M>::With(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    Die(absl::StrCat("metric ", name_, " takes ", label_names_.size(), " label values, not ",
                     label_values.size()));
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<M>& child = children_[label_values];
  if (child == nullptr) child = make_();
  return *child;
}

void Collection::Counter(absl::string_view name, absl::string_view help, Labels labels,
                         double value) {
  Add("counter", name, help, std::move(labels), value);
}

void Collection::Gauge(absl::string_view name, absl::string_view help, Labels labels,
                       double value) {
  Add("gauge", name, help, std::move(labels), value);
}

void Collection::Add(absl::string_view type, absl::string_view name, absl::string_view help,
                     Labels labels, double value) {
  if (!IsValidMetricName(name)) Die(absl::StrCat("metric name '", name, "' is not valid"));
  for (const auto& label : labels) {
    if (!IsValidLabelName(label.first) || label.first == "le") {
      Die(absl::StrCat("metric ", name, ": label name '", label.first, "' is not valid"));
    }
  }
  Entry& e = families_[std::string(name)];
  if (e.type.empty()) {
    e.type = std::string(type);
    e.help = std::string(help);
  }
  e.samples.push_back(Sample{std::move(labels), value});
}

template <>
void Family<Counter>::Render(std::string* out) const {
  AppendHeader(out, name_, help_, "counter");
  absl::MutexLock lock(&mu_);
  for (const auto& [values, c] : children_) {
    AppendSample(out, name_, Zip(label_names_, values), static_cast<double>(c->value()));
  }
}

template <>
void Family<Gauge>::Render(std::string* out) const {
  AppendHeader(out, name_, help_, "gauge");
  absl::MutexLock lock(&mu_);
  for (const auto& [values, g] : children_) {
    AppendSample(out, name_, Zip(label_names_, values), g->value());
  }
}

template <>
void Family<Histogram>::Render(std::string* out) const {
  AppendHeader(out, name_, help_, "histogram");
  const std::string bucket = name_ + "_bucket";
  absl::MutexLock lock(&mu_);
  for (const auto& [values, h] : children_) {
    const Labels labels = Zip(label_names_, values);
    const Histogram::Snapshot snap = h->Read();
    for (size_t i = 0; i <= snap.bounds.size(); ++i) {
      Labels with_le = labels;
      with_le.emplace_back("le", i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf");
      AppendSample(out, bucket, with_le, static_cast<double>(snap.cumulative[i]));
    }
    AppendSample(out, name_ + "_sum", labels, snap.sum);
    AppendSample(out, name_ + "_count", labels, static_cast<double>(snap.cumulative.back()));
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// A registered family, owned by its renderer.
struct Registry::Entry {
  std::function<void(std::string*)> render;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& Registry::Default() {
  static Registry* registry = new Registry();
  return *registry;
}

template <typename M>
Family<M>& Registry::Add(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names,
                         std::function<std::unique_ptr<M>()> make) {
  if (!IsValidMetricName(name)) Die(absl::StrCat("metric name '", name, "' is not valid"));
  CheckLabelNames(name, label_names);
  std::shared_ptr<Family<M>> family(
      new Family<M>(name, help, std::move(label_names), std::move(make)));
  auto entry = std::make_unique<Entry>();
  entry->render = [family](std::string* out) { family->Render(out); };
  absl::MutexLock lock(&mu_);
  if (!families_.emplace(name, std::move(entry)).second) {
    Die(absl::StrCat("metric ", name, " is registered twice"));
  }
  return *family;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  return Add<Counter>(name, help, std::move(label_names),
                      [] { return std::make_unique<Counter>(); });
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, std::move(label_names), [] { return std::make_unique<Gauge>(); });
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  Histogram check(bounds);  // dies here, at registration, on bad bounds
  return Add<Histogram>(name, help, std::move(label_names),
                        [bounds] { return std::make_unique<Histogram>(bounds); });
}

int Registry::AddCollector(std::function<void(Collection&)> collect) {
  absl::MutexLock lock(&collect_mu_);
  const int id = next_collector_++;
  collectors_.emplace(id, std::move(collect));
  return id;
}

void Registry::RemoveCollector(int id) {
  // Expose() runs collectors under collect_mu_, so once this lock is held
  // no scrape is inside this one.
  absl::MutexLock lock(&collect_mu_);
  collectors_.erase(id);
}

std::string Registry::Expose() const {
  // Collectors take the locks of what they read (a group's, a database's);
  // code holding those may register a metric (mu_). So collectors run under
  // collect_mu_ alone, never under mu_.
  Collection collected;
  {
    absl::MutexLock lock(&collect_mu_);
    for (const auto& [id, collect] : collectors_) collect(collected);
  }
  // Registered and collected families merged in name order; a collected
  // name that is also registered adds its samples under the one header.
  std::map<std::string, std::string> blocks;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, entry] : families_) entry->render(&blocks[name]);
  }
  for (const auto& [name, e] : collected.families_) {
    std::string& block = blocks[name];
    if (block.empty()) AppendHeader(&block, name, e.help, e.type);
    for (const Collection::Sample& s : e.samples) AppendSample(&block, name, s.labels, s.value);
  }
  std::string out;
  for (const auto& [name, block] : blocks) out += block;
  return out;
}

}  // namespace relay::metrics
