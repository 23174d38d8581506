#include "bench/saga_bench_report.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/bench_report.h"

namespace relay::bench {
namespace {

// Issue 9's goals on the 2-core machine.
constexpr double kTargetOrdersPerSecond = 10000;
constexpr double kTargetP99Ms = 20;

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Num(double v) { return absl::StrFormat("%.6g", v); }

// "12.3" or ">=12.3" for a lower bound.
std::string Ms(double v, bool lb) { return absl::StrFormat("%s%.1f", lb ? ">=" : "", v); }

std::string LatencyJson(const Latency& l) {
  return absl::StrCat("{\"count\": ", l.count, ", \"censored\": ", l.censored,
                      ", \"p50_ms\": ", Num(l.p50), ", \"p90_ms\": ", Num(l.p90),
                      ", \"p99_ms\": ", Num(l.p99), ", \"max_ms\": ", Num(l.max),
                      ", \"p50_lower_bound\": ", l.p50_lb ? "true" : "false",
                      ", \"p99_lower_bound\": ", l.p99_lb ? "true" : "false",
                      ", \"max_lower_bound\": ", l.max_lb ? "true" : "false", "}");
}

std::string CpuLine(const std::vector<double>& cpu, double seconds) {
  std::vector<std::string> parts;
  double total = 0;
  for (size_t i = 0; i < cpu.size() && i < 5; ++i) {
    parts.push_back(absl::StrFormat("%s %.1f", kCpuNames[i], cpu[i]));
    total += cpu[i];
  }
  return absl::StrFormat("cpu s: %s = %.1f of %.1f core-s (2 cores)", absl::StrJoin(parts, ", "),
                         total, 2 * seconds);
}

// `per_process` (one per kCpuNames) per order that ended within the
// window, times `scale`, per process and in all (the last entry).
std::vector<double> PerOrder(const std::vector<double>& per_process, const SagaRun& r,
                             double scale) {
  std::vector<double> out;
  double total = 0;
  for (double c : per_process) {
    total += c;
    out.push_back(r.terminal_in_window == 0 ? 0 : c * scale / r.terminal_in_window);
  }
  out.push_back(r.terminal_in_window == 0 ? 0 : total * scale / r.terminal_in_window);
  return out;
}

std::vector<double> CpuMsPerOrder(const SagaRun& r) { return PerOrder(r.cpu, r, 1e3); }

// "context switches per order: broker 9.1, order 15.0, … = 40.2".
std::string SwitchesLine(const std::vector<double>& per_order) {
  if (per_order.empty()) return "";
  std::vector<std::string> parts;
  for (size_t i = 0; i + 1 < per_order.size() && i < 5; ++i) {
    parts.push_back(absl::StrFormat("%s %.1f", kCpuNames[i], per_order[i]));
  }
  return absl::StrFormat("context switches per order: %s = %.1f", absl::StrJoin(parts, ", "),
                         per_order.back());
}

// "peak RSS MB: broker 52.1, order 40.3, …" for the five processes.
std::string MemoryLine(const std::string& what, const std::vector<double>& mb) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < mb.size() && i < 5; ++i) {
    parts.push_back(absl::StrFormat("%s %.1f", kCpuNames[i], mb[i]));
  }
  return absl::StrFormat("%s MB: %s", what, absl::StrJoin(parts, ", "));
}

}  // namespace

std::vector<SagaSummary> SummarizeSaga(const std::vector<SagaRun>& runs) {
  using Key = std::pair<std::string, bool>;  // scenario, tls
  std::vector<Key> order;
  std::map<Key, std::vector<const SagaRun*>> by;
  for (const SagaRun& r : runs) {
    const Key key(r.scenario, r.tls);
    if (by[key].empty()) order.push_back(key);
    by[key].push_back(&r);
  }
  std::vector<SagaSummary> out;
  for (const Key& key : order) {
    const std::string& name = key.first;
    SagaSummary s;
    s.scenario = name;
    s.tls = key.second;
    for (const SagaRun* r : by[key]) {
      ++s.runs;
      if (!r->ok) ++s.failed;
      s.not_terminal = std::max(s.not_terminal, r->not_terminal);
      s.place_failed = std::max(s.place_failed, r->place_failed);
      s.cancelled = std::max(s.cancelled, r->cancelled);
      // Memory: the largest of any run, successful or not.
      s.peak_rss_mb.resize(std::max(s.peak_rss_mb.size(), r->peak_rss_mb.size()));
      for (size_t i = 0; i < r->peak_rss_mb.size(); ++i) {
        s.peak_rss_mb[i] = std::max(s.peak_rss_mb[i], r->peak_rss_mb[i]);
      }
      s.rss_after_mb.resize(std::max(s.rss_after_mb.size(), r->rss_after_mb.size()));
      for (size_t i = 0; i < r->rss_after_mb.size(); ++i) {
        s.rss_after_mb[i] = std::max(s.rss_after_mb[i], r->rss_after_mb[i]);
      }
    }
    const bool any_ok = s.failed < s.runs;
    std::vector<double> pps, tps, psmin, backlog, drain, p50, p90, p99, mx, pub50, pub99, pl50,
        pl99, secs;
    std::vector<std::vector<double>> cpu(5), cpu_per_order(6), switches_per_order(6);
    int p99_lb = 0;
    for (const SagaRun* r : by[key]) {
      if (any_ok && !r->ok) continue;
      pps.push_back(r->placed_per_second);
      tps.push_back(r->terminal_per_second);
      psmin.push_back(r->per_second_min);
      backlog.push_back(static_cast<double>(r->backlog_at_end));
      drain.push_back(r->drain_seconds);
      p50.push_back(r->latency.p50);
      p90.push_back(r->latency.p90);
      p99.push_back(r->latency.p99);
      mx.push_back(r->latency.max);
      pub50.push_back(r->to_publish.p50);
      pub99.push_back(r->to_publish.p99);
      pl50.push_back(r->place_rpc.p50);
      pl99.push_back(r->place_rpc.p99);
      secs.push_back(r->seconds);
      p99_lb += r->latency.p99_lb ? 1 : 0;
      for (size_t i = 0; i < cpu.size() && i < r->cpu.size(); ++i) cpu[i].push_back(r->cpu[i]);
      if (const std::vector<double> per_order = CpuMsPerOrder(*r);
          per_order.size() == cpu_per_order.size()) {
        for (size_t i = 0; i < per_order.size(); ++i) cpu_per_order[i].push_back(per_order[i]);
      }
      if (const std::vector<double> per_order = PerOrder(r->switches, *r, 1);
          per_order.size() == switches_per_order.size()) {
        for (size_t i = 0; i < per_order.size(); ++i) switches_per_order[i].push_back(per_order[i]);
      }
    }
    s.placed_per_second = Median(pps);
    s.terminal_per_second = Median(tps);
    s.per_second_min = Median(psmin);
    s.backlog_at_end = Median(backlog);
    s.drain_seconds = Median(drain);
    s.p50 = Median(p50);
    s.p90 = Median(p90);
    s.p99 = Median(p99);
    s.max = Median(mx);
    s.p99_lb = p99_lb * 2 >= static_cast<int>(p99.size()) && p99_lb > 0;
    s.publish_p50 = Median(pub50);
    s.publish_p99 = Median(pub99);
    s.place_p50 = Median(pl50);
    s.place_p99 = Median(pl99);
    s.seconds = Median(secs);
    for (auto& c : cpu) s.cpu.push_back(Median(c));
    for (size_t i = 0; i + 1 < cpu_per_order.size(); ++i)
      s.cpu_ms_per_order.push_back(Median(cpu_per_order[i]));
    s.total_cpu_ms_per_order = Median(cpu_per_order.back());
    if (!switches_per_order.back().empty()) {
      for (size_t i = 0; i + 1 < switches_per_order.size(); ++i)
        s.switches_per_order.push_back(Median(switches_per_order[i]));
      s.total_switches_per_order = Median(switches_per_order.back());
    }
    if (name == "S1") {
      s.target = absl::StrFormat("terminal orders/s >= %.0f", kTargetOrdersPerSecond);
      s.target_met = s.terminal_per_second >= kTargetOrdersPerSecond;
    } else {
      s.target = absl::StrFormat("p99 placed->confirmed <= %.0f ms", kTargetP99Ms);
      s.target_met =
          s.p99 <= kTargetP99Ms && !s.p99_lb && s.not_terminal == 0 && s.place_failed == 0;
    }
    if (s.failed > 0) s.target_met = false;
    out.push_back(s);
  }
  return out;
}

std::string SagaRunLines(const SagaRun& r, int runs) {
  std::string out = absl::StrFormat(
      "%s run %d/%d  (load %.1f)  %.1f s: placed %u (%.0f/s), terminal %u (%.0f/s",
      Label(r.scenario, r.tls), r.run, runs, r.load_before, r.seconds, r.placed_in_window,
      r.placed_per_second, r.terminal_in_window, r.terminal_per_second);
  if (r.scenario == "S1") {
    absl::StrAppend(&out, absl::StrFormat("; per second min %.0f median %.0f max %.0f",
                                          r.per_second_min, r.per_second_median, r.per_second_max));
  }
  absl::StrAppend(&out, absl::StrFormat("), backlog at end %u, ", r.backlog_at_end));
  absl::StrAppend(&out, r.not_terminal == 0 ? absl::StrFormat("drained in %.1f s", r.drain_seconds)
                                            : absl::StrFormat("%u NOT ended %.0f s later",
                                                              r.not_terminal, r.drain_seconds));
  absl::StrAppend(
      &out,
      absl::StrFormat("\n    in all: placed %u, confirmed %u, cancelled %u, PlaceOrder errors %u",
                      r.placed, r.confirmed, r.cancelled, r.place_failed));
  if (r.scenario == "S2")
    absl::StrAppend(&out, absl::StrFormat(", sender lag max %.1f ms", r.max_send_lag_ms));
  if (r.unmatched > 0 || r.duplicates > 0) {
    absl::StrAppend(&out, absl::StrFormat(", unmatched terminal events %u, redelivered %u",
                                          r.unmatched, r.duplicates));
  }
  absl::StrAppend(&out,
                  absl::StrFormat(", %.1f events/delivery msg", r.events_per_delivery_message));
  const Latency& l = r.latency;
  absl::StrAppend(
      &out, absl::StrFormat("\n    placed->%s (received): p50 %s  p90 %s  p99 %s  max %s ms",
                            r.scenario == "S1" ? "terminal" : "confirmed", Ms(l.p50, l.p50_lb),
                            Ms(l.p90, l.p90_lb), Ms(l.p99, l.p99_lb), Ms(l.max, l.max_lb)));
  if (l.censored > 0)
    absl::StrAppend(&out, absl::StrFormat(" (%u of %u not ended)", l.censored, l.count));
  absl::StrAppend(&out,
                  absl::StrFormat("\n    split: ->PlaceOrder answer p50 %s p99 %s ms; ->broker "
                                  "publish_time of the end event p50 %s p99 %s ms",
                                  Ms(r.place_rpc.p50, r.place_rpc.p50_lb),
                                  Ms(r.place_rpc.p99, r.place_rpc.p99_lb),
                                  Ms(r.to_publish.p50, r.to_publish.p50_lb),
                                  Ms(r.to_publish.p99, r.to_publish.p99_lb)));
  absl::StrAppend(&out, "\n    ", CpuLine(r.cpu, r.seconds));
  if (r.switches.size() == 5) {
    absl::StrAppend(&out, "\n    ", SwitchesLine(PerOrder(r.switches, r, 1)));
  }
  if (!r.peak_rss_mb.empty()) {
    absl::StrAppend(&out, "\n    ", MemoryLine("peak RSS", r.peak_rss_mb), "; ",
                    MemoryLine("RSS after the run", r.rss_after_mb));
  }
  for (const auto& [what, n] : r.failures)
    absl::StrAppend(&out, absl::StrFormat("\n    PlaceOrder %ux %s", n, what));
  if (!r.ok) absl::StrAppend(&out, "\n    FAILED: ", r.error);
  return out;
}

std::string SagaSummaryLines(const SagaSummary& s) {
  std::string out =
      absl::StrFormat("median %s (%d runs): placed %.0f/s, terminal %.0f/s",
                      Label(s.scenario, s.tls), s.runs, s.placed_per_second, s.terminal_per_second);
  if (s.scenario == "S1")
    absl::StrAppend(&out, absl::StrFormat(" (worst second %.0f)", s.per_second_min));
  absl::StrAppend(&out, absl::StrFormat(", backlog at end %.0f, drain %.1f s", s.backlog_at_end,
                                        s.drain_seconds));
  absl::StrAppend(
      &out, absl::StrFormat(
                "\n    placed->%s p50 %.1f p90 %.1f p99 %s max %.1f ms; "
                "->PlaceOrder answer p50 %.1f p99 %.1f; ->publish_time p50 %.1f p99 %.1f",
                s.scenario == "S1" ? "terminal" : "confirmed", s.p50, s.p90, Ms(s.p99, s.p99_lb),
                s.max, s.place_p50, s.place_p99, s.publish_p50, s.publish_p99));
  absl::StrAppend(&out, "\n    ", CpuLine(s.cpu, s.seconds));
  absl::StrAppend(&out, absl::StrFormat("; per order %.3f ms", s.total_cpu_ms_per_order));
  if (!s.switches_per_order.empty()) {
    std::vector<double> line = s.switches_per_order;
    line.push_back(s.total_switches_per_order);
    absl::StrAppend(&out, "\n    ", SwitchesLine(line));
  }
  if (!s.peak_rss_mb.empty()) {
    absl::StrAppend(&out, "\n    ", MemoryLine("largest peak RSS", s.peak_rss_mb), "; ",
                    MemoryLine("largest RSS after a run", s.rss_after_mb));
  }
  absl::StrAppend(
      &out, absl::StrFormat("\n    worst run: %u not ended, %u PlaceOrder errors, %u cancelled",
                            s.not_terminal, s.place_failed, s.cancelled));
  absl::StrAppend(&out, "\n    target ", s.target, ": ", s.target_met ? "MET" : "MISSED");
  if (s.failed > 0) absl::StrAppend(&out, absl::StrFormat("  (%d runs FAILED)", s.failed));
  return out;
}

std::vector<std::string> SagaTlsCostLines(const std::vector<SagaRun>& runs,
                                          const std::vector<SagaSummary>& summaries) {
  std::vector<std::string> out;
  for (const SagaSummary& tls : summaries) {
    if (!tls.tls) continue;
    const SagaSummary* plain = nullptr;
    for (const SagaSummary& s : summaries) {
      if (!s.tls && s.scenario == tls.scenario) plain = &s;
    }
    if (plain == nullptr) continue;
    std::map<int, std::pair<const SagaRun*, const SagaRun*>> by_run;
    for (const SagaRun& r : runs) {
      if (r.scenario != tls.scenario || !r.ok) continue;
      (r.tls ? by_run[r.run].second : by_run[r.run].first) = &r;
    }
    std::vector<double> ratio, p50, p99;
    for (const auto& [run, pair] : by_run) {
      if (pair.first == nullptr || pair.second == nullptr) continue;
      ratio.push_back(pair.first->terminal_per_second == 0
                          ? 0
                          : pair.second->terminal_per_second / pair.first->terminal_per_second);
      p50.push_back(pair.second->latency.p50 - pair.first->latency.p50);
      p99.push_back(pair.second->latency.p99 - pair.first->latency.p99);
    }
    std::string line = absl::StrFormat("mTLS/plaintext %s (%d pairs): ", tls.scenario,
                                       static_cast<int>(ratio.size()));
    if (tls.scenario == "S1") {
      absl::StrAppend(&line,
                      absl::StrFormat("terminal/s x%.3f (paired x%.3f)",
                                      plain->terminal_per_second == 0
                                          ? 0
                                          : tls.terminal_per_second / plain->terminal_per_second,
                                      Median(ratio)));
    }
    absl::StrAppend(&line, absl::StrFormat("%sp50 %+.1f ms (paired %+.1f), p99 %+.1f ms "
                                           "(paired %+.1f)",
                                           tls.scenario == "S1" ? ", " : "", tls.p50 - plain->p50,
                                           Median(p50), tls.p99 - plain->p99, Median(p99)));
    std::vector<std::string> cpu;
    for (size_t i = 0; i < tls.cpu_ms_per_order.size() && i < plain->cpu_ms_per_order.size(); ++i) {
      cpu.push_back(absl::StrFormat("%s %.3f->%.3f", kCpuNames[i], plain->cpu_ms_per_order[i],
                                    tls.cpu_ms_per_order[i]));
    }
    absl::StrAppend(
        &line,
        absl::StrFormat("\n    cpu ms/order: %s; all %.3f->%.3f (x%.2f)", absl::StrJoin(cpu, ", "),
                        plain->total_cpu_ms_per_order, tls.total_cpu_ms_per_order,
                        plain->total_cpu_ms_per_order == 0
                            ? 0
                            : tls.total_cpu_ms_per_order / plain->total_cpu_ms_per_order));
    out.push_back(line);
  }
  return out;
}

std::string SagaJson(const SagaConfig& c, const std::vector<SagaRun>& runs,
                     const std::vector<SagaSummary>& summaries) {
  std::string out = absl::StrCat(
      "{\n  \"config\": {\"duration_s\": ", Num(absl::ToDoubleSeconds(c.duration)),
      ", \"grace_s\": ", Num(absl::ToDoubleSeconds(c.grace)), ", \"concurrency\": ", c.concurrency,
      ", \"max_backlog\": ", c.max_backlog, ", \"rate\": ", Num(c.rate), ", \"warmup\": ", c.warmup,
      ", \"fsync\": ", JsonString(c.system.fsync), ", \"customers\": ", c.system.customers,
      ", \"temp_root\": ", JsonString(c.system.temp_root), "},\n  \"runs\": [");
  std::vector<std::string> rs;
  for (const SagaRun& r : runs) {
    std::vector<std::string> switches;
    for (size_t i = 0; i < r.switches.size() && i < 5; ++i)
      switches.push_back(absl::StrCat("\"", kCpuNames[i], "\": ", Num(r.switches[i])));
    std::vector<std::string> cpu, failures;
    for (size_t i = 0; i < r.cpu.size() && i < 5; ++i)
      cpu.push_back(absl::StrCat("\"", kCpuNames[i], "\": ", Num(r.cpu[i])));
    for (const auto& [what, n] : r.failures)
      failures.push_back(absl::StrCat(JsonString(what), ": ", n));
    std::vector<std::string> peak, after;
    for (size_t i = 0; i < r.peak_rss_mb.size() && i < 5; ++i)
      peak.push_back(absl::StrCat("\"", kCpuNames[i], "\": ", Num(r.peak_rss_mb[i])));
    for (size_t i = 0; i < r.rss_after_mb.size() && i < 5; ++i)
      after.push_back(absl::StrCat("\"", kCpuNames[i], "\": ", Num(r.rss_after_mb[i])));
    rs.push_back(absl::StrCat(
        "{\"scenario\": ", JsonString(r.scenario), ", \"tls\": ", r.tls ? "true" : "false",
        ", \"run\": ", r.run, ", \"ok\": ", r.ok ? "true" : "false",
        ", \"error\": ", JsonString(r.error), ", \"load_before\": ", Num(r.load_before),
        ", \"seconds\": ", Num(r.seconds), ", \"scheduled\": ", r.scheduled,
        ", \"placed\": ", r.placed, ", \"placed_in_window\": ", r.placed_in_window,
        ", \"place_failed\": ", r.place_failed, ", \"terminal_in_window\": ", r.terminal_in_window,
        ", \"placed_per_second\": ", Num(r.placed_per_second), ", \"terminal_per_second\": ",
        Num(r.terminal_per_second), ", \"per_second_min\": ", Num(r.per_second_min),
        ", \"per_second_median\": ", Num(r.per_second_median),
        ", \"per_second_max\": ", Num(r.per_second_max), ", \"backlog_at_end\": ", r.backlog_at_end,
        ", \"confirmed\": ", r.confirmed, ", \"cancelled\": ", r.cancelled,
        ", \"not_terminal\": ", r.not_terminal, ", \"drain_seconds\": ", Num(r.drain_seconds),
        ", \"unmatched\": ", r.unmatched, ", \"duplicates\": ", r.duplicates,
        ", \"max_send_lag_ms\": ", Num(r.max_send_lag_ms),
        ", \"events_per_delivery_message\": ", Num(r.events_per_delivery_message),
        ", \"latency\": ", LatencyJson(r.latency), ", \"to_publish\": ", LatencyJson(r.to_publish),
        ", \"place_rpc\": ", LatencyJson(r.place_rpc), ", \"cpu_seconds\": {",
        absl::StrJoin(cpu, ", "), "}, \"context_switches\": {", absl::StrJoin(switches, ", "),
        "}, \"peak_rss_mb\": {", absl::StrJoin(peak, ", "), "}, \"rss_after_mb\": {",
        absl::StrJoin(after, ", "), "}, \"failures\": {", absl::StrJoin(failures, ", "), "}}"));
  }
  absl::StrAppend(&out, "\n    ", absl::StrJoin(rs, ",\n    "), "\n  ],\n  \"medians\": [");
  std::vector<std::string> ms;
  for (const SagaSummary& s : summaries) {
    std::vector<std::string> cpu;
    for (size_t i = 0; i < s.cpu.size() && i < 5; ++i)
      cpu.push_back(absl::StrCat("\"", kCpuNames[i], "\": ", Num(s.cpu[i])));
    ms.push_back(absl::StrCat(
        "{\"scenario\": ", JsonString(s.scenario), ", \"tls\": ", s.tls ? "true" : "false",
        ", \"runs\": ", s.runs, ", \"cpu_ms_per_order\": ", Num(s.total_cpu_ms_per_order),
        ", \"context_switches_per_order\": ", Num(s.total_switches_per_order),
        ", \"failed\": ", s.failed, ", \"placed_per_second\": ", Num(s.placed_per_second),
        ", \"terminal_per_second\": ", Num(s.terminal_per_second), ", \"per_second_min\": ",
        Num(s.per_second_min), ", \"backlog_at_end\": ", Num(s.backlog_at_end),
        ", \"drain_seconds\": ", Num(s.drain_seconds), ", \"p50_ms\": ", Num(s.p50),
        ", \"p90_ms\": ", Num(s.p90), ", \"p99_ms\": ", Num(s.p99),
        ", \"p99_lower_bound\": ", s.p99_lb ? "true" : "false", ", \"max_ms\": ", Num(s.max),
        ", \"publish_p50_ms\": ", Num(s.publish_p50), ", \"publish_p99_ms\": ", Num(s.publish_p99),
        ", \"place_p50_ms\": ", Num(s.place_p50), ", \"place_p99_ms\": ", Num(s.place_p99),
        ", \"not_terminal_worst\": ", s.not_terminal, ", \"place_failed_worst\": ", s.place_failed,
        ", \"cpu_seconds\": {", absl::StrJoin(cpu, ", "), "}, \"target\": ", JsonString(s.target),
        ", \"target_met\": ", s.target_met ? "true" : "false", "}"));
  }
  absl::StrAppend(&out, "\n    ", absl::StrJoin(ms, ",\n    "), "\n  ]\n}\n");
  return out;
}

}  // namespace relay::bench
