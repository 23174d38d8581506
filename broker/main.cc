// relay-broker: the durable gRPC event broker. Reads flags (each with a
// RELAY_BROKER_<FLAG> environment equivalent) and wires storage (file or
// NATS JetStream), groups and the gRPC server; SIGTERM/SIGINT drain and
// exit 0. On JetStream it first waits, as a standby that does not listen,
// for the broker lease (broker/broker_lease.h), and exits 3 if it ever loses
// it. On file storage it exits 4 once a write or fsync of the log failed.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "broker/broker_lease.h"
#include "broker/broker_server.h"
#include "broker/storage/file_event_log.h"
#include "broker/storage/jetstream_connection.h"
#include "broker/storage_backend.h"
#include "common/log.h"
#include "common/process.h"
#include "common/signals.h"
#include "common/text.h"
#include "common/tls.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7070", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, storage, "file",
          "where topics live: file (segment files under --data_dir) or jetstream (a NATS "
          "JetStream stream per topic, at --nats). With jetstream, group checkpoints go to the "
          "key-value bucket relay_groups there, and --data_dir, --fsync, --segment_bytes, "
          "--dedupe_max_bytes, --tail_cache_bytes are ignored");
ABSL_FLAG(std::string, nats, "nats://127.0.0.1:4222",
          "--storage=jetstream: the NATS servers, URL[,URL...] (ignored with --storage=file)");
ABSL_FLAG(int32_t, replicas, 1,
          "--storage=jetstream: copies of each topic's stream and of the group bucket, 1 to 5; a "
          "quorum acks each write (ignored with --storage=file)");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(2),
          "--storage=jetstream: how long the active broker's lease outlives its last renewal; "
          "a standby takes over about lease_ttl * 1.25 after the active broker dies (1s to 60s)");
ABSL_FLAG(std::string, advertise, "",
          "--storage=jetstream: host:port clients use to reach this broker, shown in the lease "
          "(default: <hostname>:<--listen's port>)");
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
ABSL_FLAG(uint64_t, tail_cache_bytes, uint64_t{32} << 20,
          "--storage=file: memory for the events written last to any topic, from which "
          "consumers that keep up are served without reading the files back (0: none)");
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
ABSL_FLAG(uint32_t, max_deliveries, 5, "deliveries before an event goes to <topic>.dlq, 1 to 1000");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Milliseconds(200),
          "how often changed group progress is made durable");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long open RPCs get to finish");
ABSL_FLAG(std::string, port_file, "",
          "if set, the chosen port is written to this file once serving (for tests)");
ABSL_FLAG(std::string, log_format, "text", "text or json");
ABSL_FLAG(std::string, policy, "",
          "the policy file: which identity may publish, subscribe and call the admin RPCs "
          "(docs/SECURITY.md); re-read on SIGHUP. Needs --tls_cert, --tls_key and --tls_ca. "
          "Empty: every caller may do everything");

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
    o->file.tail_cache_bytes = absl::GetFlag(FLAGS_tail_cache_bytes);
    o->file.retention_age = absl::GetFlag(FLAGS_retention_age);
    o->file.retention_bytes = absl::GetFlag(FLAGS_retention_bytes);
    o->file.hard_max_bytes = absl::GetFlag(FLAGS_retention_hard_max_bytes);
    return absl::OkStatus();
  }
  const std::string nats = absl::GetFlag(FLAGS_nats);
  std::vector<absl::string_view> urls = absl::StrSplit(nats, ',');
  for (absl::string_view url : urls) {
    if (absl::StripAsciiWhitespace(url).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nats must be URL[,URL...] with no empty URL, got ",
                       relay::Excerpt(relay::broker::RedactedNatsUrls(nats))));
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

// Writes the bound port to --port_file, if set (atomically: tests poll it).
void WritePortFile(int port) {
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (port_file.empty()) return;
  const std::string tmp = port_file + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
  }
  std::rename(tmp.c_str(), port_file.c_str());
}

// The server SIGHUP reloads the policy of; null once it is shut down.
ABSL_CONST_INIT absl::Mutex hangup_mu(absl::kConstInit);
relay::broker::BrokerServer* hangup_target ABSL_GUARDED_BY(hangup_mu) = nullptr;

// Re-reads the policy of `server` on every SIGHUP until StopReloading(): a
// bad file is refused and the policy in force stays.
void ReloadPolicyOnHangup(relay::broker::BrokerServer* server) {
  {
    absl::MutexLock lock(&hangup_mu);
    hangup_target = server;
  }
  std::thread([] {
    while (true) {
      relay::WaitForHangup();
      absl::MutexLock lock(&hangup_mu);
      if (hangup_target == nullptr) return;
      relay::broker::Authorizer* auth = hangup_target->authorizer();
      if (!auth->enforcing()) {
        RELAY_LOG(Info, "SIGHUP: no --policy to re-read", {});
        continue;
      }
      if (absl::Status s = hangup_target->ReloadPolicy(); !s.ok()) {
        RELAY_LOG(Error, "SIGHUP: new policy refused, the previous one stays in force",
                  {{"policy", auth->path()}, {"error", std::string(s.message())}});
      } else {
        RELAY_LOG(Info, "SIGHUP: policy reloaded",
                  {{"policy", auth->path()}, {"rules", absl::StrCat(auth->rule_count())}});
      }
    }
  }).detach();
}

// Before the server is destroyed: a later SIGHUP does nothing.
void StopReloading() {
  absl::MutexLock lock(&hangup_mu);
  hangup_target = nullptr;
}

// The exit status of a broker that lost its lease (docs/JETSTREAM.md).
constexpr int kLostLeaseExit = 3;
// The exit status of a broker whose event log failed (docs/STORAGE.md).
constexpr int kStorageFailedExit = 4;

// Why the file-storage broker stops: a termination signal, or its log
// failing. Leaked: the signal thread may outlive main().
class StopCause {
 public:
  static StopCause& Get() {
    static auto* const cause = new StopCause;
    return *cause;
  }
  void Signalled(int signal_number) {
    absl::MutexLock lock(&mu_);
    if (!stopped_) signal_ = signal_number;
    stopped_ = true;
  }
  void StorageFailed(const absl::Status& cause) {
    absl::MutexLock lock(&mu_);
    if (!stopped_) storage_ = cause;
    stopped_ = true;
  }
  // Blocks until either; returns the storage failure, or OK for a signal.
  absl::Status Wait(int* signal_number) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&stopped_));
    *signal_number = signal_;
    return storage_;
  }

 private:
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int signal_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status storage_ ABSL_GUARDED_BY(mu_);
};

// --advertise, or <hostname>:<port of --listen>.
std::string AdvertisedAddress(const std::string& listen) {
  std::string advertise = absl::GetFlag(FLAGS_advertise);
  if (!advertise.empty()) return advertise;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  const size_t colon = listen.rfind(':');
  return absl::StrCat(host[0] != '\0' ? host : "localhost", ":",
                      colon == std::string::npos ? listen : listen.substr(colon + 1));
}

// JetStream: stand by until this broker holds the lease, then serve until
// a signal (releasing the lease after the drain) or until the lease is lost
// (exit kLostLeaseExit at once: another broker may be active, and a
// supervisor restarts this one as a standby).
int ServeWithLease(const relay::Process& process,
                   const relay::broker::BrokerServer::Options& options) {
  const absl::Duration ttl = absl::GetFlag(FLAGS_lease_ttl);
  if (ttl < absl::Seconds(1) || ttl > absl::Seconds(60)) {
    return process.Fail(absl::InvalidArgumentError(
        absl::StrCat("--lease_ttl must be 1s to 60s, got ", absl::FormatDuration(ttl))));
  }
  relay::broker::BrokerLease::Options lease_options;
  lease_options.servers = options.storage.jetstream.servers;
  lease_options.replicas = options.storage.jetstream.replicas;
  lease_options.ttl = ttl;
  lease_options.address = AdvertisedAddress(options.listen_address);
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerLease>> lease =
      relay::broker::BrokerLease::Open(lease_options);
  if (!lease.ok()) {
    return process.Fail(absl::Status(lease.status().code(),
                                     absl::StrCat("broker lease: ", lease.status().message())));
  }
  // Leaked: the signal thread may outlive main().
  static auto* const terminate = new absl::Notification;
  static int signal_number = 0;
  std::thread([] {
    signal_number = relay::WaitForTerminationSignal();
    terminate->Notify();
  }).detach();
  RELAY_LOG(Info, "standby: campaigning for the broker lease",
            {{"holder", (*lease)->holder()},
             {"address", lease_options.address},
             {"bucket", "relay_lease"},
             {"ttl", absl::FormatDuration(lease_options.ttl)}});
  if (!(*lease)->Acquire(terminate).ok()) {
    RELAY_LOG(Info, "stopped while standing by", {{"signal", absl::StrCat(signal_number)}});
    return 0;
  }
  (*lease)->KeepAlive([](const std::string& why) {
    RELAY_LOG(Error, "exiting: lost the broker lease, another broker may be active",
              {{"why", why}, {"exit_status", absl::StrCat(kLostLeaseExit)}});
    std::_Exit(kLostLeaseExit);
  });
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> server =
      relay::broker::BrokerServer::Start(options);
  if (!server.ok()) {
    (*lease)->Release();
    return process.Fail(server.status());
  }
  WritePortFile((*server)->port());
  ReloadPolicyOnHangup(server->get());
  RELAY_LOG(Info, "serving",
            {{"listen", options.listen_address},
             {"port", absl::StrCat((*server)->port())},
             {"storage", "jetstream"},
             {"nats", relay::broker::RedactedNatsUrls(options.storage.jetstream.servers)},
             {"replicas", absl::StrCat(options.storage.jetstream.replicas)},
             {"group_bucket", "relay_groups"},
             {"lease_holder", (*lease)->holder()}});
  terminate->WaitForNotification();
  RELAY_LOG(Info, "shutting down", {{"signal", absl::StrCat(signal_number)}});
  StopReloading();
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  (*lease)->Release();
  RELAY_LOG(Info, "stopped", {});
  return 0;
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
  // Every attempt's outcome is kept until the event is done and goes into
  // its dead letter: 1,000 attempts of up to ~1 KiB each is the most a
  // letter may carry.
  if (options.groups.scheduler.max_deliveries < 1 ||
      options.groups.scheduler.max_deliveries > 1000) {
    return process.Fail(absl::InvalidArgumentError(absl::StrCat(
        "--max_deliveries must be 1 to 1000, got ", options.groups.scheduler.max_deliveries)));
  }
  options.groups.scheduler.max_buffered = absl::GetFlag(FLAGS_group_window_events);
  options.groups.max_window_bytes = absl::GetFlag(FLAGS_group_window_bytes);
  if (options.groups.scheduler.max_buffered == 0 || options.groups.max_window_bytes == 0) {
    return process.Fail(absl::InvalidArgumentError(
        "--group_window_events and --group_window_bytes must be positive"));
  }
  options.groups.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  options.tls = relay::ProcessTls();
  options.policy_file = absl::GetFlag(FLAGS_policy);
  if (options.storage.backend == relay::broker::Storage::kJetStream) {
    return ServeWithLease(process, options);
  }
  // A failed write or fsync stops the log for good: the process stops too,
  // so that its supervisor starts it again and recovery, as after a crash,
  // finds the log as it is on disk (docs/STORAGE.md#a-storage-failure).
  options.on_storage_failure = [](const absl::Status& cause) {
    StopCause::Get().StorageFailed(cause);
  };
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> server =
      relay::broker::BrokerServer::Start(options);
  if (!server.ok()) return process.Fail(server.status());

  WritePortFile((*server)->port());
  ReloadPolicyOnHangup(server->get());
  std::thread([] { StopCause::Get().Signalled(relay::WaitForTerminationSignal()); }).detach();
  RELAY_LOG(Info, "serving",
            {{"listen", options.listen_address},
             {"port", absl::StrCat((*server)->port())},
             {"storage", "file"},
             {"data_dir", data_dir},
             {"fsync", absl::GetFlag(FLAGS_fsync)},
             {"tls", options.tls.mutual()    ? "mutual"
                     : options.tls.enabled() ? "server"
                                             : "off"},
             {"policy", options.policy_file.empty()
                            ? std::string("(none: all allowed)")
                            : absl::StrCat(options.policy_file, " (",
                                           (*server)->authorizer()->rule_count(), " rules)")}});
  int signal_number = 0;
  const absl::Status failure = StopCause::Get().Wait(&signal_number);
  if (failure.ok()) {
    RELAY_LOG(Info, "shutting down", {{"signal", absl::StrCat(signal_number)}});
  } else {
    RELAY_LOG(Error, "exiting: the event log failed; a restart recovers it from its files",
              {{"error", std::string(failure.message())},
               {"exit_status", absl::StrCat(kStorageFailedExit)}});
  }
  StopReloading();
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  RELAY_LOG(Info, "stopped", {});
  return failure.ok() ? 0 : kStorageFailedExit;
}
