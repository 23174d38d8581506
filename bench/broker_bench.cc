// broker_bench: throughput and latency of the real relay-broker binary on
// 127.0.0.1 (see bench/README.md). Each run starts a fresh broker on a fresh
// data directory, runs one workload, then SIGTERMs the broker.
//
//   broker_bench --workload=all --runs=3
//   broker_bench --workload=W3 --rate=5000 --duration=10s --json
//   broker_bench --workload=all --runs=3 --tls=both   # mutual TLS beside plaintext

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/bench_report.h"
#include "bench/bench_tls.h"
#include "bench/workloads.h"

#ifndef RELAY_BROKER_BINARY
#define RELAY_BROKER_BINARY ""
#endif
#ifndef RELAY_DEV_PKI
#define RELAY_DEV_PKI ""
#endif

ABSL_FLAG(std::string, workload, "all",
          "comma-separated: W1, W2 (= W2-1c and W2-2c), W2-1c, W2-2c, W3, all (= W1, W2, W3) "
          "or W4 (= W4-<n>g for each n of --groups)");
ABSL_FLAG(uint64_t, events, 200000, "events published in W1 and W2");
ABSL_FLAG(double, rate, 5000, "W3: events per second, on an absolute schedule");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "W3, W4: how long to publish");
ABSL_FLAG(double, w4_rate, 1000, "W4: events per second over all its topics");
ABSL_FLAG(std::vector<std::string>, groups, std::vector<std::string>({"1", "100", "1000"}),
          "W4: comma-separated numbers of topics, each with one consumer group; one run each");
ABSL_FLAG(std::string, fsync, "batch",
          "passed to relay-broker --fsync (batch, interval:<ms>, none)");
ABSL_FLAG(int, runs, 1,
          "repeat each workload this many times (fresh broker each) and report the median");
ABSL_FLAG(bool, json, false, "print one JSON document on stdout instead of the human report");
ABSL_FLAG(std::string, broker, RELAY_BROKER_BINARY, "path of the relay-broker binary");
ABSL_FLAG(std::string, broker_flags, "",
          "extra relay-broker flags, space separated (e.g. \"--checkpoint_interval=1s\")");
ABSL_FLAG(std::string, client, "stream",
          "publisher: stream (raw PublishStream, pipelined batches) or library "
          "(relay::events::Publisher)");
ABSL_FLAG(int, batch, 1000, "events per publish batch (W3: at most, it sends what is due)");
ABSL_FLAG(int, inflight, 32, "publish batches sent but not yet acknowledged (W3: at least 1024)");
ABSL_FLAG(uint32_t, max_in_flight, 10000, "consumers' Subscribe max_in_flight");
ABSL_FLAG(int, payload_bytes, 256, "size of each event's data");
ABSL_FLAG(int, keys, 1000, "distinct event keys");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(120), "hard limit of one run; it fails past it");
ABSL_FLAG(std::string, temp_root, "",
          "where the brokers' data directories go (default: $TMPDIR or /tmp)");
ABSL_FLAG(bool, keep_data, false, "keep each run's broker directory (data and broker.log)");
ABSL_FLAG(std::string, tls, "off",
          "off (plaintext), on (mutual TLS) or both (each run twice, plaintext and mutual TLS "
          "one after the other, alternating which goes first)");
ABSL_FLAG(std::string, pki, "",
          "with --tls: a directory with ca.crt, broker.{crt,key} and relay-bench.{crt,key} "
          "(default: made fresh by --dev_pki in a temporary directory)");
ABSL_FLAG(std::string, dev_pki, RELAY_DEV_PKI, "scripts/dev-pki, which makes the certificates");
ABSL_FLAG(bool, tls_policy, true,
          "with --tls: start the broker with a --policy that lets relay-bench publish, "
          "subscribe to and describe the bench topic (false: mutual TLS without a policy)");

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "broker_bench: %s\n", message.c_str());
  return 2;
}

// What the broker lets the bench's identity do: publish to the bench topic,
// consume it as group bench, and DescribeGroups (admin).
std::string BenchPolicy() {
  return absl::StrCat("# broker_bench --tls: the bench clients' identity.\n",      //
                      "allow ", relay::bench::kBenchIdentity, " publish bench\n",  //
                      "allow ", relay::bench::kBenchIdentity, " subscribe bench group bench\n",
                      "allow ", relay::bench::kBenchIdentity, " admin\n");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "broker_bench: publish/consume throughput and latency of relay-broker (bench/README.md).");
  absl::ParseCommandLine(argc, argv);
  using relay::bench::BenchConfig;

  BenchConfig config;
  config.broker_binary = absl::GetFlag(FLAGS_broker);
  config.fsync = absl::GetFlag(FLAGS_fsync);
  config.broker_args = absl::StrSplit(absl::GetFlag(FLAGS_broker_flags), ' ', absl::SkipEmpty());
  config.keep_data = absl::GetFlag(FLAGS_keep_data);
  config.client = absl::GetFlag(FLAGS_client);
  config.events = absl::GetFlag(FLAGS_events);
  config.payload_bytes = absl::GetFlag(FLAGS_payload_bytes);
  config.keys = absl::GetFlag(FLAGS_keys);
  config.batch_events = absl::GetFlag(FLAGS_batch);
  config.in_flight_batches = absl::GetFlag(FLAGS_inflight);
  config.consumer_max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  config.rate = absl::GetFlag(FLAGS_rate);
  config.duration = absl::GetFlag(FLAGS_duration);
  config.w4_rate = absl::GetFlag(FLAGS_w4_rate);
  config.w4_groups.clear();
  for (const std::string& g : absl::GetFlag(FLAGS_groups)) {
    int n = 0;
    if (!absl::SimpleAtoi(g, &n) || n < 1 || n > 10000) {
      return Usage("--groups must list numbers within 1..10000");
    }
    config.w4_groups.push_back(n);
  }
  config.timeout = absl::GetFlag(FLAGS_timeout);
  config.temp_root = relay::bench::TempRoot(absl::GetFlag(FLAGS_temp_root));
  const int runs = absl::GetFlag(FLAGS_runs);
  const bool json = absl::GetFlag(FLAGS_json);

  std::vector<std::string> workloads;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_workload), ',', absl::SkipEmpty())) {
    std::vector<std::string> expanded =
        relay::bench::ExpandWorkload(std::string(name), config.w4_groups);
    if (expanded.empty()) return Usage("--workload must list W1, W2, W2-1c, W2-2c, W3, W4 or all");
    if (name == "W4" && absl::GetFlag(FLAGS_tls) != "off") {
      return Usage("W4 runs in plaintext only (the --tls policy allows the bench topic alone)");
    }
    workloads.insert(workloads.end(), expanded.begin(), expanded.end());
  }
  if (workloads.empty()) return Usage("--workload is empty");
  if (runs < 1 || runs > 100) return Usage("--runs must be within 1..100");
  if (config.events < 1 || config.events > 100'000'000)
    return Usage("--events must be within 1..1e8");
  if (config.rate <= 0 || config.rate > 1e7) return Usage("--rate must be within (0, 1e7]");
  if (config.w4_rate <= 0 || config.w4_rate > 1e6) {
    return Usage("--w4_rate must be within (0, 1e6]");
  }
  if (config.duration <= absl::ZeroDuration() || config.duration > absl::Hours(1)) {
    return Usage("--duration must be within (0, 1h]");
  }
  if (config.batch_events < 1 || config.in_flight_batches < 1 || config.keys < 1 ||
      config.payload_bytes < 16) {
    return Usage("--batch, --inflight and --keys must be positive and --payload_bytes at least 16");
  }
  if (config.client != "stream" && config.client != "library") {
    return Usage("--client must be stream or library");
  }
  if (config.timeout <= absl::ZeroDuration()) return Usage("--timeout must be positive");
  relay::bench::TlsMode tls_mode;
  const std::string tls_flag = absl::GetFlag(FLAGS_tls);
  if (!relay::bench::ParseTlsMode(tls_flag, &tls_mode))
    return Usage("--tls must be off, on or both");

  // The TLS runs' configuration: the same, plus certificates (and policy).
  BenchConfig tls_config = config;
  std::unique_ptr<relay::bench::BenchPki> pki;
  if (tls_mode != relay::bench::TlsMode::kOff) {
    relay::bench::BenchPki::Options po;
    po.script = absl::GetFlag(FLAGS_dev_pki);
    po.temp_root = config.temp_root;
    po.dir = absl::GetFlag(FLAGS_pki);
    po.keep = config.keep_data;
    auto made = relay::bench::BenchPki::Make(po, {"broker", relay::bench::kBenchIdentity});
    if (!made.ok()) return Usage(std::string(made.status().message()));
    pki = *std::move(made);
    tls_config.tls_broker_args = pki->ServerFlags("broker");
    tls_config.client_tls = pki->Files(relay::bench::kBenchIdentity);
    if (absl::GetFlag(FLAGS_tls_policy)) {
      absl::StatusOr<std::string> policy = pki->WriteFile("bench-policy.conf", BenchPolicy());
      if (!policy.ok()) return Usage(std::string(policy.status().message()));
      tls_config.tls_broker_args.push_back(absl::StrCat("--policy=", *policy));
    }
  }

  if (!json) {
    std::printf(
        "broker_bench: broker=%s fsync=%s client=%s events=%llu payload=%dB keys=%d batch=%d "
        "inflight=%d consumer_max_in_flight=%u W3=%.0f/s for %s data in %s tls=%s%s%s\n",
        config.broker_binary.c_str(), config.fsync.c_str(), config.client.c_str(),
        static_cast<unsigned long long>(config.events), config.payload_bytes, config.keys,
        config.batch_events, config.in_flight_batches, config.consumer_max_in_flight, config.rate,
        absl::FormatDuration(config.duration).c_str(), config.temp_root.c_str(), tls_flag.c_str(),
        pki == nullptr ? "" : " pki=", pki == nullptr ? "" : pki->dir().c_str());
    std::fflush(stdout);
  }
  std::vector<relay::bench::RunResult> results;
  bool all_ok = true;
  for (const std::string& w : workloads) {
    for (int run = 1; run <= runs; ++run) {
      for (bool tls : relay::bench::TransportsOfRun(tls_mode, run)) {
        results.push_back(relay::bench::RunWorkload(w, run, tls ? tls_config : config));
        all_ok &= results.back().ok;
        const std::string line = relay::bench::RunLine(results.back(), runs);
        std::fprintf(json ? stderr : stdout, "%s\n", line.c_str());
        std::fflush(json ? stderr : stdout);
      }
    }
  }
  std::vector<relay::bench::Summary> summaries = relay::bench::Summarize(results);
  std::vector<relay::bench::TlsCost> tls_costs = relay::bench::CompareTls(results, summaries);
  if (json) {
    std::fputs(relay::bench::ToJson(config, tls_flag, results, summaries, tls_costs).c_str(),
               stdout);
  } else {
    std::printf("\n");
    for (const auto& s : summaries) std::printf("%s\n", relay::bench::SummaryLine(s).c_str());
    if (!tls_costs.empty()) std::printf("\n");
    for (const auto& c : tls_costs) std::printf("%s\n", relay::bench::TlsCostLine(c).c_str());
  }
  return all_ok ? 0 : 1;
}
