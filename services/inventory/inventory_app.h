#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_APP_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_APP_H_

// inventory-service wired together, for main() and for tests: inventory.db
// (migrated, seeded on first start), the outbox relay publishing to the
// broker, the transactional consumer of topic "orders" (group
// "inventory-service") and the gRPC server (InventoryService, health,
// reflection).
//
//   auto app = InventoryApp::Start({.broker_target = "localhost:7070",
//                                   .db_path = "/data/inventory.db"});
//   if (!app.ok()) return Fail(app.status());
//   ... (*app)->port() ...
//   (*app)->Shutdown();

#include <grpcpp/server.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/faults.h"
#include "common/store/inbox_pruner.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/inventory/inventory_handlers.h"
#include "services/inventory/inventory_service.h"
#include "services/shared/consumer_health.h"

namespace relay::inventory {

// A running inventory-service. It needs no broker to start: until one
// answers, events wait in the outbox and the subscriber keeps reconnecting.
//
// Thread-safe. Shutdown() (or the destructor) stops everything it started.
class InventoryApp {
 public:
  struct Options {
    // host:port for gRPC (port 0 picks a free one, see port()).
    std::string listen = "127.0.0.1:0";
    // The broker, host:port. Required. It need not be up yet: publishing
    // and consuming start whenever it is reachable.
    std::string broker_target;
    // The SQLite file; it and its directory are created when missing. Required.
    std::string db_path;
    // Insert the seed catalog when there are no products.
    bool seed = true;
    // Fault knobs (common/faults.h): a delay in every handler, and a crash
    // (SIGKILL) after this many committed events (0: never).
    absl::Duration handler_delay;
    int64_t crash_after = 0;
    // How long Shutdown() goes on publishing the outbox, and gives open RPCs.
    absl::Duration shutdown_grace = absl::Seconds(5);
    // Inbox rows older than this are deleted (common/store/inbox_pruner.h:
    // it must exceed the broker's log retention); zero: never.
    absl::Duration inbox_retention = absl::Hours(14 * 24);
  };

  // Opens and migrates the database, seeds it, and starts the outbox relay,
  // the consumer and the gRPC server. INVALID_ARGUMENT for bad options;
  // otherwise the error of the part that failed (the database, the listen
  // address), with everything started so far stopped again.
  static absl::StatusOr<std::unique_ptr<InventoryApp>> Start(Options options);
  ~InventoryApp();  // Shutdown()

  InventoryApp(const InventoryApp&) = delete;
  InventoryApp& operator=(const InventoryApp&) = delete;

  // The gRPC port bound.
  int port() const { return port_; }

  // The SIGTERM path: health turns NOT_SERVING, consuming stops (unacked
  // events go back to the group), the outbox is published within
  // shutdown_grace (what is left stays for the next start), the server
  // stops and the database closes. Idempotent; a second call waits for the
  // first.
  void Shutdown();

  // Whether the consumer has a subscription open with the broker.
  bool WaitUntilConsuming(absl::Duration timeout);

  // For tests and tools. REQUIRES: before Shutdown().
  store::Database& database() { return *db_; }
  store::OutboxRelay& outbox_relay() { return *relay_; }
  store::TransactionalConsumer::Stats consumer_stats() const;

 private:
  explicit InventoryApp(Options options);
  absl::Status Init();

  const Options options_;
  Faults faults_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<events::Publisher> publisher_;
  std::unique_ptr<store::OutboxRelay> relay_;
  std::unique_ptr<store::InboxPruner> inbox_pruner_;
  std::unique_ptr<InventoryHandlers> handlers_;
  // Handles events in transactions; its hooks run the fault knobs and write
  // the log lines (see Init()).
  std::unique_ptr<store::TransactionalConsumer> consumer_;
  std::unique_ptr<InventoryServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  // NOT_SERVING while the broker refuses the subscription.
  relay::services::ConsumerHealth health_;
  int port_ = 0;

  // Set when Shutdown() begins: the handler_delay fault stops sleeping.
  std::atomic<bool> stopping_{false};
  // Held for the whole of Shutdown(), so a second call waits for the first.
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_APP_H_
