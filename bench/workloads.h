#ifndef RELAY_BENCH_WORKLOADS_H_
#define RELAY_BENCH_WORKLOADS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/tls.h"

namespace relay::bench {

// Everything a workload run needs; filled from broker_bench's flags.
struct BenchConfig {
  std::string broker_binary;
  std::string temp_root = "/tmp";
  std::string fsync = "batch";
  std::vector<std::string> broker_args;  // extra relay-broker flags
  bool keep_data = false;
  // Mutual TLS: the broker's flags for it (certificate, CA, --policy), added
  // after `broker_args`, and the files of the bench's own clients. Both
  // empty: plaintext.
  std::vector<std::string> tls_broker_args;
  TlsFiles client_tls;

  std::string client = "stream";  // publisher: "stream" or "library"
  uint64_t events = 200000;       // W1, W2
  int payload_bytes = 256;
  int keys = 1000;
  int batch_events = 1000;
  int in_flight_batches = 32;
  uint32_t consumer_max_in_flight = 10000;
  double rate = 5000;                           // W3, events/s
  absl::Duration duration = absl::Seconds(10);  // W3, W4
  double w4_rate = 1000;                        // W4: events/s over all its topics
  std::vector<int> w4_groups = {1, 100, 1000};  // W4: its runs' numbers of groups
  absl::Duration timeout = absl::Seconds(120);  // hard limit of one run
};

// What one run measured. `seconds` spans the first publish to the last
// acknowledgement that matters: the broker's publish ack (W1) or the
// consumer's ack of the last new event (W2, W3).
struct RunResult {
  std::string workload;  // W1, W2-1c, W2-2c, W3
  int run = 0;           // 1-based
  bool tls = false;      // run with mutual TLS (BenchConfig::client_tls)
  bool ok = false;       // finished, nothing missing, broker exited cleanly
  std::string error;
  uint64_t events = 0;     // meant to be published
  uint64_t published = 0;  // acknowledged by the broker
  uint64_t received = 0;   // distinct events received (W2, W3)
  uint64_t missing = 0;
  uint64_t duplicates = 0;          // deliveries of an event already received
  uint64_t publish_duplicates = 0;  // publishes the broker answered as duplicates
  uint64_t redelivered = 0;         // the group's redeliveries (DescribeGroups; W2, W3)
  uint64_t dead_lettered = 0;       // the group's dead letters (DescribeGroups; W2, W3)
  double seconds = 0;
  double events_per_second = 0;
  double publish_events_per_second = 0;  // W2: publish acks alone
  bool has_latency = false;              // W3
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // W3 split at the broker's publish_time: p50/p99 of scheduled -> append
  // (client send, wire, broker read and queueing) and append -> receive
  // (write, fsync, delivery).
  double to_append_p50_ms = 0, to_append_p99_ms = 0;
  double append_to_receive_p50_ms = 0, append_to_receive_p99_ms = 0;
  double max_send_lag_ms = 0;   // W3: how late the sender ran behind its schedule
  double send_lag_p50_ms = 0;   // W3: the median of the same (part of sched->append)
  double max_send_call_ms = 0;  // W3: the longest publish Send() call
  size_t event_bytes = 0;       // serialized size of one event
  // CPU used over the measured window (user + system, all threads), by the
  // broker and by this benchmark process (publisher and consumers).
  // Delivery messages the consumers received (W2, W3): events per message
  // = deliveries / delivery_messages.
  uint64_t deliveries = 0;
  uint64_t delivery_messages = 0;
  double broker_cpu_seconds = 0;
  double bench_cpu_seconds = 0;
  // The broker's peak resident set (VmHWM) and its resident set once the
  // run's events were all in (VmRSS), before the stop; MB.
  double broker_peak_rss_mb = 0, broker_rss_after_mb = 0;
  // W4: topics (each with one group), and the broker's fsync and fdatasync
  // calls per second of the window, counted by perf (has_syncs false, and
  // syncs_error why, when perf could not count them).
  int groups = 0;
  bool has_syncs = false;
  std::string syncs_error;
  double fsyncs_per_second = 0;
  double fdatasyncs_per_second = 0;
};

// The workload names --workload accepts, and the runs each one expands to
// (W2 is W2-1c then W2-2c; W4 is W4-<n>g for each n of `w4_groups`).
std::vector<std::string> ExpandWorkload(const std::string& name, const std::vector<int>& w4_groups);

// Runs one workload once on a fresh broker and data directory. Never hangs:
// every wait is bounded by `config.timeout`.
RunResult RunWorkload(const std::string& workload, int run, const BenchConfig& config);

}  // namespace relay::bench

#endif  // RELAY_BENCH_WORKLOADS_H_
