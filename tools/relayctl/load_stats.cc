#include "tools/relayctl/load_stats.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string BucketName(absl::Duration upper) {
  if (upper == absl::InfiniteDuration()) return "> 10s";
  return absl::StrCat("<= ", absl::FormatDuration(upper));
}

}  // namespace

LatencySummary SummarizeLatencies(std::vector<absl::Duration> samples) {
  LatencySummary summary;
  summary.count = samples.size();
  if (samples.empty()) return summary;
  std::sort(samples.begin(), samples.end());
  summary.p50 = Percentile(samples, 50);
  summary.p90 = Percentile(samples, 90);
  summary.p99 = Percentile(samples, 99);
  summary.max = samples.back();
  return summary;
}

std::vector<HistogramBucket> LatencyHistogram(const std::vector<absl::Duration>& samples) {
  std::vector<HistogramBucket> buckets;
  for (int64_t decade = 1; decade <= 1000; decade *= 10) {
    for (int64_t step : {1, 2, 5}) buckets.push_back({absl::Milliseconds(decade * step), 0});
  }
  buckets.push_back({absl::Seconds(10), 0});
  buckets.push_back({absl::InfiniteDuration(), 0});
  for (absl::Duration d : samples) {
    for (HistogramBucket& b : buckets) {
      if (d <= b.upper) {
        ++b.count;
        break;
      }
    }
  }
  size_t first = 0;
  while (first < buckets.size() && buckets[first].count == 0) ++first;
  size_t last = buckets.size();
  while (last > first && buckets[last - 1].count == 0) --last;
  return std::vector<HistogramBucket>(buckets.begin() + first, buckets.begin() + last);
}

uint64_t LoadTally::cancelled_total() const {
  uint64_t total = 0;
  for (const auto& [cause, n] : cancelled) total += n;
  return total;
}

uint64_t LoadTally::errors_total() const {
  uint64_t total = 0;
  for (const auto& [kind, n] : errors) total += n;
  return total;
}

void PrintLoadReport(std::ostream& out, const LoadTally& tally, double rate,
                     absl::Duration duration, absl::Duration elapsed, absl::Duration grace) {
  out << absl::StrFormat("load: %d orders sent at %g/s for %s (took %s), %d accepted\n\n",
                         tally.scheduled, rate, absl::FormatDuration(duration),
                         FormatDelta(elapsed), tally.placed);
  Table outcomes({{"OUTCOME"}, {"ORDERS", Table::kRight}, {"EXAMPLE"}});
  outcomes.AddRow({"confirmed", absl::StrCat(tally.confirmed), ""});
  for (const auto& [cause, n] : tally.cancelled) {
    outcomes.AddRow({absl::StrCat("cancelled: ", cause), absl::StrCat(n), ""});
  }
  for (const auto& [kind, n] : tally.errors) {
    auto example = tally.error_examples.find(kind);
    outcomes.AddRow({absl::StrCat("error: ", kind), absl::StrCat(n),
                     example == tally.error_examples.end() ? "" : example->second});
  }
  outcomes.AddRow({absl::StrCat("not ended ", absl::FormatDuration(grace), " after the run"),
                   absl::StrCat(tally.not_terminal), ""});
  outcomes.Render(out);

  LatencySummary s = SummarizeLatencies(tally.latencies);
  out << "\nlatency placed -> CONFIRMED/CANCELLED (" << s.count << " orders)";
  if (s.count == 0) {
    out << ": none ended\n";
    return;
  }
  out << ": p50 " << FormatDelta(s.p50) << "  p90 " << FormatDelta(s.p90) << "  p99 "
      << FormatDelta(s.p99) << "  max " << FormatDelta(s.max) << "\n";
  std::vector<HistogramBucket> buckets = LatencyHistogram(tally.latencies);
  size_t most = 1;
  for (const HistogramBucket& b : buckets) most = std::max(most, b.count);
  Table histogram({{"LATENCY"}, {"ORDERS", Table::kRight}, {""}});
  for (const HistogramBucket& b : buckets) {
    const size_t bar = (b.count * 40 + most - 1) / most;
    histogram.AddRow({BucketName(b.upper), absl::StrCat(b.count), std::string(bar, '#')});
  }
  histogram.Render(out);
}

google::protobuf::Value LoadReportJson(const LoadTally& tally, double rate, absl::Duration duration,
                                       absl::Duration elapsed) {
  google::protobuf::Value doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["rate"] = NumberValue(rate);
  f["duration_ms"] = NumberValue(absl::ToDoubleMilliseconds(duration));
  f["elapsed_ms"] = NumberValue(absl::ToDoubleMilliseconds(elapsed));
  f["sent"] = NumberValue(static_cast<double>(tally.scheduled));
  f["accepted"] = NumberValue(static_cast<double>(tally.placed));
  f["confirmed"] = NumberValue(static_cast<double>(tally.confirmed));
  auto& cancelled = *f["cancelled"].mutable_struct_value()->mutable_fields();
  for (const auto& [cause, n] : tally.cancelled)
    cancelled[cause] = NumberValue(static_cast<double>(n));
  auto& errors = *f["errors"].mutable_struct_value()->mutable_fields();
  for (const auto& [kind, n] : tally.errors) errors[kind] = NumberValue(static_cast<double>(n));
  f["not_terminal"] = NumberValue(static_cast<double>(tally.not_terminal));
  LatencySummary s = SummarizeLatencies(tally.latencies);
  auto& latency = *f["latency_ms"].mutable_struct_value()->mutable_fields();
  latency["count"] = NumberValue(static_cast<double>(s.count));
  latency["p50"] = NumberValue(absl::ToDoubleMilliseconds(s.p50));
  latency["p90"] = NumberValue(absl::ToDoubleMilliseconds(s.p90));
  latency["p99"] = NumberValue(absl::ToDoubleMilliseconds(s.p99));
  latency["max"] = NumberValue(absl::ToDoubleMilliseconds(s.max));
  return doc;
}

double EndedPerSecond(const FlowRun& run, absl::Duration duration) {
  // Order i is sent at i/rate, so the last one leaves just before
  // `duration` ends: dividing by `elapsed` alone would beat the rate.
  const absl::Duration time = run.interrupted ? run.elapsed : std::max(run.elapsed, duration);
  if (time <= absl::ZeroDuration()) return 0;
  return static_cast<double>(run.tally.confirmed + run.tally.cancelled_total()) /
         absl::ToDoubleSeconds(time);
}

void PrintCompareReport(std::ostream& out, const std::vector<FlowRun>& runs, double rate,
                        absl::Duration duration, absl::Duration grace) {
  out << absl::StrFormat(
      "compare: orders at %g/s for %s through each flow, one after the other\n\n", rate,
      absl::FormatDuration(duration));
  std::vector<Table::Column> columns = {{""}};
  std::set<std::string> causes, errors;
  for (const FlowRun& r : runs) {
    columns.push_back({r.flow, Table::kRight});
    for (const auto& [cause, n] : r.tally.cancelled) causes.insert(cause);
    for (const auto& [kind, n] : r.tally.errors) errors.insert(kind);
  }
  Table table(std::move(columns));
  // A row of one value per run.
  auto row = [&](const std::string& label, auto value) {
    std::vector<std::string> cells = {label};
    for (const FlowRun& r : runs) cells.push_back(value(r));
    table.AddRow(std::move(cells));
  };
  auto count = [](uint64_t n) { return absl::StrCat(n); };
  auto in = [](const std::map<std::string, uint64_t>& counts, const std::string& key) {
    auto it = counts.find(key);
    return it == counts.end() ? uint64_t{0} : it->second;
  };
  auto latency = [](const FlowRun& r, absl::Duration LatencySummary::*field) {
    LatencySummary s = SummarizeLatencies(r.tally.latencies);
    return s.count == 0 ? std::string("-") : FormatDelta(s.*field);
  };
  row("order-service", [](const FlowRun& r) { return r.address; });
  row("orders sent", [&](const FlowRun& r) { return count(r.tally.scheduled); });
  row("orders placed", [&](const FlowRun& r) { return count(r.tally.placed); });
  row("confirmed", [&](const FlowRun& r) { return count(r.tally.confirmed); });
  row("cancelled", [&](const FlowRun& r) { return count(r.tally.cancelled_total()); });
  for (const std::string& cause : causes) {
    row(absl::StrCat("  ", cause),
        [&](const FlowRun& r) { return count(in(r.tally.cancelled, cause)); });
  }
  row("errors", [&](const FlowRun& r) { return count(r.tally.errors_total()); });
  for (const std::string& kind : errors) {
    row(absl::StrCat("  ", kind),
        [&](const FlowRun& r) { return count(in(r.tally.errors, kind)); });
  }
  row(absl::StrCat("not ended ", absl::FormatDuration(grace), " after the run"),
      [&](const FlowRun& r) { return count(r.tally.not_terminal); });
  row("placed -> end p50", [&](const FlowRun& r) { return latency(r, &LatencySummary::p50); });
  row("placed -> end p99", [&](const FlowRun& r) { return latency(r, &LatencySummary::p99); });
  row("orders/s ended",
      [&](const FlowRun& r) { return absl::StrFormat("%.1f", EndedPerSecond(r, duration)); });
  table.Render(out);
  out << "\nThe same orders (one seed) through each flow in turn, sharing inventory and payment,\n"
         "no faults. Under faults (payment down, slow inventory, a burst) see bench/flow_compare\n"
         "and docs/EVENT-DRIVEN.md.\n";
  // Shared accounts and stock: a later run may find them spent by an
  // earlier one, which is not the flow's doing.
  auto spent = [](const FlowRun& r) {
    auto count = [&](const char* cause) {
      auto it = r.tally.cancelled.find(cause);
      return it == r.tally.cancelled.end() ? uint64_t{0} : it->second;
    };
    return count("out_of_stock") + count("payment_declined");
  };
  for (size_t i = 1; i < runs.size(); ++i) {
    if (spent(runs[i]) > spent(runs[0])) {
      out << absl::StrFormat(
          "%s ran second and had more out_of_stock/payment_declined: %s spent stock and\n"
          "balances first (relayctl stock set, account deposit; or --customers/--skus).\n",
          runs[i].flow, runs[0].flow);
    }
  }
}

google::protobuf::Value CompareReportJson(const std::vector<FlowRun>& runs, double rate,
                                          absl::Duration duration, absl::Duration grace) {
  google::protobuf::Value doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["rate"] = NumberValue(rate);
  f["duration_ms"] = NumberValue(absl::ToDoubleMilliseconds(duration));
  f["grace_ms"] = NumberValue(absl::ToDoubleMilliseconds(grace));
  auto& flows = *f["flows"].mutable_struct_value()->mutable_fields();
  for (const FlowRun& r : runs) {
    google::protobuf::Value flow = LoadReportJson(r.tally, rate, duration, r.elapsed);
    auto& ff = *flow.mutable_struct_value()->mutable_fields();
    ff["address"] = StringValue(r.address);
    ff["ended_per_s"] = NumberValue(EndedPerSecond(r, duration));
    flows[r.flow] = std::move(flow);
  }
  return doc;
}

}  // namespace relay::ctl
