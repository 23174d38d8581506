#ifndef RELAY_SERVICES_SHARED_SERVICE_RUNTIME_H_
#define RELAY_SERVICES_SHARED_SERVICE_RUNTIME_H_

// What every Relay service process is made of, wired once: the SQLite
// database (its directory created, migrated), the fault knobs, the broker
// channel, the publisher, the outbox relay, the inbox pruner, the
// transactional consumers (with the log-line and fault hooks and the health
// watcher), the gRPC server with health reporting, and one shutdown order.
// order-service, payment-service and inventory-service are thin wrappers
// over it (OrderApp, PaymentApp, InventoryApp) that add their own parts.
//
//   ServiceRuntime::Options o;
//   o.broker_target = "localhost:7070";
//   o.db_path = "data/payment/payment.db";
//   o.migrations = PaymentMigrations();
//   auto rt = ServiceRuntime::Open(o);                 // database, relay, ...
//   if (!rt.ok()) return rt.status();
//   auto* handlers = (*rt)->Own(std::make_unique<PaymentHandlers>());
//   handlers->Register((*rt)->AddConsumer(PaymentSubscription(), *handlers));
//   auto* service = (*rt)->Own(std::make_unique<PaymentServiceImpl>((*rt)->db()));
//   if (absl::Status s = (*rt)->Start({service}); !s.ok()) return s;
//   ...
//   (*rt)->Shutdown();
//
// Shutdown order (Shutdown(), used by every service):
//  1. The stopping flag is set, so the handler_delay fault stops sleeping,
//     and health turns NOT_SERVING, so load balancers and `relayctl health`
//     stop sending work before anything stops.
//  2. The consumers stop gracefully: each finishes and acks the batch in
//     hand; unacked deliveries go back to the group for another member or
//     the next start. First, so no new event changes state while the rest
//     stops.
//  3. The service's stop hooks (OnStop()) run, in reverse order of
//     registration: its own threads (order-service: the saga timeout
//     sweeper, the place thread, the watch hub, which ends every open
//     WatchOrder stream). Before the server, because the server's stop
//     waits for every open call: a stream left open would hold it for the
//     whole shutdown_grace.
//  4. The inbox pruner stops: housekeeping, nothing waits for it.
//  5. The gRPC server stops with the deadline now + shutdown_grace: new
//     calls are refused, in-flight unary RPCs finish (they may write outbox
//     rows, which step 6 still publishes); calls still open at the deadline
//     are cancelled.
//  6. The outbox relay stops: it goes on publishing for up to
//     shutdown_grace; what is left stays in the outbox for the next start.
//     After the server, so the rows of the last RPCs go out now.
//  7. The publisher closes (its stream ends; the relay no longer uses it).
//  8. Everything is destroyed in reverse order of creation: the server,
//     the consumers, the parts the service handed over (Own()), the pruner,
//     the relay, the publisher, the channel, the faults, the database last,
//     since every part before it may use it until it is gone.
//
// Thread safety: Open(), Own(), AddConsumer(), OnStop() and Start() are
// called by one thread before anything else; Shutdown() is thread-safe and
// idempotent (a second call, concurrent or not, waits for the first). The
// accessors REQUIRE: not concurrently with Shutdown().

#include <grpcpp/channel.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/events/subscriber.h"
#include "common/faults.h"
#include "common/grpc_channel.h"
#include "common/store/inbox_pruner.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/shared/consumer_health.h"

namespace relay::services {

class ServiceRuntime {
 public:
  struct Options {
    // host:port of the gRPC API; port 0 picks a free one (see port()).
    std::string listen = "127.0.0.1:0";
    // host:port of the broker, or host:port,host:port... of an active broker
    // and its standbys (common/grpc_channel.h, ChannelSet). Required. It
    // need not be up: the channels connect lazily and the publisher and
    // subscribers retry.
    std::string broker_target;
    // The SQLite file; its directory is created when missing. Required.
    std::string db_path;
    // How the database is opened (e.g. synchronous).
    store::Database::Options database;
    // The service's schema, applied by Database::Migrate().
    std::vector<std::string> migrations;
    // Fault knobs (common/faults.h): a delay in every handler (>= 0), and a
    // SIGKILL after this many committed events (>= 0; 0: never).
    absl::Duration handler_delay;
    int64_t crash_after = 0;
    // For benchmarks (common/faults.h): no event is handled sooner than
    // this after its publish time (>= 0; zero: off). Not in CommonOptions:
    // only inventory-service has the flag.
    absl::Duration debug_delay;
    // How long Shutdown() gives open RPCs (step 5) and then the outbox
    // relay (step 6).
    absl::Duration shutdown_grace = absl::Seconds(5);
    // Inbox rows older than this are deleted (common/store/inbox_pruner.h:
    // it must exceed the broker's log retention); zero: never.
    absl::Duration inbox_retention = absl::Hours(14 * 24);
  };

  // The log-line hooks of one consumer (see HookLogLinesAndFaults()):
  // `drop_uncommitted` before each event's transaction, `committed` after
  // its COMMIT. Either may be empty.
  struct LogLineHooks {
    std::function<void()> drop_uncommitted;
    std::function<void(const events::v1::Event&)> committed;

    void DropUncommitted() const {
      if (drop_uncommitted) drop_uncommitted();
    }
    void Committed(const events::v1::Event& event) const {
      if (committed) committed(event);
    }
  };

  // The Options fields every service's own options have (listen,
  // broker_target, db_path, handler_delay, crash_after, shutdown_grace,
  // inbox_retention), copied from `app`; the caller adds the rest
  // (migrations, database).
  template <typename AppOptions>
  static Options CommonOptions(const AppOptions& app) {
    Options o;
    o.listen = app.listen;
    o.broker_target = app.broker_target;
    o.db_path = app.db_path;
    o.handler_delay = app.handler_delay;
    o.crash_after = app.crash_after;
    o.shutdown_grace = app.shutdown_grace;
    o.inbox_retention = app.inbox_retention;
    return o;
  }

  // Validates `options` (INVALID_ARGUMENT with a short message naming the
  // option), creates the database's directory, opens and migrates the
  // database, and builds the channel, publisher, outbox relay and inbox
  // pruner. Nothing is started yet. On an error nothing is left open.
  static absl::StatusOr<std::unique_ptr<ServiceRuntime>> Open(Options options);
  ~ServiceRuntime();  // Shutdown()

  ServiceRuntime(const ServiceRuntime&) = delete;
  ServiceRuntime& operator=(const ServiceRuntime&) = delete;

  // The database and the outbox relay; null after Shutdown().
  store::Database* db() { return db_.get(); }
  store::OutboxRelay* outbox_relay() { return relay_.get(); }

  // Keeps `part` (a service's handlers, manager, gRPC service object...)
  // until step 8 of Shutdown(), where the parts are destroyed in reverse
  // order, after the server and the consumers and before the database.
  // Returns it. REQUIRES: before Start().
  template <typename T>
  T* Own(std::unique_ptr<T> part) {
    T* raw = part.get();
    owned_.push_back(std::shared_ptr<void>(std::move(part)));
    return raw;
  }

  // A TransactionalConsumer of `subscription` (topic, group, member name
  // set by the service), with the fault and log-line hooks installed
  // (HookLogLinesAndFaults), its in-flight limit fitted to handler_delay
  // (FitInFlightToHandlerDelay) and its refusals reported to health under
  // the topic's name. The service registers its handlers on it; Start()
  // starts it. REQUIRES: before Start(). The consumer lives until Shutdown().
  store::TransactionalConsumer& AddConsumer(events::Subscriber::Options subscription,
                                            LogLineHooks hooks);
  // The same, with the hooks of a handlers object that has
  // DropUncommitted() and Committed(event) (PendingLogLines,
  // PaymentHandlers...). REQUIRES: `lines` lives until Shutdown() ends.
  template <typename Lines>
  store::TransactionalConsumer& AddConsumer(events::Subscriber::Options subscription,
                                            Lines& lines) {
    return AddConsumer(std::move(subscription),
                       LogLineHooks{[&lines] { lines.DropUncommitted(); },
                                    [&lines](const events::v1::Event& e) { lines.Committed(e); }});
  }

  // `hook` runs at step 3 of Shutdown(), after the consumers stopped and
  // before the server stops; hooks run in reverse order of registration.
  // It must end whatever of the service would hold the server's stop (open
  // streams). REQUIRES: before Start().
  void OnStop(std::function<void()> hook);

  // Starts the gRPC server with `services` (plus health and reflection),
  // then the outbox relay, the inbox pruner and the consumers, and reports
  // health. On an error (e.g. the listen address is taken) everything is
  // shut down again (Shutdown()) and the error returned. REQUIRES: called
  // once; `services` outlive the server (Own() them).
  absl::Status Start(const std::vector<grpc::Service*>& services);

  // The gRPC port, after Start().
  int port() const { return port_; }
  // Whether every consumer has its subscription open within `timeout`.
  bool WaitUntilConsuming(absl::Duration timeout);
  // The sum of the consumers' counts (zero after Shutdown()).
  store::TransactionalConsumer::Stats consumer_stats() const;
  // The fault knobs' stopping flag, set at step 1.
  bool stopping() const { return stopping_.load(); }

  // The shutdown order above. Idempotent; thread-safe.
  void Shutdown();

 private:
  explicit ServiceRuntime(Options options);
  absl::Status Init();

  const Options options_;
  // Set at step 1: the handler_delay fault stops sleeping.
  std::atomic<bool> stopping_{false};
  // Declared in creation order; step 8 resets them in reverse.
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<Faults> faults_;
  std::shared_ptr<ChannelSet> brokers_;
  std::unique_ptr<events::Publisher> publisher_;
  std::unique_ptr<store::OutboxRelay> relay_;
  std::unique_ptr<store::InboxPruner> inbox_pruner_;
  std::vector<std::shared_ptr<void>> owned_;
  // Each consumer's hooks live here: the consumer's options refer to them.
  std::vector<std::unique_ptr<LogLineHooks>> hooks_;
  std::vector<std::unique_ptr<store::TransactionalConsumer>> consumers_;
  std::vector<std::function<void()>> stop_hooks_;
  std::unique_ptr<grpc::Server> server_;
  // NOT_SERVING while the broker refuses any subscription, and from step 1.
  ConsumerHealth health_;
  int port_ = 0;
  // The database's relay_db_* metrics (RemoveCollector before db_ goes).
  int db_collector_ = -1;

  // Held for the whole of Shutdown(), so a second call waits for the first.
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_SERVICE_RUNTIME_H_
