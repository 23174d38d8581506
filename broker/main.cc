// relay-broker: the durable gRPC event broker. Reads flags (each with a
// RELAY_BROKER_<FLAG> environment equivalent) and wires storage, groups and
// the gRPC server; SIGTERM/SIGINT drain and exit 0.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/broker_server.h"
#include "broker/storage/file_event_log.h"
#include "common/process.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7070", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, data_dir, "./data/broker", "directory of the topic logs and group state");
ABSL_FLAG(std::string, fsync, "batch",
          "when to fsync before acking: batch (every group commit), interval:<ms>, none");
ABSL_FLAG(uint64_t, segment_bytes, uint64_t{64} << 20, "size at which a log segment rolls");
ABSL_FLAG(absl::Duration, dedupe_window, absl::Hours(24),
          "how long a published event id is remembered for deduplication");
ABSL_FLAG(uint64_t, dedupe_max_bytes, uint64_t{128} << 20,
          "memory for the dedupe windows of all topics (~24 bytes an id); above it the "
          "largest windows forget their oldest ids first (logged and counted)");
ABSL_FLAG(uint64_t, group_window_bytes, uint64_t{64} << 20,
          "bytes of unacknowledged events each consumer group holds in memory");
ABSL_FLAG(uint64_t, group_window_events, 20000,
          "unacknowledged events each consumer group holds in memory");
ABSL_FLAG(absl::Duration, retention_age, absl::Hours(24 * 7),
          "events older than this may be deleted once every group is past them");
ABSL_FLAG(uint64_t, retention_bytes, uint64_t{1} << 30,
          "per-topic size above which the oldest events every group is past are deleted");
ABSL_FLAG(uint64_t, retention_hard_max_bytes, uint64_t{4} << 30,
          "per-topic hard cap: above it the oldest segments go even if a group needs them");
ABSL_FLAG(uint64_t, max_event_bytes, 1 << 20, "largest serialized event accepted");
ABSL_FLAG(uint32_t, max_deliveries, 5, "deliveries before an event goes to <topic>.dlq");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Milliseconds(200),
          "how often changed group progress is made durable");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long open RPCs get to finish");
ABSL_FLAG(std::string, port_file, "",
          "if set, the chosen port is written to this file once serving (for tests)");
ABSL_FLAG(std::string, log_format, "text", "text or json");

namespace {

absl::Status ParseFsync(const std::string& text, relay::broker::FileEventLog::Options* o) {
  using Policy = relay::broker::FsyncPolicy;
  if (text == "batch") {
    o->fsync_policy = Policy::kBatch;
  } else if (text == "none") {
    o->fsync_policy = Policy::kNone;
  } else if (absl::StartsWith(text, "interval:")) {
    int ms = 0;
    if (!absl::SimpleAtoi(text.substr(9), &ms) || ms <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fsync=", text, ": interval must be a positive number of ms"));
    }
    o->fsync_policy = Policy::kInterval;
    o->fsync_interval = absl::Milliseconds(ms);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--fsync=", text, ": expected batch, interval:<ms> or none"));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  relay::Process process("relay-broker", "RELAY_BROKER_",
                         "durable gRPC event broker (relay.broker.v1.Broker).");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  relay::broker::FileEventLog::Options log_options;
  log_options.data_dir = data_dir;
  if (absl::Status s = ParseFsync(absl::GetFlag(FLAGS_fsync), &log_options); !s.ok()) {
    return process.Fail(s);
  }
  log_options.segment_bytes = absl::GetFlag(FLAGS_segment_bytes);
  log_options.dedupe_window = absl::GetFlag(FLAGS_dedupe_window);
  log_options.dedupe_max_bytes = absl::GetFlag(FLAGS_dedupe_max_bytes);
  log_options.retention_age = absl::GetFlag(FLAGS_retention_age);
  log_options.retention_bytes = absl::GetFlag(FLAGS_retention_bytes);
  log_options.hard_max_bytes = absl::GetFlag(FLAGS_retention_hard_max_bytes);
  absl::StatusOr<std::unique_ptr<relay::broker::FileEventLog>> log =
      relay::broker::FileEventLog::Open(log_options);
  if (!log.ok()) return process.Fail(log.status());

  relay::broker::BrokerServer::Options options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.groups_dir = data_dir + "/groups";
  options.limits.max_event_bytes = absl::GetFlag(FLAGS_max_event_bytes);
  options.groups.scheduler.max_deliveries = absl::GetFlag(FLAGS_max_deliveries);
  options.groups.scheduler.max_buffered = absl::GetFlag(FLAGS_group_window_events);
  options.groups.max_window_bytes = absl::GetFlag(FLAGS_group_window_bytes);
  if (options.groups.scheduler.max_buffered == 0 || options.groups.max_window_bytes == 0) {
    return process.Fail(absl::InvalidArgumentError(
        "--group_window_events and --group_window_bytes must be positive"));
  }
  options.groups.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> server =
      relay::broker::BrokerServer::Start(options, std::move(*log));
  if (!server.ok()) return process.Fail(server.status());

  if (std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << (*server)->port() << "\n";
    }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  return process.ServeUntilSignal({{"listen", options.listen_address},
                                   {"port", absl::StrCat((*server)->port())},
                                   {"data_dir", data_dir},
                                   {"fsync", absl::GetFlag(FLAGS_fsync)}},
                                  [&] { (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace)); });
}
