// relay-broker: the durable gRPC event broker. Reads flags (each with a
// RELAY_BROKER_<FLAG> environment equivalent) and wires storage (file or
// NATS JetStream), groups and the gRPC server; SIGTERM/SIGINT drain and
// exit 0.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "broker/broker_server.h"
#include "broker/storage/file_event_log.h"
#include "broker/storage_backend.h"
#include "common/process.h"
#include "common/text.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7070", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, storage, "file",
          "where topics live: file (segment files under --data_dir) or jetstream (a NATS "
          "JetStream stream per topic, at --nats). With jetstream, group checkpoints go to the "
          "key-value bucket relay_groups there, and --data_dir, --fsync, --segment_bytes, "
          "--dedupe_max_bytes are ignored");
ABSL_FLAG(std::string, nats, "nats://127.0.0.1:4222",
          "--storage=jetstream: the NATS servers, URL[,URL...] (ignored with --storage=file)");
ABSL_FLAG(int32_t, replicas, 1,
          "--storage=jetstream: copies of each topic's stream and of the group bucket, 1 to 5; a "
          "quorum acks each write (ignored with --storage=file)");
ABSL_FLAG(std::string, data_dir, "./data/broker",
          "--storage=file: directory of the topic logs and of the group checkpoints");
ABSL_FLAG(std::string, fsync, "batch",
          "--storage=file: when to fsync before acking: batch (every group commit), "
          "interval:<ms>, none");
ABSL_FLAG(uint64_t, segment_bytes, uint64_t{64} << 20,
          "--storage=file: size at which a log segment rolls");
ABSL_FLAG(absl::Duration, dedupe_window, absl::Hours(24),
          "how long a published event id is remembered for deduplication");
ABSL_FLAG(
    uint64_t, dedupe_max_bytes, uint64_t{128} << 20,
    "--storage=file: memory for the dedupe windows of all topics (~24 bytes an id); above it the "
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
          "per-topic hard cap: above it the oldest events go even if a group needs them "
          "(with jetstream: the stream's max_bytes)");
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

// The backend --storage names, with its options from the flags. Only the
// chosen backend's flags are read (the others are ignored, as --help says).
absl::Status StorageFromFlags(const std::string& data_dir, relay::broker::StorageOptions* o) {
  const std::string storage = absl::GetFlag(FLAGS_storage);
  absl::StatusOr<relay::broker::Storage> backend = relay::broker::ParseStorage(storage);
  if (!backend.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--storage must be file or jetstream, got ", relay::Excerpt(storage)));
  }
  o->backend = *backend;
  if (o->backend == relay::broker::Storage::kFile) {
    o->file.data_dir = data_dir;
    if (absl::Status s = ParseFsync(absl::GetFlag(FLAGS_fsync), &o->file); !s.ok()) return s;
    o->file.segment_bytes = absl::GetFlag(FLAGS_segment_bytes);
    o->file.dedupe_window = absl::GetFlag(FLAGS_dedupe_window);
    o->file.dedupe_max_bytes = absl::GetFlag(FLAGS_dedupe_max_bytes);
    o->file.retention_age = absl::GetFlag(FLAGS_retention_age);
    o->file.retention_bytes = absl::GetFlag(FLAGS_retention_bytes);
    o->file.hard_max_bytes = absl::GetFlag(FLAGS_retention_hard_max_bytes);
    return absl::OkStatus();
  }
  const std::string nats = absl::GetFlag(FLAGS_nats);
  std::vector<absl::string_view> urls = absl::StrSplit(nats, ',');
  for (absl::string_view url : urls) {
    if (absl::StripAsciiWhitespace(url).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--nats must be URL[,URL...] with no empty URL, got ", relay::Excerpt(nats)));
    }
  }
  const int32_t replicas = absl::GetFlag(FLAGS_replicas);
  if (replicas < 1 || replicas > 5) {
    return absl::InvalidArgumentError(absl::StrCat("--replicas must be 1 to 5, got ", replicas));
  }
  o->jetstream.servers = nats;
  o->jetstream.replicas = replicas;
  o->jetstream.dedupe_window = absl::GetFlag(FLAGS_dedupe_window);
  o->jetstream.retention_age = absl::GetFlag(FLAGS_retention_age);
  o->jetstream.retention_bytes = absl::GetFlag(FLAGS_retention_bytes);
  o->jetstream.hard_max_bytes = absl::GetFlag(FLAGS_retention_hard_max_bytes);
  // The stream's own max_age would delete past the groups' floors: the
  // retention pass applies --retention_age instead (docs/JETSTREAM.md#retention).
  o->jetstream.max_age = absl::ZeroDuration();
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  relay::Process process("relay-broker", "RELAY_BROKER_",
                         "durable gRPC event broker (relay.broker.v1.Broker).");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  relay::broker::BrokerServer::Options options;
  if (absl::Status s = StorageFromFlags(data_dir, &options.storage); !s.ok()) {
    return process.Fail(s);
  }
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
      relay::broker::BrokerServer::Start(options);
  if (!server.ok()) return process.Fail(server.status());

  if (std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << (*server)->port() << "\n";
    }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  auto shutdown = [&] { (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace)); };
  const std::string port = absl::StrCat((*server)->port());
  if (options.storage.backend == relay::broker::Storage::kJetStream) {
    return process.ServeUntilSignal({{"listen", options.listen_address},
                                     {"port", port},
                                     {"storage", "jetstream"},
                                     {"nats", options.storage.jetstream.servers},
                                     {"replicas", absl::StrCat(options.storage.jetstream.replicas)},
                                     {"group_bucket", "relay_groups"}},
                                    shutdown);
  }
  return process.ServeUntilSignal({{"listen", options.listen_address},
                                   {"port", port},
                                   {"storage", "file"},
                                   {"data_dir", data_dir},
                                   {"fsync", absl::GetFlag(FLAGS_fsync)}},
                                  shutdown);
}
