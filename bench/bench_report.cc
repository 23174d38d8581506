#include "bench/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace relay::bench {
namespace {

// Issue 9's goals on the 2-core machine with fsync before ack, in its
// shape (--batch=100 --inflight=10 --max_in_flight=512). W2-2c's, "two
// consumers at least as fast as one", is set by Summarize() once W2-1c's
// median is known.
void SetTarget(Summary& s) {
  if (s.workload == "W1") {
    s.target = "events/s >= 550000";
    s.target_met = s.events_per_second >= 550000;
  } else if (s.workload == "W2-1c") {
    s.target = "events/s >= 350000, broker cpu/event <= 3 us";
    s.target_met = s.events_per_second >= 350000 && s.broker_cpu_us_per_event <= 3.0;
  } else if (s.workload == "W3") {
    s.target = "p50 <= 0.5 ms, p99 <= 2 ms";
    s.target_met = s.p50_ms <= 0.5 && s.p99_ms <= 2.0;
  }
  if (s.failed > 0) s.target_met = false;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Num(double v) { return absl::StrFormat("%.6g", v); }

// The goal for what mutual TLS may cost.
constexpr double kTlsMaxThroughputCost = 0.15;  // W2 events/s
constexpr double kTlsMaxP50CostMs = 0.2;        // W3

// Microseconds of CPU per event handled (received when a consumer ran,
// else published).
double CpuMicrosPerEvent(double cpu_seconds, const RunResult& r) {
  const uint64_t n = r.received > 0 ? r.received : r.published;
  return n == 0 ? 0 : cpu_seconds * 1e6 / static_cast<double>(n);
}

double Ratio(double a, double b) { return b == 0 ? 0 : a / b; }

}  // namespace

std::string Label(const std::string& workload, bool tls) {
  return tls ? absl::StrCat(workload, "+mTLS") : workload;
}

int64_t Percentile(const std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

std::string TempRoot(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<Summary> Summarize(const std::vector<RunResult>& results) {
  using Key = std::pair<std::string, bool>;  // workload, tls
  std::vector<Key> order;
  std::map<Key, std::vector<const RunResult*>> by_workload;
  for (const RunResult& r : results) {
    const Key key(r.workload, r.tls);
    if (by_workload[key].empty()) order.push_back(key);
    by_workload[key].push_back(&r);
  }
  std::vector<Summary> out;
  for (const Key& w : order) {
    Summary s;
    s.workload = w.first;
    s.tls = w.second;
    std::vector<double> secs, eps, peps, p50, p99, p999, mx, broker_cpu, bench_cpu;
    std::vector<double> broker_cpu_s, fsyncs, fdatasyncs;
    for (const RunResult* r : by_workload[w]) {
      ++s.runs;
      if (!r->ok) ++s.failed;
      s.missing = std::max(s.missing, r->missing);
      s.duplicates = std::max(s.duplicates, r->duplicates);
    }
    // Medians of the runs that succeeded (of all when none did).
    const bool any_ok = s.failed < s.runs;
    for (const RunResult* r : by_workload[w]) {
      if (any_ok && !r->ok) continue;
      secs.push_back(r->seconds);
      eps.push_back(r->events_per_second);
      peps.push_back(r->publish_events_per_second);
      p50.push_back(r->p50_ms);
      p99.push_back(r->p99_ms);
      p999.push_back(r->p999_ms);
      mx.push_back(r->max_ms);
      broker_cpu.push_back(CpuMicrosPerEvent(r->broker_cpu_seconds, *r));
      bench_cpu.push_back(CpuMicrosPerEvent(r->bench_cpu_seconds, *r));
      s.has_latency |= r->has_latency;
      s.groups = r->groups;
      broker_cpu_s.push_back(r->broker_cpu_seconds);
      s.broker_peak_rss_mb = std::max(s.broker_peak_rss_mb, r->broker_peak_rss_mb);
      s.broker_rss_after_mb = std::max(s.broker_rss_after_mb, r->broker_rss_after_mb);
      if (r->has_syncs) {
        fsyncs.push_back(r->fsyncs_per_second);
        fdatasyncs.push_back(r->fdatasyncs_per_second);
      }
    }
    s.broker_cpu_seconds = Median(broker_cpu_s);
    s.has_syncs = !fsyncs.empty();
    s.fsyncs_per_second = Median(fsyncs);
    s.fdatasyncs_per_second = Median(fdatasyncs);
    s.seconds = Median(secs);
    s.events_per_second = Median(eps);
    s.publish_events_per_second = Median(peps);
    s.p50_ms = Median(p50);
    s.p99_ms = Median(p99);
    s.p999_ms = Median(p999);
    s.max_ms = Median(mx);
    s.broker_cpu_us_per_event = Median(broker_cpu);
    s.bench_cpu_us_per_event = Median(bench_cpu);
    SetTarget(s);
    out.push_back(s);
  }
  for (Summary& two : out) {
    if (two.workload != "W2-2c") continue;
    for (const Summary& one : out) {
      if (one.workload != "W2-1c" || one.tls != two.tls) continue;
      two.target = absl::StrFormat("events/s >= W2-1c's %.0f", one.events_per_second);
      two.target_met = two.failed == 0 && two.events_per_second >= one.events_per_second;
    }
  }
  return out;
}

std::string RunLine(const RunResult& r, int runs) {
  std::string line = absl::StrFormat("%-10s run %d/%d  %7u events  %7.3f s  %9.0f events/s",
                                     Label(r.workload, r.tls), r.run, runs, r.events, r.seconds,
                                     r.events_per_second);
  if (r.workload == "W2-1c" || r.workload == "W2-2c") {
    absl::StrAppend(&line, absl::StrFormat("  (publish acks %.0f/s)", r.publish_events_per_second));
  }
  if (r.has_latency) {
    absl::StrAppend(&line,
                    absl::StrFormat("  p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  "
                                    "(sender: lag p50 %.3f max %.3f ms, Send() max %.3f ms)",
                                    r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms, r.send_lag_p50_ms,
                                    r.max_send_lag_ms, r.max_send_call_ms));
    absl::StrAppend(
        &line, absl::StrFormat("\n         split at broker publish_time: sched->append p50 %.3f "
                               "p99 %.3f ms, append->recv p50 %.3f p99 %.3f ms",
                               r.to_append_p50_ms, r.to_append_p99_ms, r.append_to_receive_p50_ms,
                               r.append_to_receive_p99_ms));
  }
  if (r.groups > 0) {
    absl::StrAppend(&line, absl::StrFormat("  %d groups", r.groups));
    if (r.has_syncs) {
      absl::StrAppend(&line, absl::StrFormat("  broker fsync %.1f/s, fdatasync %.1f/s",
                                             r.fsyncs_per_second, r.fdatasyncs_per_second));
    } else {
      absl::StrAppend(&line, "  broker syncs n/a (", r.syncs_error, ")");
    }
  }
  absl::StrAppend(&line, absl::StrFormat("  missing %u  duplicates %u", r.missing, r.duplicates));
  if (r.delivery_messages > 0) {
    absl::StrAppend(&line,
                    absl::StrFormat("  %.0f events/delivery msg",
                                    static_cast<double>(r.deliveries) / r.delivery_messages));
  }
  absl::StrAppend(&line, absl::StrFormat("  cpu broker %.2f s, bench %.2f s", r.broker_cpu_seconds,
                                         r.bench_cpu_seconds));
  absl::StrAppend(&line, absl::StrFormat("  broker RSS peak %.1f MB, after %.1f MB",
                                         r.broker_peak_rss_mb, r.broker_rss_after_mb));
  if (r.redelivered > 0 || r.dead_lettered > 0) {
    absl::StrAppend(&line, absl::StrFormat("  broker: redelivered %u, dead-lettered %u",
                                           r.redelivered, r.dead_lettered));
  }
  if (r.publish_duplicates > 0) {
    absl::StrAppend(&line, absl::StrFormat("  publish-duplicates %u", r.publish_duplicates));
  }
  if (!r.ok) absl::StrAppend(&line, "  FAILED: ", r.error);
  return line;
}

std::string SummaryLine(const Summary& s) {
  std::string line =
      absl::StrFormat("median %-10s (%d runs)  %7.3f s  %9.0f events/s", Label(s.workload, s.tls),
                      s.runs, s.seconds, s.events_per_second);
  if (s.has_latency) {
    absl::StrAppend(&line, absl::StrFormat("  p50 %.3f  p99 %.3f  p99.9 %.3f ms", s.p50_ms,
                                           s.p99_ms, s.p999_ms));
  }
  absl::StrAppend(
      &line, absl::StrFormat("  missing %u  duplicates %u (worst run)", s.missing, s.duplicates));
  absl::StrAppend(&line, absl::StrFormat("  cpu/event broker %.2f us, bench %.2f us",
                                         s.broker_cpu_us_per_event, s.bench_cpu_us_per_event));
  absl::StrAppend(&line,
                  absl::StrFormat("  broker RSS peak %.1f MB (largest run)", s.broker_peak_rss_mb));
  if (s.groups > 0) {
    absl::StrAppend(&line,
                    absl::StrFormat("  %d groups: broker cpu %.2f s (%.1f%% of a core)", s.groups,
                                    s.broker_cpu_seconds,
                                    s.seconds > 0 ? 100 * s.broker_cpu_seconds / s.seconds : 0));
    absl::StrAppend(&line, s.has_syncs
                               ? absl::StrFormat(", fsync %.1f/s, fdatasync %.1f/s",
                                                 s.fsyncs_per_second, s.fdatasyncs_per_second)
                               : std::string(", syncs n/a (no perf)"));
  }
  if (!s.target.empty()) {
    absl::StrAppend(&line, "  target ", s.target, ": ", s.target_met ? "MET" : "MISSED");
  }
  if (s.failed > 0) absl::StrAppend(&line, absl::StrFormat("  (%d runs FAILED)", s.failed));
  return line;
}

std::vector<TlsCost> CompareTls(const std::vector<RunResult>& results,
                                const std::vector<Summary>& summaries) {
  std::vector<TlsCost> out;
  for (const Summary& tls : summaries) {
    if (!tls.tls) continue;
    const Summary* plain = nullptr;
    for (const Summary& s : summaries) {
      if (!s.tls && s.workload == tls.workload) plain = &s;
    }
    if (plain == nullptr) continue;
    TlsCost c;
    c.workload = tls.workload;
    c.has_latency = tls.has_latency && plain->has_latency;
    c.throughput_ratio = Ratio(tls.events_per_second, plain->events_per_second);
    c.broker_cpu_ratio = Ratio(tls.broker_cpu_us_per_event, plain->broker_cpu_us_per_event);
    c.bench_cpu_ratio = Ratio(tls.bench_cpu_us_per_event, plain->bench_cpu_us_per_event);
    c.p50_delta_ms = tls.p50_ms - plain->p50_ms;
    c.p99_delta_ms = tls.p99_ms - plain->p99_ms;
    // Pairs: the TLS and plaintext runs with the same number, run one
    // right after the other.
    std::map<int, std::pair<const RunResult*, const RunResult*>> by_run;
    for (const RunResult& r : results) {
      if (r.workload != c.workload || !r.ok) continue;
      (r.tls ? by_run[r.run].second : by_run[r.run].first) = &r;
    }
    std::vector<double> ratios, deltas;
    for (const auto& [run, pair] : by_run) {
      if (pair.first == nullptr || pair.second == nullptr) continue;
      ++c.pairs;
      ratios.push_back(Ratio(pair.second->events_per_second, pair.first->events_per_second));
      deltas.push_back(pair.second->p50_ms - pair.first->p50_ms);
    }
    c.paired_throughput_ratio = Median(ratios);
    c.paired_p50_delta_ms = Median(deltas);
    if (c.workload == "W2-1c" || c.workload == "W2-2c") {
      c.goal = absl::StrFormat("events/s at most %.0f%% lower", kTlsMaxThroughputCost * 100);
      c.goal_met = c.pairs > 0 && c.paired_throughput_ratio >= 1 - kTlsMaxThroughputCost;
    } else if (c.workload == "W3") {
      c.goal = absl::StrFormat("p50 at most %.1f ms higher", kTlsMaxP50CostMs);
      c.goal_met = c.pairs > 0 && c.paired_p50_delta_ms <= kTlsMaxP50CostMs;
    }
    out.push_back(c);
  }
  return out;
}

std::string TlsCostLine(const TlsCost& c) {
  std::string line = absl::StrFormat("mTLS/plaintext %-6s (%d pairs)", c.workload, c.pairs);
  if (c.has_latency) {
    absl::StrAppend(&line, absl::StrFormat("  p50 %+.3f ms (paired %+.3f), p99 %+.3f ms",
                                           c.p50_delta_ms, c.paired_p50_delta_ms, c.p99_delta_ms));
  } else {
    absl::StrAppend(&line, absl::StrFormat("  events/s x%.3f (paired x%.3f)", c.throughput_ratio,
                                           c.paired_throughput_ratio));
  }
  absl::StrAppend(&line, absl::StrFormat("  cpu/event broker x%.2f, bench x%.2f",
                                         c.broker_cpu_ratio, c.bench_cpu_ratio));
  if (!c.goal.empty()) {
    absl::StrAppend(&line, "  goal ", c.goal, ": ", c.goal_met ? "MET" : "MISSED");
  }
  return line;
}

std::string ToJson(const BenchConfig& c, const std::string& tls_mode,
                   const std::vector<RunResult>& results, const std::vector<Summary>& summaries,
                   const std::vector<TlsCost>& tls_costs) {
  std::string out = "{\n  \"config\": {";
  absl::StrAppend(
      &out, "\"broker\": ", JsonString(c.broker_binary), ", \"fsync\": ", JsonString(c.fsync),
      ", \"tls\": ", JsonString(tls_mode), ", \"client\": ", JsonString(c.client),
      ", \"events\": ", c.events, ", \"payload_bytes\": ", c.payload_bytes, ", \"keys\": ", c.keys,
      ", \"batch_events\": ", c.batch_events, ", \"in_flight_batches\": ", c.in_flight_batches,
      ", \"consumer_max_in_flight\": ", c.consumer_max_in_flight, ", \"rate\": ", Num(c.rate),
      ", \"duration_s\": ", Num(absl::ToDoubleSeconds(c.duration)),
      ", \"w4_rate\": ", Num(c.w4_rate), ", \"w4_groups\": [", absl::StrJoin(c.w4_groups, ", "),
      "]", ", \"temp_root\": ", JsonString(c.temp_root), "},\n  \"runs\": [");
  std::vector<std::string> runs;
  for (const RunResult& r : results) {
    std::string j = absl::StrCat(
        "{\"workload\": ", JsonString(r.workload), ", \"tls\": ", r.tls ? "true" : "false",
        ", \"run\": ", r.run, ", \"ok\": ", r.ok ? "true" : "false", ", \"events\": ", r.events,
        ", \"event_bytes\": ", r.event_bytes, ", \"published\": ", r.published,
        ", \"received\": ", r.received, ", \"missing\": ", r.missing,
        ", \"duplicates\": ", r.duplicates, ", \"publish_duplicates\": ", r.publish_duplicates,
        ", \"seconds\": ", Num(r.seconds), ", \"events_per_second\": ", Num(r.events_per_second),
        ", \"publish_events_per_second\": ", Num(r.publish_events_per_second));
    if (r.has_latency) {
      absl::StrAppend(&j, ", \"p50_ms\": ", Num(r.p50_ms), ", \"p99_ms\": ", Num(r.p99_ms),
                      ", \"p999_ms\": ", Num(r.p999_ms), ", \"max_ms\": ", Num(r.max_ms),
                      ", \"send_lag_p50_ms\": ", Num(r.send_lag_p50_ms),
                      ", \"max_send_lag_ms\": ", Num(r.max_send_lag_ms),
                      ", \"max_send_call_ms\": ", Num(r.max_send_call_ms),
                      ", \"to_append_p50_ms\": ", Num(r.to_append_p50_ms),
                      ", \"to_append_p99_ms\": ", Num(r.to_append_p99_ms),
                      ", \"append_to_receive_p50_ms\": ", Num(r.append_to_receive_p50_ms),
                      ", \"append_to_receive_p99_ms\": ", Num(r.append_to_receive_p99_ms));
    }
    absl::StrAppend(&j, ", \"redelivered\": ", r.redelivered,
                    ", \"dead_lettered\": ", r.dead_lettered);
    absl::StrAppend(&j, ", \"deliveries\": ", r.deliveries,
                    ", \"delivery_messages\": ", r.delivery_messages);
    absl::StrAppend(&j, ", \"broker_peak_rss_mb\": ", Num(r.broker_peak_rss_mb),
                    ", \"broker_rss_after_mb\": ", Num(r.broker_rss_after_mb));
    absl::StrAppend(&j, ", \"broker_cpu_seconds\": ", Num(r.broker_cpu_seconds),
                    ", \"bench_cpu_seconds\": ", Num(r.bench_cpu_seconds));
    if (r.groups > 0) {
      absl::StrAppend(&j, ", \"groups\": ", r.groups);
      if (r.has_syncs) {
        absl::StrAppend(&j, ", \"fsyncs_per_second\": ", Num(r.fsyncs_per_second),
                        ", \"fdatasyncs_per_second\": ", Num(r.fdatasyncs_per_second));
      } else {
        absl::StrAppend(&j, ", \"syncs_error\": ", JsonString(r.syncs_error));
      }
    }
    absl::StrAppend(&j, ", \"error\": ", JsonString(r.error), "}");
    runs.push_back(j);
  }
  absl::StrAppend(&out, "\n    ", absl::StrJoin(runs, ",\n    "), "\n  ],\n  \"medians\": [");
  std::vector<std::string> meds;
  for (const Summary& s : summaries) {
    std::string j = absl::StrCat(
        "{\"workload\": ", JsonString(s.workload), ", \"tls\": ", s.tls ? "true" : "false",
        ", \"runs\": ", s.runs, ", \"failed\": ", s.failed, ", \"seconds\": ", Num(s.seconds),
        ", \"events_per_second\": ", Num(s.events_per_second),
        ", \"publish_events_per_second\": ", Num(s.publish_events_per_second));
    if (s.has_latency) {
      absl::StrAppend(&j, ", \"p50_ms\": ", Num(s.p50_ms), ", \"p99_ms\": ", Num(s.p99_ms),
                      ", \"p999_ms\": ", Num(s.p999_ms), ", \"max_ms\": ", Num(s.max_ms));
    }
    absl::StrAppend(&j, ", \"broker_cpu_us_per_event\": ", Num(s.broker_cpu_us_per_event),
                    ", \"bench_cpu_us_per_event\": ", Num(s.bench_cpu_us_per_event));
    if (s.groups > 0) {
      absl::StrAppend(&j, ", \"groups\": ", s.groups,
                      ", \"broker_cpu_seconds\": ", Num(s.broker_cpu_seconds));
      if (s.has_syncs) {
        absl::StrAppend(&j, ", \"fsyncs_per_second\": ", Num(s.fsyncs_per_second),
                        ", \"fdatasyncs_per_second\": ", Num(s.fdatasyncs_per_second));
      }
    }
    absl::StrAppend(&j, ", \"missing\": ", s.missing, ", \"duplicates\": ", s.duplicates,
                    ", \"target\": ", JsonString(s.target),
                    ", \"target_met\": ", s.target_met ? "true" : "false", "}");
    meds.push_back(j);
  }
  absl::StrAppend(&out, "\n    ", absl::StrJoin(meds, ",\n    "), "\n  ],\n  \"tls_costs\": [");
  std::vector<std::string> costs;
  for (const TlsCost& t : tls_costs) {
    costs.push_back(absl::StrCat(
        "{\"workload\": ", JsonString(t.workload), ", \"pairs\": ", t.pairs,
        ", \"throughput_ratio\": ", Num(t.throughput_ratio), ", \"paired_throughput_ratio\": ",
        Num(t.paired_throughput_ratio), ", \"broker_cpu_ratio\": ", Num(t.broker_cpu_ratio),
        ", \"bench_cpu_ratio\": ", Num(t.bench_cpu_ratio), ", \"p50_delta_ms\": ",
        Num(t.p50_delta_ms), ", \"paired_p50_delta_ms\": ", Num(t.paired_p50_delta_ms),
        ", \"p99_delta_ms\": ", Num(t.p99_delta_ms), ", \"goal\": ", JsonString(t.goal),
        ", \"goal_met\": ", t.goal_met ? "true" : "false", "}"));
  }
  absl::StrAppend(&out, "\n    ", absl::StrJoin(costs, ",\n    "), "\n  ]\n}\n");
  return out;
}

}  // namespace relay::bench
