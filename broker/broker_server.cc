#include "broker/broker_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "broker/jetstream_group_store.h"
#include "common/grpc_server.h"
#include "common/log.h"

namespace relay::broker {

namespace {

// The group checkpoints' store for the topics' backend: beside the file log
// on disk, or in JetStream beside the streams.
absl::StatusOr<std::unique_ptr<GroupStore>> OpenGroupStore(const BrokerServer::Options& options) {
  if (options.storage.backend != Storage::kJetStream) {
    return std::make_unique<FileGroupStore>(options.groups_dir, options.env);
  }
  const JetStreamEventLog::Options& js = options.storage.jetstream;
  JetStreamGroupStore::Options store;
  store.servers = js.servers;
  store.replicas = js.replicas;
  store.connect_timeout = js.connect_timeout;
  store.request_timeout = js.request_timeout;
  store.reconnect_wait = js.reconnect_wait;
  absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> opened = JetStreamGroupStore::Open(store);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<GroupStore>(std::move(*opened));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(Options options,
                                                                  std::unique_ptr<EventLog> log) {
  if (options.max_receive_bytes <= 0 || options.limits.max_event_bytes + kPublishOverheadBytes >
                                            static_cast<size_t>(options.max_receive_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_event_bytes ", options.limits.max_event_bytes,
        " does not fit in the largest request the broker receives (", options.max_receive_bytes,
        " bytes, of which up to ", kPublishOverheadBytes, " are not the event's)"));
  }
  std::unique_ptr<BrokerServer> s(new BrokerServer());
  if (options.policy_file.empty()) {
    s->auth_ = std::make_unique<Authorizer>();
  } else {
    if (!options.tls.mutual()) {
      return absl::InvalidArgumentError(
          "--policy needs mutual TLS (--tls_cert, --tls_key and --tls_ca): without client "
          "certificates no caller has an identity to check");
    }
    absl::StatusOr<std::unique_ptr<Authorizer>> auth = Authorizer::Open(options.policy_file);
    if (!auth.ok()) return auth.status();
    s->auth_ = std::move(*auth);
  }
  s->log_ = std::move(log);
  s->log_->SetFailureListener(
      [server = s.get(), on_failure = options.on_storage_failure](const absl::Status& cause) {
        {
          absl::MutexLock lock(&server->health_mu_);
          if (server->storage_failure_.ok()) server->storage_failure_ = cause;
          // Not before Start() serves, nor after Shutdown() began.
          if (server->serving_) {
            server->server_->GetHealthCheckService()->SetServingStatus(false);
            server->serving_ = false;
          }
        }
        if (on_failure) on_failure(cause);
      });
  if (absl::StatusOr<std::unique_ptr<GroupStore>> store = OpenGroupStore(options); store.ok()) {
    s->store_ = std::move(*store);
  } else {
    return store.status();
  }
  GroupManager::Options groups = options.groups;
  // A log that serves new events from memory (the file log's tail cache)
  // can have them delivered on its completer thread cheaply; JetStream's
  // reads are round trips to NATS, which would hold back the publishers'
  // answers on that thread.
  groups.deliver_on_log_thread = s->log_->ServesTailFromMemory();
  s->groups_ = std::make_unique<GroupManager>(groups, s->log_.get(), s->store_.get());
  if (absl::Status st = s->groups_->Load(); !st.ok()) return st;
  s->service_ = std::make_unique<BrokerService>(s->log_.get(), s->groups_.get(), options.limits,
                                                s->auth_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (absl::Status st = AddListeningPort(builder, options.listen_address, options.tls, &s->port_);
      !st.ok()) {
    return st;
  }
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_receive_bytes);
  // gRPC sets SO_REUSEPORT by default: a second server on a port in use would
  // start and silently share the traffic. Fail to start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  ApplyServerConnectionArgs(builder, options.keepalive);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address));
  }
  s->groups_->Start();
  if (options.metrics != nullptr) {
    s->collector_ =
        std::make_unique<BrokerCollector>(options.metrics, s->log_.get(), s->groups_.get());
  }
  {
    absl::MutexLock lock(&s->health_mu_);
    // A log that failed while the server started stays NOT_SERVING.
    s->serving_ = s->storage_failure_.ok();
    s->server_->GetHealthCheckService()->SetServingStatus(s->serving_);
  }
  return s;
}

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(Options options) {
  absl::StatusOr<std::unique_ptr<EventLog>> log = OpenEventLog(options.storage);
  if (!log.ok()) return log.status();
  return Start(std::move(options), std::move(*log));
}

BrokerServer::~BrokerServer() { Shutdown(absl::ZeroDuration()); }

absl::Status BrokerServer::ReloadPolicy() {
  if (absl::Status s = auth_->Reload(); !s.ok()) return s;
  service_->Reauthorize();
  return absl::OkStatus();
}

std::string BrokerServer::target() const { return absl::StrCat("127.0.0.1:", port_); }

void BrokerServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  collector_.reset();  // waits for a scrape reading the groups and the log
  if (server_ != nullptr) {
    {
      absl::MutexLock health_lock(&health_mu_);
      serving_ = false;
      server_->GetHealthCheckService()->SetServingStatus(false);
    }
    // Idle streams (a subscriber waiting for events, a publisher between
    // batches) would hold Shutdown() for the whole grace: end them first.
    // Members leave their groups, so their deliveries stay unacked.
    service_->EndStreams();
    // Cancels the streams still open at the deadline; their reactors leave
    // their groups on the way out.
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  }
  // The server's RPCs have all ended; GroupManager::Stop joins the
  // dispatcher (the other reader of the log), stops the log's completer
  // from pumping groups, and writes the last checkpoints, which read no
  // event. Only then the log closes.
  if (groups_ != nullptr) groups_->Stop();
  if (log_ != nullptr) {
    if (absl::Status st = log_->Close(); !st.ok()) {
      RELAY_LOG(Error, "closing the event log failed", {{"error", st.ToString()}});
    }
  }
}

absl::Status BrokerServer::storage_failure() const {
  absl::MutexLock lock(&health_mu_);
  return storage_failure_;
}

void BrokerServer::Wait() {
  absl::MutexLock lock(&mu_);
  auto done = [this] {
    mu_.AssertHeld();
    return shut_down_;
  };
  mu_.Await(absl::Condition(&done));
}

}  // namespace relay::broker
