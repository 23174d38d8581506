#ifndef RELAY_BROKER_BROKER_SERVER_H_
#define RELAY_BROKER_BROKER_SERVER_H_

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/broker_metrics.h"
#include "broker/broker_service.h"
#include "broker/group_manager.h"
#include "broker/group_store.h"
#include "broker/policy.h"
#include "broker/storage/event_log.h"
#include "broker/storage_backend.h"
#include "common/grpc_channel.h"
#include "common/tls.h"

namespace relay::broker {

// A running broker: the gRPC server (Broker, grpc.health.v1, reflection)
// over an EventLog and the consumer groups. Used by relay-broker's main and
// by in-process tests.
//
// Thread-safe.
class BrokerServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one (see port()).
    std::string listen_address = "127.0.0.1:0";
    // The topics' backend, opened by Start(Options).
    StorageOptions storage;
    // Where group checkpoints live with the file storage
    // (`<data_dir>/groups`). With JetStream they go to its key-value bucket
    // `relay_groups` on the same servers, with the same replicas
    // (docs/JETSTREAM.md#group-state), and this is not used.
    std::string groups_dir;
    // The file system of the file storage's checkpoints. Not owned; must
    // outlive the server.
    Env* env = Env::Default();
    Limits limits;
    GroupManager::Options groups;
    // Largest request the server accepts (a publish batch). Start() refuses
    // a limits.max_event_bytes that a request of one event could not fit.
    int max_receive_bytes = kMaxMessageBytes;
    // Keepalive pings to every client and the enforcement of theirs
    // (common/grpc_channel.h): a hung or vanished member's stream ends, and
    // its deliveries go to the others, within time + timeout.
    Keepalive keepalive;
    // The server's TLS (common/tls.h): plaintext when empty; mutual when it
    // has a CA, and then callers have identities.
    TlsFiles tls;
    // The policy file (broker/policy.h) checked on every RPC; empty: every
    // caller may do everything. Needs mutual TLS (tls with a CA).
    std::string policy_file;
    // Where the topics' and groups' state is reported on each scrape
    // (broker/broker_metrics.h); null: nowhere. Not owned; must outlive the
    // server. The hot-path counters always go to the process registry.
    metrics::Registry* metrics = &metrics::Registry::Default();
    // Called once, from a log thread, when the event log stops taking
    // appends for good (EventLog::SetFailureListener: a failed write or
    // fsync of the file log). The server has then already answered
    // grpc.health.v1 NOT_SERVING. relay-broker's main stops the process, so
    // that a restart recovers the log from its files. Must not block.
    std::function<void(const absl::Status& cause)> on_storage_failure;
  };

  // What a publish request carries besides its events' bytes, at most: the
  // topic (128 bytes), the request id and each field's framing.
  static constexpr size_t kPublishOverheadBytes = 1024;

  // Loads the groups, starts the server and the group threads.
  // INVALID_ARGUMENT when limits.max_event_bytes + kPublishOverheadBytes is
  // above max_receive_bytes: a publisher could never send such an event.
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(Options options,
                                                             std::unique_ptr<EventLog> log);
  // As above, on the log that options.storage names (OpenEventLog's errors).
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(Options options);
  ~BrokerServer();  // Shutdown(zero grace)

  int port() const { return port_; }
  // "127.0.0.1:<port>" for a client on this host.
  std::string target() const;

  // Stops accepting, ends open streams (waiting at most `grace` for RPCs to
  // finish), writes the groups' checkpoints and closes the log (everything
  // acknowledged is durable). Idempotent. Nothing reads the log after it is
  // closed (JetStreamEventLog's reads fail then): the RPCs and the group
  // threads, its only readers, have stopped first.
  void Shutdown(absl::Duration grace);

  // Blocks until Shutdown() finished.
  void Wait();

  // OK, or why the event log stopped taking appends (see
  // Options::on_storage_failure).
  absl::Status storage_failure() const;

  EventLog* log() { return log_.get(); }
  GroupManager* groups() { return groups_.get(); }
  // The policy in force.
  Authorizer* authorizer() { return auth_.get(); }
  // Reads the policy file again (Authorizer::Reload: a bad file is refused
  // and the policy in force stays), then ends the open Subscribe streams
  // the new policy no longer allows. What SIGHUP does.
  absl::Status ReloadPolicy();

 private:
  BrokerServer() = default;

  std::unique_ptr<EventLog> log_;
  std::unique_ptr<GroupStore> store_;
  std::unique_ptr<GroupManager> groups_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<BrokerCollector> collector_;
  int port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Apart from mu_, which Shutdown() holds while it closes the log, whose
  // thread reports a failure.
  mutable absl::Mutex health_mu_;
  bool serving_ ABSL_GUARDED_BY(health_mu_) = false;
  absl::Status storage_failure_ ABSL_GUARDED_BY(health_mu_);
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_BROKER_SERVER_H_
