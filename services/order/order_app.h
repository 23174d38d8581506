#ifndef RELAY_SERVICES_ORDER_ORDER_APP_H_
#define RELAY_SERVICES_ORDER_ORDER_APP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "services/order/order_manager.h"
#include "services/shared/service_runtime.h"

namespace relay::order {

// order-service wired together: database, outbox relay, the two consumers
// (topics inventory and payments, group order-service), the watch hub and
// the gRPC server; with Flow::kSync, the SyncSaga and one consumer of
// product.updated instead. Used by main and by in-process tests.
//
// Thread-safe.
class OrderApp {
 public:
  struct Options {
    std::string listen = "127.0.0.1:0";
    std::string broker_target;
    std::string db_path;
    absl::Duration handler_delay;
    int64_t crash_after = 0;
    store::Database::Options::Sync synchronous = store::Database::Options::Sync::kFull;
    // An order still PENDING this long after it was placed is cancelled
    // with cause TIMEOUT (saga_timeout_sweeper.h); zero: never.
    absl::Duration saga_timeout = absl::Minutes(5);
    // Between timeout passes; zero: derived from saga_timeout.
    absl::Duration saga_sweep_interval = absl::ZeroDuration();
    // The clock of the saga (order times, timeouts). Tests move it.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    // Inbox rows older than this are deleted (common/store/inbox_pruner.h:
    // it must exceed the broker's log retention); zero: never.
    absl::Duration inbox_retention = absl::Hours(14 * 24);
    // How long Shutdown() gives open RPCs, and then goes on publishing the
    // outbox.
    absl::Duration shutdown_grace = absl::Seconds(5);
    // kEvents: the saga runs on events through the broker (the default).
    // kSync: PlaceOrder calls inventory-service and payment-service
    // directly (sync_saga.h; docs/EVENT-DRIVEN.md). The catalog still comes
    // from product.updated, in group "order-service-sync", so a sync
    // order-service can share a broker with an events one.
    enum class Flow { kEvents, kSync };
    Flow flow = Flow::kEvents;
    // kSync only: the two services, the deadline of each call, and how
    // many orders call at the same time at most.
    std::string inventory_target;
    std::string payment_target;
    absl::Duration call_timeout = absl::Seconds(2);
    int sync_workers = 64;
  };

  // Opens and migrates the database and starts the watch hub, the order
  // manager, the consumers, the gRPC server and the saga timeout sweeper
  // (services/shared/service_runtime.h). INVALID_ARGUMENT for bad options;
  // otherwise the error of the part that failed, with everything started so
  // far stopped again.
  static absl::StatusOr<std::unique_ptr<OrderApp>> Start(Options options);
  ~OrderApp();  // Shutdown()

  OrderApp(const OrderApp&) = delete;
  OrderApp& operator=(const OrderApp&) = delete;

  int port() const { return runtime_->port(); }
  // REQUIRES: before Shutdown().
  OrderManager& manager() { return *manager_; }

  // The runtime's shutdown order (services/shared/service_runtime.h):
  // consuming stops (unacked events go back to the broker); the saga timeout
  // sweeper, the place thread and the watch hub stop (the hub ends every
  // open WatchOrder stream); the gRPC server stops (open RPCs get up to
  // shutdown_grace); the outbox is published within shutdown_grace; the
  // database closes. Idempotent; a second call waits for the first.
  void Shutdown() { runtime_->Shutdown(); }

 private:
  explicit OrderApp(std::unique_ptr<services::ServiceRuntime> runtime)
      : runtime_(std::move(runtime)) {}

  std::unique_ptr<services::ServiceRuntime> runtime_;
  // Owned by the runtime.
  OrderManager* manager_ = nullptr;
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_APP_H_
