// flow_compare: the same order load through order-service's two flows,
// --flow=events (the saga on events through relay-broker) and --flow=sync
// (PlaceOrder calls inventory and payment directly), each on fresh stacks
// of real processes on 127.0.0.1 (bench/saga_bench_system.h), and one table
// of what a client sees (docs/EVENT-DRIVEN.md, bench/README.md):
//
//   no fault   placed -> end latency p50/p99 at --rate (median of --runs),
//              orders/s with --clients waiting for their orders' ends
//   (a)        payment-service killed for --outage, then restarted
//   (b)        inventory-service slowed by --slow per call / handled event
//   (c)        a burst of --burst_factor x --rate for --burst
//
//   flow_compare            # about 3-4 minutes
//   flow_compare --quick    # a smoke run, under a minute

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_report.h"
#include "bench/flow_compare_load.h"
#include "bench/saga_bench_system.h"
#include "common/log.h"

#ifndef RELAY_BROKER_BINARY
#define RELAY_BROKER_BINARY ""
#endif
#ifndef RELAY_ORDER_BINARY
#define RELAY_ORDER_BINARY ""
#endif
#ifndef RELAY_INVENTORY_BINARY
#define RELAY_INVENTORY_BINARY ""
#endif
#ifndef RELAY_PAYMENT_BINARY
#define RELAY_PAYMENT_BINARY ""
#endif

ABSL_FLAG(bool, quick, false, "a smoke run: one run, short windows (under a minute)");
ABSL_FLAG(int, runs, 3, "no-fault runs per flow (medians are reported); faults run once");
ABSL_FLAG(double, rate, 200, "orders/s of the open-loop load (no fault, and under faults)");
ABSL_FLAG(absl::Duration, window, absl::Seconds(8), "no fault: the latency window at --rate");
ABSL_FLAG(absl::Duration, throughput_window, absl::Seconds(4), "no fault: the closed-loop window");
ABSL_FLAG(int, clients, 64, "no fault: orders in flight in the closed loop (each waits its end)");
ABSL_FLAG(absl::Duration, outage, absl::Seconds(10), "(a): how long payment-service is down");
ABSL_FLAG(absl::Duration, slow, absl::Milliseconds(200), "(b): inventory --debug_delay");
ABSL_FLAG(double, burst_factor, 5, "(c): the burst's rate, times --rate");
ABSL_FLAG(absl::Duration, burst, absl::Seconds(5), "(c): how long the burst lasts");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(20), "after the load, how long orders get to end");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(2), "order-service --call_timeout (sync)");
ABSL_FLAG(std::string, flows, "events,sync", "which flows, comma separated");
ABSL_FLAG(std::string, broker, RELAY_BROKER_BINARY, "relay-broker binary");
ABSL_FLAG(std::string, order_service, RELAY_ORDER_BINARY, "order-service binary");
ABSL_FLAG(std::string, inventory_service, RELAY_INVENTORY_BINARY, "inventory-service binary");
ABSL_FLAG(std::string, payment_service, RELAY_PAYMENT_BINARY, "payment-service binary");
ABSL_FLAG(std::string, temp_root, "", "where run directories go (default: $TMPDIR or /tmp)");
ABSL_FLAG(bool, keep_data, false, "keep each run's directory (databases, logs)");

namespace relay::bench {
namespace {

struct Config {
  SagaSystem::Options system;
  int runs = 3;
  double rate = 200;
  absl::Duration window, throughput_window, outage, slow, burst, grace, call_timeout;
  int clients = 64;
  double burst_factor = 5;
};

// What one phase's orders did, as the table shows it.
struct Outcome {
  int64_t placed = 0;
  std::map<std::string, int64_t> errors;  // PlaceOrder code -> count
  int64_t confirmed = 0;
  std::map<std::string, int64_t> cancelled;   // cause -> count
  int64_t pending = 0;                        // no end seen by the end of the grace
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // placed -> end of the orders that ended OK
  int64_t ended_after_fault = 0;              // of the fault's orders, ended after it ended
  int64_t fault_orders = 0;
  double orders_per_s = 0;
};

Outcome Summarize(const std::vector<PlacedOrder>& orders, int tag, absl::Time fault_start = {},
                  absl::Time fault_end = {}) {
  Outcome out;
  std::vector<int64_t> us;
  for (const PlacedOrder& o : orders) {
    if (o.tag != tag) continue;
    ++out.placed;
    if (o.code != grpc::StatusCode::OK) {
      static const char* kNames[] = {"OK",
                                     "CANCELLED",
                                     "UNKNOWN",
                                     "INVALID_ARGUMENT",
                                     "DEADLINE_EXCEEDED",
                                     "NOT_FOUND",
                                     "ALREADY_EXISTS",
                                     "PERMISSION_DENIED",
                                     "RESOURCE_EXHAUSTED",
                                     "FAILED_PRECONDITION",
                                     "ABORTED",
                                     "OUT_OF_RANGE",
                                     "UNIMPLEMENTED",
                                     "INTERNAL",
                                     "UNAVAILABLE",
                                     "DATA_LOSS",
                                     "UNAUTHENTICATED"};
      const int c = static_cast<int>(o.code);
      ++out.errors[c >= 0 && c <= 16 ? kNames[c] : "OTHER"];
    }
    if (!o.ended) {
      ++out.pending;
    } else if (o.status == order::v1::ORDER_STATUS_CONFIRMED) {
      ++out.confirmed;
    } else if (o.status == order::v1::ORDER_STATUS_CANCELLED) {
      ++out.cancelled[o.cause];
    } else {
      ++out.cancelled["unknown"];
    }
    if (o.ended && o.code == grpc::StatusCode::OK) {
      us.push_back(absl::ToInt64Microseconds(o.end - o.sent));
    }
    if (fault_end != absl::Time() && o.sent >= fault_start && o.sent < fault_end) {
      ++out.fault_orders;
      if (o.ended && o.code == grpc::StatusCode::OK && o.end >= fault_end) ++out.ended_after_fault;
    }
  }
  std::sort(us.begin(), us.end());
  out.p50_ms = Percentile(us, 0.50) / 1000.0;
  out.p99_ms = Percentile(us, 0.99) / 1000.0;
  out.max_ms = us.empty() ? 0 : us.back() / 1000.0;
  return out;
}

absl::StatusOr<std::unique_ptr<SagaSystem>> StartSystem(const Config& config, bool sync,
                                                        std::vector<std::string> inventory_args) {
  SagaSystem::Options o = config.system;
  o.order_sync = sync;
  if (sync) {
    o.order_args.push_back(
        absl::StrCat("--call_timeout=", absl::FormatDuration(config.call_timeout)));
  }
  o.inventory_args.insert(o.inventory_args.end(), inventory_args.begin(), inventory_args.end());
  return SagaSystem::Start(o);
}

OrderLoad::Options LoadOptions(const SagaSystem& system) {
  OrderLoad::Options o;
  o.customers = system.customers();
  o.skus = system.skus();
  return o;
}

void Warmup(OrderLoad& load, double rate) {
  load.OpenLoop([rate](absl::Duration) { return rate; }, absl::Seconds(1), /*tag=*/0);
  load.AwaitQuiet(absl::Now() + absl::Seconds(10));
}

// The no-fault run: latency at the rate, then orders/s in a closed loop.
absl::StatusOr<Outcome> RunNoFault(const Config& config, bool sync) {
  absl::StatusOr<std::unique_ptr<SagaSystem>> system = StartSystem(config, sync, {});
  if (!system.ok()) return system.status();
  Outcome out;
  {
    OrderLoad load((*system)->order_channel(), LoadOptions(**system));
    Warmup(load, config.rate);
    load.OpenLoop([&](absl::Duration) { return config.rate; }, config.window, 1);
    load.AwaitQuiet(absl::Now() + config.grace);
    out = Summarize(load.Orders(), 1);
    const int64_t ended = load.ClosedLoop(config.clients, config.throughput_window, 2);
    out.orders_per_s = ended / absl::ToDoubleSeconds(config.throughput_window);
    load.AwaitQuiet(absl::Now() + config.grace);
  }
  (*system)->Stop(absl::Seconds(10)).IgnoreError();
  return out;
}

// (a): payment-service killed while orders flow, restarted after `outage`.
absl::StatusOr<Outcome> RunPaymentOutage(const Config& config, bool sync) {
  absl::StatusOr<std::unique_ptr<SagaSystem>> system = StartSystem(config, sync, {});
  if (!system.ok()) return system.status();
  Outcome out;
  {
    OrderLoad load((*system)->order_channel(), LoadOptions(**system));
    Warmup(load, config.rate);
    const absl::Duration before = absl::Seconds(2), after = absl::Seconds(3);
    absl::Time fault_start, fault_end;
    absl::Status restarted;
    std::thread fault([&] {
      absl::SleepFor(before);
      fault_start = absl::Now();
      (*system)->KillPayment();
      absl::SleepFor(config.outage);
      restarted = (*system)->RestartPayment();
      fault_end = absl::Now();
    });
    load.OpenLoop([&](absl::Duration) { return config.rate; }, before + config.outage + after, 1);
    fault.join();
    if (!restarted.ok()) return restarted;
    load.AwaitQuiet(absl::Now() + config.grace);
    out = Summarize(load.Orders(), 1, fault_start, fault_end);
  }
  (*system)->Stop(absl::Seconds(10)).IgnoreError();
  return out;
}

// (b) with inventory --debug_delay, (c) with a burst: load at a rate
// that may change over time.
absl::StatusOr<Outcome> RunShaped(const Config& config, bool sync,
                                  std::vector<std::string> inventory_args,
                                  const std::function<double(absl::Duration)>& rate,
                                  absl::Duration duration, absl::Duration fault_from,
                                  absl::Duration fault_to) {
  absl::StatusOr<std::unique_ptr<SagaSystem>> system =
      StartSystem(config, sync, std::move(inventory_args));
  if (!system.ok()) return system.status();
  Outcome out;
  {
    OrderLoad load((*system)->order_channel(), LoadOptions(**system));
    Warmup(load, config.rate);
    const absl::Time start = absl::Now();
    load.OpenLoop(rate, duration, 1);
    load.AwaitQuiet(absl::Now() + config.grace);
    out = Summarize(load.Orders(), 1, start + fault_from, start + fault_to);
  }
  (*system)->Stop(absl::Seconds(10)).IgnoreError();
  return out;
}

std::string Errors(const Outcome& o) {
  if (o.errors.empty()) return "none";
  std::vector<std::string> parts;
  for (const auto& [code, n] : o.errors) parts.push_back(absl::StrCat(code, " ", n));
  return absl::StrJoin(parts, ", ");
}

std::string Ends(const Outcome& o) {
  std::string s = absl::StrCat(o.confirmed, " CONFIRMED");
  for (const auto& [cause, n] : o.cancelled) absl::StrAppend(&s, ", ", n, " CANCELLED ", cause);
  absl::StrAppend(&s, ", ", o.pending, " pending");
  return s;
}

std::string Latency(const Outcome& o) {
  return absl::StrFormat("%.1f / %.1f ms (max %.0f)", o.p50_ms, o.p99_ms, o.max_ms);
}

}  // namespace
}  // namespace relay::bench

int main(int argc, char** argv) {
  using namespace relay::bench;  // NOLINT: a benchmark's main
  absl::SetProgramUsageMessage(
      "flow_compare: the same orders through --flow=events and --flow=sync, no fault and under "
      "three faults, in one table (docs/EVENT-DRIVEN.md).");
  absl::ParseCommandLine(argc, argv);
  relay::log::Init("flow_compare", relay::log::Format::kText);
  relay::log::SetMinLevel(relay::log::Level::kWarn);

  Config config;
  auto& sys = config.system;
  sys.broker_binary = absl::GetFlag(FLAGS_broker);
  sys.order_binary = absl::GetFlag(FLAGS_order_service);
  sys.inventory_binary = absl::GetFlag(FLAGS_inventory_service);
  sys.payment_binary = absl::GetFlag(FLAGS_payment_service);
  sys.keep_dir = absl::GetFlag(FLAGS_keep_data);
  sys.temp_root = relay::bench::TempRoot(absl::GetFlag(FLAGS_temp_root));
  config.runs = absl::GetFlag(FLAGS_runs);
  config.rate = absl::GetFlag(FLAGS_rate);
  config.window = absl::GetFlag(FLAGS_window);
  config.throughput_window = absl::GetFlag(FLAGS_throughput_window);
  config.clients = absl::GetFlag(FLAGS_clients);
  config.outage = absl::GetFlag(FLAGS_outage);
  config.slow = absl::GetFlag(FLAGS_slow);
  config.burst_factor = absl::GetFlag(FLAGS_burst_factor);
  config.burst = absl::GetFlag(FLAGS_burst);
  config.grace = absl::GetFlag(FLAGS_grace);
  config.call_timeout = absl::GetFlag(FLAGS_call_timeout);
  if (absl::GetFlag(FLAGS_quick)) {
    config.runs = 1;
    config.window = absl::Seconds(3);
    config.throughput_window = absl::Seconds(2);
    config.outage = absl::Seconds(4);
    config.burst = absl::Seconds(2);
    config.grace = absl::Seconds(10);
  }
  if (config.runs < 1 || config.runs > 20) {
    std::fprintf(stderr, "flow_compare: --runs must be within 1..20\n");
    return 2;
  }
  if (config.rate <= 0 || config.rate > 20000 || config.burst_factor < 1 ||
      config.burst_factor > 50 || config.clients < 1 || config.clients > 4096) {
    std::fprintf(stderr,
                 "flow_compare: --rate (0, 20000], --burst_factor [1, 50], --clients "
                 "1..4096\n");
    return 2;
  }
  std::vector<std::string> flows = absl::StrSplit(absl::GetFlag(FLAGS_flows), ',');

  std::printf(
      "flow_compare: %s; rate %.0f orders/s, %d no-fault runs per flow (window %s, "
      "closed loop %d clients for %s), outage %s, slow %s, burst %.0fx for %s\n",
      absl::StrJoin(flows, ",").c_str(), config.rate, config.runs,
      absl::FormatDuration(config.window).c_str(), config.clients,
      absl::FormatDuration(config.throughput_window).c_str(),
      absl::FormatDuration(config.outage).c_str(), absl::FormatDuration(config.slow).c_str(),
      config.burst_factor, absl::FormatDuration(config.burst).c_str());
  std::fflush(stdout);

  struct Column {
    std::string flow;
    double p50 = 0, p99 = 0, ops = 0;
    std::vector<Outcome> no_fault;
    Outcome outage, slow, burst;
    std::string failed;
  };
  std::vector<Column> columns;
  bool ok = true;
  for (const std::string& flow : flows) {
    if (flow != "events" && flow != "sync") {
      std::fprintf(stderr, "flow_compare: --flows takes events and sync, got '%s'\n", flow.c_str());
      return 2;
    }
    const bool sync = flow == "sync";
    Column c;
    c.flow = flow;
    auto fail = [&](const absl::Status& s) {
      c.failed = s.ToString();
      ok = false;
      std::fprintf(stderr, "flow_compare: %s: %s\n", flow.c_str(), c.failed.c_str());
    };
    std::vector<double> p50, p99, ops;
    for (int run = 1; run <= config.runs && c.failed.empty(); ++run) {
      absl::StatusOr<Outcome> r = RunNoFault(config, sync);
      if (!r.ok()) {
        fail(r.status());
        break;
      }
      std::printf("  %-6s no fault run %d: p50 %.1f ms, p99 %.1f ms, %.0f orders/s; %s\n",
                  flow.c_str(), run, r->p50_ms, r->p99_ms, r->orders_per_s, Ends(*r).c_str());
      std::fflush(stdout);
      p50.push_back(r->p50_ms);
      p99.push_back(r->p99_ms);
      ops.push_back(r->orders_per_s);
      c.no_fault.push_back(*r);
    }
    c.p50 = Median(p50);
    c.p99 = Median(p99);
    c.ops = Median(ops);
    if (c.failed.empty()) {
      absl::StatusOr<Outcome> r = RunPaymentOutage(config, sync);
      if (r.ok())
        c.outage = *r;
      else
        fail(r.status());
      std::printf("  %-6s (a) payment down: done\n", flow.c_str());
      std::fflush(stdout);
    }
    if (c.failed.empty()) {
      const double rate = config.rate;
      absl::StatusOr<Outcome> r = RunShaped(
          config, sync, {absl::StrCat("--debug_delay=", absl::FormatDuration(config.slow))},
          [rate](absl::Duration) { return rate; }, config.window, absl::ZeroDuration(),
          config.window);
      if (r.ok())
        c.slow = *r;
      else
        fail(r.status());
      std::printf("  %-6s (b) inventory slow: done\n", flow.c_str());
      std::fflush(stdout);
    }
    if (c.failed.empty()) {
      const double rate = config.rate, factor = config.burst_factor;
      const absl::Duration lead = absl::Seconds(2), burst = config.burst;
      absl::StatusOr<Outcome> r = RunShaped(
          config, sync, {},
          [=](absl::Duration t) { return t >= lead && t < lead + burst ? rate * factor : rate; },
          lead + burst + absl::Seconds(2), lead, lead + burst);
      if (r.ok())
        c.burst = *r;
      else
        fail(r.status());
      std::printf("  %-6s (c) burst: done\n", flow.c_str());
      std::fflush(stdout);
    }
    columns.push_back(std::move(c));
  }

  // The table: one row per measure, one column per flow.
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  auto row = [&](const std::string& name, const std::function<std::string(const Column&)>& f) {
    std::vector<std::string> cells;
    for (const Column& c : columns) cells.push_back(c.failed.empty() ? f(c) : "FAILED");
    rows.emplace_back(name, std::move(cells));
  };
  const std::string runs = absl::StrCat("median of ", config.runs);
  row(absl::StrFormat("no fault: placed->end p50 / p99 (%s)", runs),
      [](const Column& c) { return absl::StrFormat("%.1f / %.1f ms", c.p50, c.p99); });
  row(absl::StrFormat("no fault: orders/s, %d clients (%s)", config.clients, runs),
      [](const Column& c) { return absl::StrFormat("%.0f", c.ops); });
  row("no fault: ends (last run)", [](const Column& c) { return Ends(c.no_fault.back()); });
  const std::string a = absl::StrCat("(a) payment down ", absl::FormatDuration(config.outage));
  row(a + ": PlaceOrder errors", [](const Column& c) { return Errors(c.outage); });
  row(a + ": placed->end p50 / p99", [](const Column& c) { return Latency(c.outage); });
  row(a + ": ends", [](const Column& c) { return Ends(c.outage); });
  row(a + ": orders placed during it that ended OK after it", [](const Column& c) {
    return absl::StrCat(c.outage.ended_after_fault, " of ", c.outage.fault_orders);
  });
  const std::string b = absl::StrCat("(b) inventory +", absl::FormatDuration(config.slow));
  row(b + ": PlaceOrder errors", [](const Column& c) { return Errors(c.slow); });
  row(b + ": placed->end p50 / p99", [](const Column& c) { return Latency(c.slow); });
  row(b + ": ends", [](const Column& c) { return Ends(c.slow); });
  const std::string cb = absl::StrFormat("(c) burst %.0fx for %s", config.burst_factor,
                                         absl::FormatDuration(config.burst));
  row(cb + ": PlaceOrder errors", [](const Column& c) { return Errors(c.burst); });
  row(cb + ": placed->end p50 / p99", [](const Column& c) { return Latency(c.burst); });
  row(cb + ": ends", [](const Column& c) { return Ends(c.burst); });

  size_t w0 = 0;
  std::vector<size_t> w(columns.size(), 0);
  for (const auto& [name, cells] : rows) {
    w0 = std::max(w0, name.size());
    for (size_t i = 0; i < cells.size(); ++i) w[i] = std::max(w[i], cells[i].size());
  }
  for (size_t i = 0; i < columns.size(); ++i) w[i] = std::max(w[i], columns[i].flow.size());
  std::printf("\n| %-*s |", static_cast<int>(w0), "measure");
  for (size_t i = 0; i < columns.size(); ++i) {
    std::printf(" %-*s |", static_cast<int>(w[i]), columns[i].flow.c_str());
  }
  std::printf("\n|%s|", std::string(w0 + 2, '-').c_str());
  for (size_t i = 0; i < columns.size(); ++i)
    std::printf("%s|", std::string(w[i] + 2, '-').c_str());
  std::printf("\n");
  for (const auto& [name, cells] : rows) {
    std::printf("| %-*s |", static_cast<int>(w0), name.c_str());
    for (size_t i = 0; i < cells.size(); ++i) {
      std::printf(" %-*s |", static_cast<int>(w[i]), cells[i].c_str());
    }
    std::printf("\n");
  }
  return ok ? 0 : 1;
}
