#ifndef RELAY_SERVICES_ORDER_ORDER_APP_H_
#define RELAY_SERVICES_ORDER_ORDER_APP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/faults.h"
#include "common/grpc_server.h"
#include "common/store/inbox_pruner.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/order/order_manager.h"
#include "services/order/order_service.h"
#include "services/order/saga_timeout_sweeper.h"
#include "services/order/watch_hub.h"
#include "services/shared/consumer_health.h"
#include "services/shared/pending_log_lines.h"

namespace relay::order {

// order-service wired together: database, outbox relay, the two consumers
// (topics inventory and payments, group order-service), the watch hub and
// the gRPC server. Used by main and by in-process tests.
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
  };

  static absl::StatusOr<std::unique_ptr<OrderApp>> Start(Options options);
  ~OrderApp();  // Shutdown()

  int port() const { return port_; }
  OrderManager& manager() { return *manager_; }

  // Stops consuming (unacked events go back to the broker), stops the gRPC
  // server, publishes what the outbox holds (within its grace), closes the
  // database. Idempotent.
  void Shutdown();

 private:
  OrderApp() = default;

  std::unique_ptr<store::Database> db_;
  std::unique_ptr<Faults> faults_;
  std::unique_ptr<events::Publisher> publisher_;
  std::unique_ptr<store::OutboxRelay> relay_;
  std::unique_ptr<store::InboxPruner> inbox_pruner_;
  std::unique_ptr<WatchHub> hub_;
  std::unique_ptr<OrderManager> manager_;
  std::unique_ptr<SagaTimeoutSweeper> sweeper_;
  // One per consumer: each holds the log lines of its open transaction.
  services::PendingLogLines inventory_lines_;
  services::PendingLogLines payment_lines_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<store::TransactionalConsumer> inventory_consumer_;
  std::unique_ptr<store::TransactionalConsumer> payment_consumer_;
  std::unique_ptr<OrderServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  // NOT_SERVING while the broker refuses either subscription.
  services::ConsumerHealth health_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_APP_H_
