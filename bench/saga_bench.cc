// saga_bench: the whole order saga on this machine (see bench/README.md).
// Each run starts relay-broker, inventory-, payment- and order-service as
// child processes on a fresh temporary directory, funds money and stock,
// warms up, then measures
//   S1: orders/s placed -> terminal at the highest sustainable rate;
//   S2: placed -> confirmed latency at a fixed rate (1,000 orders/s);
// and stops every process (SIGTERM, then SIGKILL).
//
//   saga_bench --runs=3
//   saga_bench --scenario=S2 --rate=500 --duration=10s --json
//   saga_bench --runs=3 --tls=both   # mutual TLS beside plaintext

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/bench_report.h"
#include "bench/bench_tls.h"
#include "bench/saga_bench_report.h"
#include "bench/saga_bench_scenarios.h"
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
#ifndef RELAY_DEV_PKI
#define RELAY_DEV_PKI ""
#endif
#ifndef RELAY_BROKER_POLICY
#define RELAY_BROKER_POLICY ""
#endif

ABSL_FLAG(std::string, scenario, "all", "S1 (throughput), S2 (latency at --rate) or all");
ABSL_FLAG(int, runs, 3, "runs of each scenario, each on fresh processes and directories");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(30), "measured window of each scenario");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(15), "after the window, how long orders get to end");
ABSL_FLAG(int, concurrency, 128, "S1: PlaceOrder calls outstanding at most");
ABSL_FLAG(
    int64_t, max_backlog, 5000,
    "S1: orders placed but not yet terminal at most (0: no limit; placing then outruns the saga)");
ABSL_FLAG(double, rate, 1000, "S2: orders per second, on an absolute schedule");
ABSL_FLAG(int, warmup, 200, "orders placed and ended before measuring (besides one per sku)");
ABSL_FLAG(int64_t, max_orders, 1000000, "hard cap on orders per scenario run");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(10), "deadline of each PlaceOrder");
ABSL_FLAG(int, customers, 16, "bench accounts created (and funded) per run");
ABSL_FLAG(std::string, fsync, "batch", "relay-broker --fsync (batch, interval:<ms>, none)");
ABSL_FLAG(std::string, broker, RELAY_BROKER_BINARY, "relay-broker binary");
ABSL_FLAG(std::string, order_service, RELAY_ORDER_BINARY, "order-service binary");
ABSL_FLAG(std::string, inventory_service, RELAY_INVENTORY_BINARY, "inventory-service binary");
ABSL_FLAG(std::string, payment_service, RELAY_PAYMENT_BINARY, "payment-service binary");
ABSL_FLAG(std::string, broker_flags, "", "extra relay-broker flags, space separated");
ABSL_FLAG(std::string, order_flags, "", "extra order-service flags, space separated");
ABSL_FLAG(std::string, inventory_flags, "", "extra inventory-service flags, space separated");
ABSL_FLAG(std::string, payment_flags, "", "extra payment-service flags, space separated");
ABSL_FLAG(std::string, temp_root, "", "where run directories go (default: $TMPDIR or /tmp)");
ABSL_FLAG(bool, keep_data, false, "keep each run's directory (databases, broker data, logs)");
ABSL_FLAG(bool, json, false, "print one JSON document on stdout (run lines go to stderr)");
ABSL_FLAG(std::string, tls, "off",
          "off (plaintext), on (mutual TLS between all processes) or both (each run twice, "
          "plaintext and mutual TLS one after the other, alternating which goes first)");
ABSL_FLAG(std::string, pki, "",
          "with --tls: a directory with ca.crt and NAME.{crt,key} for broker, order-service, "
          "inventory-service, payment-service and relay-bench (default: made fresh by --dev_pki)");
ABSL_FLAG(std::string, dev_pki, RELAY_DEV_PKI, "scripts/dev-pki, which makes the certificates");
ABSL_FLAG(std::string, policy, RELAY_BROKER_POLICY,
          "with --tls: the broker's policy; the bench appends one rule that lets relay-bench "
          "consume topic orders as group saga-bench (empty: no --policy)");

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "saga_bench: %s\n", message.c_str());
  return 2;
}

std::vector<std::string> Split(const std::string& flags) {
  return absl::StrSplit(flags, ' ', absl::SkipEmpty());
}

// The identities of a TLS run: the four binaries and the bench's clients.
const std::vector<std::string>& Identities() {
  static const auto* ids =
      new std::vector<std::string>{"broker", "order-service", "inventory-service",
                                   "payment-service", relay::bench::kBenchIdentity};
  return *ids;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "saga_bench: orders/s and placed->confirmed latency of the whole Relay saga "
      "(bench/README.md).");
  absl::ParseCommandLine(argc, argv);
  relay::log::Init("saga_bench", relay::log::Format::kText);
  relay::log::SetMinLevel(relay::log::Level::kWarn);  // no "subscribed" lines in the report
  using relay::bench::SagaConfig;

  SagaConfig config;
  auto& sys = config.system;
  sys.broker_binary = absl::GetFlag(FLAGS_broker);
  sys.order_binary = absl::GetFlag(FLAGS_order_service);
  sys.inventory_binary = absl::GetFlag(FLAGS_inventory_service);
  sys.payment_binary = absl::GetFlag(FLAGS_payment_service);
  sys.broker_args = Split(absl::GetFlag(FLAGS_broker_flags));
  sys.order_args = Split(absl::GetFlag(FLAGS_order_flags));
  sys.inventory_args = Split(absl::GetFlag(FLAGS_inventory_flags));
  sys.payment_args = Split(absl::GetFlag(FLAGS_payment_flags));
  sys.fsync = absl::GetFlag(FLAGS_fsync);
  sys.keep_dir = absl::GetFlag(FLAGS_keep_data);
  sys.customers = absl::GetFlag(FLAGS_customers);
  sys.temp_root = relay::bench::TempRoot(absl::GetFlag(FLAGS_temp_root));
  config.duration = absl::GetFlag(FLAGS_duration);
  config.grace = absl::GetFlag(FLAGS_grace);
  config.concurrency = absl::GetFlag(FLAGS_concurrency);
  config.max_backlog = absl::GetFlag(FLAGS_max_backlog);
  config.rate = absl::GetFlag(FLAGS_rate);
  config.warmup = absl::GetFlag(FLAGS_warmup);
  config.max_orders = absl::GetFlag(FLAGS_max_orders);
  config.rpc_timeout = absl::GetFlag(FLAGS_rpc_timeout);
  const int runs = absl::GetFlag(FLAGS_runs);
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string scenario = absl::GetFlag(FLAGS_scenario);

  if (scenario != "all" && scenario != "S1" && scenario != "S2")
    return Usage("--scenario must be S1, S2 or all");
  if (runs < 1 || runs > 100) return Usage("--runs must be within 1..100");
  if (config.duration <= absl::ZeroDuration() || config.duration > absl::Hours(1)) {
    return Usage("--duration must be within (0, 1h]");
  }
  if (config.grace < absl::ZeroDuration() || config.grace > absl::Hours(1)) {
    return Usage("--grace must be within [0, 1h]");
  }
  if (config.concurrency < 1 || config.concurrency > 100000)
    return Usage("--concurrency must be within 1..1e5");
  if (config.max_backlog < 0) return Usage("--max_backlog must not be negative");
  if (config.rate <= 0 || config.rate > 1e6) return Usage("--rate must be within (0, 1e6]");
  if (config.warmup < 0 || config.warmup > 100000) return Usage("--warmup must be within 0..1e5");
  if (config.max_orders < 1) return Usage("--max_orders must be positive");
  if (config.rpc_timeout <= absl::ZeroDuration()) return Usage("--rpc_timeout must be positive");
  if (sys.customers < 1 || sys.customers > 10000) return Usage("--customers must be within 1..1e4");
  relay::bench::TlsMode tls_mode;
  const std::string tls_flag = absl::GetFlag(FLAGS_tls);
  if (!relay::bench::ParseTlsMode(tls_flag, &tls_mode))
    return Usage("--tls must be off, on or both");

  // The TLS runs' configuration: the same, with certificates and policy.
  SagaConfig tls_config = config;
  std::unique_ptr<relay::bench::BenchPki> pki;
  if (tls_mode != relay::bench::TlsMode::kOff) {
    relay::bench::BenchPki::Options po;
    po.script = absl::GetFlag(FLAGS_dev_pki);
    po.temp_root = sys.temp_root;
    po.dir = absl::GetFlag(FLAGS_pki);
    po.keep = sys.keep_dir;
    auto made = relay::bench::BenchPki::Make(po, Identities());
    if (!made.ok()) return Usage(std::string(made.status().message()));
    pki = *std::move(made);
    tls_config.system.pki = pki.get();
    if (const std::string shipped = absl::GetFlag(FLAGS_policy); !shipped.empty()) {
      absl::StatusOr<std::string> text = relay::bench::ReadTextFile(shipped);
      if (!text.ok()) return Usage(std::string(text.status().message()));
      // The bench's consumer of order.confirmed/order.cancelled, which no
      // shipped rule covers (relayctl may only read).
      absl::StrAppend(&*text, "\n# saga_bench --tls: the bench's own consumer.\nallow ",
                      relay::bench::kBenchIdentity, " subscribe orders group saga-bench\n");
      absl::StatusOr<std::string> path = pki->WriteFile("saga-bench-policy.conf", *text);
      if (!path.ok()) return Usage(std::string(path.status().message()));
      tls_config.system.policy = *path;
    }
  }

  if (!json) {
    std::printf(
        "saga_bench: %s x%d, window %s + grace %s; S1 concurrency %d, max backlog %lld; S2 %.0f "
        "orders/s; "
        "broker --fsync=%s; data in %s; tls=%s%s%s\n",
        scenario.c_str(), runs, absl::FormatDuration(config.duration).c_str(),
        absl::FormatDuration(config.grace).c_str(), config.concurrency,
        static_cast<long long>(config.max_backlog), config.rate, sys.fsync.c_str(),
        sys.temp_root.c_str(), tls_flag.c_str(),
        pki == nullptr ? "" : " pki=", pki == nullptr ? "" : pki->dir().c_str());
    std::fflush(stdout);
  }
  std::vector<relay::bench::SagaRun> results;
  bool all_ok = true;
  // Interleaved (S1, S2, S1, S2, ...; with --tls=both each scenario's
  // plaintext and TLS runs side by side) so that a change of machine load
  // touches both scenarios and both transports alike.
  for (int run = 1; run <= runs; ++run) {
    for (const char* s : {"S1", "S2"}) {
      if (scenario != "all" && scenario != s) continue;
      for (bool tls : relay::bench::TransportsOfRun(tls_mode, run)) {
        const SagaConfig& c = tls ? tls_config : config;
        results.push_back(std::string(s) == "S1" ? relay::bench::RunThroughput(c, run)
                                                 : relay::bench::RunLatency(c, run));
        all_ok &= results.back().ok;
        std::fprintf(json ? stderr : stdout, "%s\n",
                     relay::bench::SagaRunLines(results.back(), runs).c_str());
        std::fflush(json ? stderr : stdout);
      }
    }
  }
  std::vector<relay::bench::SagaSummary> summaries = relay::bench::SummarizeSaga(results);
  if (json) {
    std::fputs(relay::bench::SagaJson(config, results, summaries).c_str(), stdout);
  } else {
    std::printf("\n");
    for (const auto& s : summaries) std::printf("%s\n", relay::bench::SagaSummaryLines(s).c_str());
    const std::vector<std::string> costs = relay::bench::SagaTlsCostLines(results, summaries);
    if (!costs.empty()) std::printf("\n");
    for (const std::string& line : costs) std::printf("%s\n", line.c_str());
  }
  return all_ok ? 0 : 1;
}
