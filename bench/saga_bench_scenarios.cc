#include "bench/saga_bench_scenarios.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/bench_report.h"
#include "bench/saga_bench_orders.h"

namespace relay::bench {
namespace {

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = 0;
  in >> one;
  return one;
}

std::vector<double> CpuNow(const SagaSystem& system) {
  std::vector<double> cpu = system.CpuSeconds();
  cpu.push_back(ProcessCpuSeconds(0));
  return cpu;
}

std::vector<double> SwitchesNow(const SagaSystem& system) {
  std::vector<double> n = system.ContextSwitches();
  n.push_back(static_cast<double>(ProcessContextSwitches(0)));
  return n;
}

std::vector<double> MemoryNow(const SagaSystem& system, const std::string& field) {
  std::vector<double> mb = system.MemoryMb(field);
  mb.push_back(ProcessMemoryMb(0, field));
  return mb;
}

// after - before, entry by entry (CPU seconds, context switches).
std::vector<double> Delta(const std::vector<double>& before, const std::vector<double>& after) {
  std::vector<double> d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = after[i] - (i < before.size() ? before[i] : 0);
  return d;
}

// Nearest-rank percentiles; a censored sample (a lower bound) at or below a
// rank makes that percentile a lower bound too.
Latency Percentiles(std::vector<std::pair<double, bool>> samples) {
  Latency l;
  l.count = samples.size();
  if (samples.empty()) return l;
  std::sort(samples.begin(), samples.end());
  size_t first_censored = samples.size();
  for (size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].second) {
      ++l.censored;
      first_censored = std::min(first_censored, i);
    }
  }
  auto at = [&](double p, double* value, bool* lb) {
    size_t k =
        static_cast<size_t>(std::max(1.0, std::ceil(p * static_cast<double>(samples.size())))) - 1;
    k = std::min(k, samples.size() - 1);
    *value = samples[k].first;
    *lb = first_censored <= k;
  };
  at(0.50, &l.p50, &l.p50_lb);
  at(0.90, &l.p90, &l.p90_lb);
  at(0.99, &l.p99, &l.p99_lb);
  at(1.00, &l.max, &l.max_lb);
  return l;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// The latencies of the measured orders. Orders not ended by `cut` count as
// censored samples of (cut - scheduled); PlaceOrder calls that failed (e.g.
// their deadline passed in order-service's queue) as censored samples of
// (failed at - scheduled), so that an overloaded run does not report only
// its survivors. `confirmed_only` leaves out cancelled orders (S2 measures
// placed -> confirmed).
void FillLatencies(const std::vector<OrderTracker::Order>& orders,
                   const std::vector<std::pair<absl::Time, absl::Time>>& failed, absl::Time cut,
                   bool confirmed_only, SagaRun* r) {
  std::vector<std::pair<double, bool>> end, publish, place;
  for (const auto& [scheduled, failed_at] : failed) {
    for (auto* v : {&end, &publish, &place}) v->push_back({Ms(failed_at - scheduled), true});
  }
  for (const OrderTracker::Order& o : orders) {
    place.push_back({Ms(o.answered - o.scheduled), false});
    if (o.end == OrderTracker::End::kNone) {
      end.push_back({Ms(cut - o.scheduled), true});
      publish.push_back({Ms(cut - o.scheduled), true});
      continue;
    }
    if (confirmed_only && o.end != OrderTracker::End::kConfirmed) continue;
    end.push_back({Ms(o.delivered - o.scheduled), false});
    publish.push_back({Ms(o.published - o.scheduled), false});
  }
  r->latency = Percentiles(std::move(end));
  r->to_publish = Percentiles(std::move(publish));
  r->place_rpc = Percentiles(std::move(place));
}

// The counts after the grace period; the drain time.
void FillOutcome(const OrderTracker& tracker, const OrderPlacer& placer,
                 const std::vector<OrderTracker::Order>& orders, absl::Time end,
                 absl::Duration grace, SagaRun* r) {
  OrderTracker::Counts c = tracker.counts(Phase::kMeasured);
  r->placed = c.placed;
  r->confirmed = c.confirmed;
  r->cancelled = c.cancelled;
  r->not_terminal = c.placed - c.terminal;
  r->place_failed = placer.failed();
  r->failures = placer.failures();
  r->unmatched = tracker.unmatched();
  r->duplicates = tracker.duplicates();
  absl::Time last = end;
  for (const OrderTracker::Order& o : orders) {
    if (o.end != OrderTracker::End::kNone) last = std::max(last, o.delivered);
  }
  r->drain_seconds =
      r->not_terminal > 0 ? absl::ToDoubleSeconds(grace) : absl::ToDoubleSeconds(last - end);
}

// Places one order per sku (retrying while order-service's catalog is still
// filling from product.updated), then `config.warmup` more, and waits until
// all ended CONFIRMED: the whole saga works before anything is measured.
absl::Status Warmup(const SagaSystem& system, const SagaConfig& config, OrderTracker& tracker,
                    int run) {
  OrderPlacer placer(system.order_channel(), &tracker, system.customers(), system.skus(),
                     absl::StrCat("saga-bench-warmup-r", run, "-"), 1000 + run, config.rpc_timeout);
  const absl::Time deadline = absl::Now() + config.system.start_timeout;
  for (size_t sku = 0; sku < system.skus().size(); ++sku) {
    const uint64_t before = tracker.counts(Phase::kWarmup).placed;
    while (true) {
      placer.Place(Phase::kWarmup, absl::Now(), static_cast<int>(sku));
      placer.AwaitOutstandingBelow(1, absl::Now() + config.rpc_timeout + absl::Seconds(1));
      placer.Reap();
      if (tracker.counts(Phase::kWarmup).placed > before) break;
      if (absl::Now() > deadline) {
        std::vector<std::string> why;
        for (const auto& [what, n] : placer.failures()) why.push_back(absl::StrCat(n, "x ", what));
        return absl::DeadlineExceededError(
            absl::StrCat("order-service did not accept an order for sku ", system.skus()[sku],
                         " in time: ", absl::StrJoin(why, "; ")));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  for (int i = 0; i < config.warmup; ++i) {
    placer.AwaitOutstandingBelow(32, absl::Now() + config.rpc_timeout + absl::Seconds(1));
    placer.Place(Phase::kWarmup, absl::Now());
  }
  placer.AwaitOutstandingBelow(1, absl::Now() + config.rpc_timeout + absl::Seconds(1));
  const absl::Duration wait = absl::Seconds(60);
  if (!tracker.AwaitAllTerminal(Phase::kWarmup, absl::Now() + wait)) {
    OrderTracker::Counts c = tracker.counts(Phase::kWarmup);
    return absl::DeadlineExceededError(absl::StrCat("warm-up: only ", c.terminal, " of ", c.placed,
                                                    " orders ended within ",
                                                    absl::FormatDuration(wait)));
  }
  OrderTracker::Counts c = tracker.counts(Phase::kWarmup);
  if (c.cancelled > 0 || placer.failed() > 0) {
    return absl::InternalError(absl::StrCat("warm-up: ", c.cancelled, " orders cancelled, ",
                                            placer.failed(),
                                            " PlaceOrder errors (are stock and money funded?)"));
  }
  return absl::OkStatus();
}

using Body = std::function<void(const SagaSystem&, OrderTracker&, SagaRun&)>;

// The frame of every scenario: fresh system, consumer, warm-up, the body,
// then a clean stop of everything.
SagaRun RunScenario(const SagaConfig& config, const std::string& name, int run, const Body& body) {
  SagaRun r;
  r.scenario = name;
  r.run = run;
  r.tls = config.system.pki != nullptr;
  r.load_before = LoadAverage();
  auto fail = [&r](const absl::Status& s) {
    if (r.ok) r.error = std::string(s.message());
    r.ok = false;
  };
  absl::StatusOr<std::unique_ptr<SagaSystem>> system = SagaSystem::Start(config.system);
  if (!system.ok()) {
    fail(system.status());
    return r;
  }
  {
    OrderTracker tracker;
    TerminalConsumer consumer((*system)->broker_channel(), &tracker);
    absl::Status s = consumer.Start(absl::Seconds(15));
    if (s.ok()) s = Warmup(**system, config, tracker, run);
    if (s.ok()) {
      body(**system, tracker, r);
      r.peak_rss_mb = MemoryNow(**system, "VmHWM");
      r.rss_after_mb = MemoryNow(**system, "VmRSS");
    } else {
      fail(s);
    }
    consumer.Stop();
    if (consumer.messages() > 0) {
      r.events_per_delivery_message =
          static_cast<double>(consumer.events()) / static_cast<double>(consumer.messages());
    }
  }
  if (absl::Status s = (*system)->Stop(absl::Seconds(20)); !s.ok()) fail(s);
  return r;
}

}  // namespace

SagaRun RunThroughput(const SagaConfig& config, int run) {
  return RunScenario(
      config, "S1", run, [&](const SagaSystem& system, OrderTracker& tracker, SagaRun& r) {
        OrderPlacer placer(system.order_channel(), &tracker, system.customers(), system.skus(),
                           absl::StrCat("saga-bench-s1-r", run, "-"), run, config.rpc_timeout);
        const std::vector<double> cpu_before = CpuNow(system);
        const std::vector<double> switches_before = SwitchesNow(system);
        const absl::Time start = absl::Now();
        const absl::Time end = start + config.duration;
        while (r.scheduled < static_cast<uint64_t>(config.max_orders)) {
          const absl::Time now = absl::Now();
          if (now >= end) break;
          const int64_t outstanding = placer.outstanding();
          const OrderTracker::Counts c = tracker.counts(Phase::kMeasured);
          const int64_t backlog = static_cast<int64_t>(c.placed - c.terminal) + outstanding;
          if (outstanding >= config.concurrency) {
            placer.AwaitOutstandingBelow(config.concurrency,
                                         std::min(now + absl::Milliseconds(5), end));
          } else if (config.max_backlog > 0 && backlog >= config.max_backlog) {
            absl::SleepFor(absl::Milliseconds(1));  // the saga is behind: let it catch up
          } else {
            placer.Place(Phase::kMeasured, now);
            if (++r.scheduled % 1024 == 0) placer.Reap();
          }
        }
        const absl::Time stopped = absl::Now();
        const OrderTracker::Counts at_end = tracker.counts(Phase::kMeasured);
        r.cpu = Delta(cpu_before, CpuNow(system));
        r.switches = Delta(switches_before, SwitchesNow(system));
        r.seconds = absl::ToDoubleSeconds(stopped - start);
        r.terminal_in_window = at_end.terminal;
        r.placed_in_window = at_end.placed;
        r.backlog_at_end =
            at_end.placed - at_end.terminal + static_cast<uint64_t>(placer.outstanding());
        r.placed_per_second = static_cast<double>(at_end.placed) / r.seconds;
        r.terminal_per_second = static_cast<double>(at_end.terminal) / r.seconds;

        placer.AwaitOutstandingBelow(1, absl::Now() + config.rpc_timeout + absl::Seconds(1));
        tracker.AwaitAllTerminal(Phase::kMeasured, stopped + config.grace);
        const absl::Time cut = absl::Now();
        std::vector<OrderTracker::Order> orders = tracker.Orders(Phase::kMeasured);
        FillOutcome(tracker, placer, orders, stopped, config.grace, &r);
        FillLatencies(orders, placer.FailedCalls(Phase::kMeasured), cut,
                      /*confirmed_only=*/false, &r);

        // Terminal events per whole second of the window, the first left out.
        const int seconds = static_cast<int>(r.seconds);
        std::vector<double> per_second(static_cast<size_t>(std::max(seconds, 0)), 0);
        for (const OrderTracker::Order& o : orders) {
          if (o.end == OrderTracker::End::kNone) continue;
          int64_t bucket = absl::ToInt64Seconds(o.delivered - start);
          if (bucket >= 0 && bucket < seconds) ++per_second[static_cast<size_t>(bucket)];
        }
        if (per_second.size() > 1) {
          per_second.erase(per_second.begin());
          r.per_second_min = *std::min_element(per_second.begin(), per_second.end());
          r.per_second_max = *std::max_element(per_second.begin(), per_second.end());
          r.per_second_median = Median(per_second);
        }
      });
}

SagaRun RunLatency(const SagaConfig& config, int run) {
  return RunScenario(
      config, "S2", run, [&](const SagaSystem& system, OrderTracker& tracker, SagaRun& r) {
        OrderPlacer placer(system.order_channel(), &tracker, system.customers(), system.skus(),
                           absl::StrCat("saga-bench-s2-r", run, "-"), 100 + run,
                           config.rpc_timeout);
        const int64_t total = std::min<int64_t>(
            config.max_orders,
            static_cast<int64_t>(config.rate * absl::ToDoubleSeconds(config.duration)));
        // Far more calls in flight than this means order-service has stalled.
        const int64_t max_outstanding =
            std::max<int64_t>(20000, static_cast<int64_t>(config.rate) * 20);
        const std::vector<double> cpu_before = CpuNow(system);
        const std::vector<double> switches_before = SwitchesNow(system);
        const absl::Time start = absl::Now();
        absl::Duration max_lag;
        for (int64_t i = 0; i < total; ++i) {
          // Order i is due at start + i/rate whatever earlier calls do: a late
          // sender sends everything due at once (no coordinated omission).
          const absl::Time due = start + absl::Seconds(static_cast<double>(i) / config.rate);
          for (absl::Time now = absl::Now(); now < due; now = absl::Now()) {
            absl::SleepFor(std::min(due - now, absl::Milliseconds(20)));
          }
          max_lag = std::max(max_lag, absl::Now() - due);
          if (placer.outstanding() > max_outstanding) {
            r.ok = false;
            r.error = absl::StrCat("more than ", max_outstanding,
                                   " PlaceOrder calls outstanding; stopped sending");
            break;
          }
          placer.Place(Phase::kMeasured, due);
          ++r.scheduled;
          if (i % 1024 == 0) placer.Reap();
        }
        const absl::Time stopped = std::max(absl::Now(), start + config.duration);
        r.cpu = Delta(cpu_before, CpuNow(system));
        r.switches = Delta(switches_before, SwitchesNow(system));
        r.seconds = absl::ToDoubleSeconds(stopped - start);
        r.max_send_lag_ms = Ms(max_lag);
        const OrderTracker::Counts at_end = tracker.counts(Phase::kMeasured);
        r.terminal_in_window = at_end.terminal;
        r.placed_in_window = at_end.placed;
        r.backlog_at_end =
            at_end.placed - at_end.terminal + static_cast<uint64_t>(placer.outstanding());

        placer.AwaitOutstandingBelow(1, absl::Now() + config.rpc_timeout + absl::Seconds(1));
        tracker.AwaitAllTerminal(Phase::kMeasured, stopped + config.grace);
        const absl::Time cut = absl::Now();
        std::vector<OrderTracker::Order> orders = tracker.Orders(Phase::kMeasured);
        FillOutcome(tracker, placer, orders, stopped, config.grace, &r);
        FillLatencies(orders, placer.FailedCalls(Phase::kMeasured), cut,
                      /*confirmed_only=*/true, &r);
        r.placed_per_second = static_cast<double>(at_end.placed) / r.seconds;
        r.terminal_per_second = static_cast<double>(at_end.terminal) / r.seconds;
      });
}

}  // namespace relay::bench
