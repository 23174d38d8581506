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

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/shared/service_runtime.h"

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
    // For benchmarks: every order event is handled no sooner than this
    // after the broker published it, and ReserveStock, ReleaseStock and
    // CommitStock wait this long before they start (common/faults.h). Both
    // flows see the same slowdown; throughput is not capped. Zero: off.
    absl::Duration debug_delay;
    // How long Shutdown() goes on publishing the outbox, and gives open RPCs.
    absl::Duration shutdown_grace = absl::Seconds(5);
    // Inbox rows older than this are deleted (common/store/inbox_pruner.h:
    // it must exceed the broker's log retention); zero: never.
    absl::Duration inbox_retention = absl::Hours(14 * 24);
  };

  // Opens and migrates the database, seeds it, and starts the outbox relay,
  // the consumer and the gRPC server (services/shared/service_runtime.h).
  // INVALID_ARGUMENT for bad options; otherwise the error of the part that
  // failed (the database, the listen address), with everything started so
  // far stopped again.
  static absl::StatusOr<std::unique_ptr<InventoryApp>> Start(Options options);
  ~InventoryApp();  // Shutdown()

  InventoryApp(const InventoryApp&) = delete;
  InventoryApp& operator=(const InventoryApp&) = delete;

  // The gRPC port bound.
  int port() const { return runtime_->port(); }

  // The SIGTERM path, in the runtime's shutdown order
  // (services/shared/service_runtime.h): health turns NOT_SERVING, consuming
  // stops (unacked events go back to the group), the server stops (open
  // RPCs get up to shutdown_grace), the outbox is published within
  // shutdown_grace (what is left stays for the next start) and the database
  // closes. Idempotent; a second call waits for the first.
  void Shutdown() { runtime_->Shutdown(); }

  // Whether the consumer has a subscription open with the broker.
  bool WaitUntilConsuming(absl::Duration timeout) { return runtime_->WaitUntilConsuming(timeout); }

  // For tests and tools. REQUIRES: before Shutdown().
  store::Database& database() { return *runtime_->db(); }
  store::OutboxRelay& outbox_relay() { return *runtime_->outbox_relay(); }
  store::TransactionalConsumer::Stats consumer_stats() const { return runtime_->consumer_stats(); }

 private:
  explicit InventoryApp(std::unique_ptr<services::ServiceRuntime> runtime)
      : runtime_(std::move(runtime)) {}

  std::unique_ptr<services::ServiceRuntime> runtime_;
};

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_APP_H_
