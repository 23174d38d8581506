#ifndef RELAY_SERVICES_ORDER_ORDER_MANAGER_H_
#define RELAY_SERVICES_ORDER_ORDER_MANAGER_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/events/v1/payment_events.pb.h"
#include "relay/order/v1/order.pb.h"
#include "services/order/order_metrics.h"
#include "services/order/order_saga.h"
#include "services/order/watch_hub.h"
#include "services/shared/pending_log_lines.h"

namespace relay::order {

// order-service's behaviour on its database: placing and cancelling orders
// (the API) and the saga's reactions to inventory and payment events (the
// handlers). Every state change commits with the event it publishes
// (outbox) and, for handlers, with the inbox row of the event that caused
// it.
//
// Thread-safe.
class OrderManager {
 public:
  struct PlaceResult {
    v1::Order order;
    bool replayed = false;
  };

  using PlaceDone = std::function<void(absl::StatusOr<PlaceResult>)>;

  // REQUIRES: `db` migrated with OrderStore::Migrations(); every pointer
  // outlives the manager. `relay` and `hub` may be null (tests).
  // `publish_events` false (order-service --flow=sync, sync_saga.h): orders
  // and their changes are stored alike, but no order.* event goes to the
  // outbox, so inventory and payment never act on them by event.
  OrderManager(
      store::Database* db, store::OutboxRelay* relay, WatchHub* hub,
      std::function<absl::Time()> clock = [] { return absl::Now(); }, bool publish_events = true);
  ~OrderManager();  // Stop()

  // docs/ARCHITECTURE.md#saga-steps, step 1. INVALID_ARGUMENT for a
  // request ValidatePlaceOrder refuses or an unknown sku; UNAVAILABLE while
  // the catalog is still empty. Idempotency keys are scoped per customer:
  // the same customer, key and request (request_fingerprint.h) again
  // answers the original order with `replayed`; the same customer and key
  // with a different request is FAILED_PRECONDITION; another customer's key
  // is unrelated. Orders placed at the same
  // time commit together (group commit: one transaction and one fsync for
  // all, each order in its own savepoint); `done` is called once the order
  // is durable, or with the error, from the committing thread or, for a bad
  // request, at once. `done` must not block. At most kMaxQueuedPlaces calls
  // wait for their commit; beyond, RESOURCE_EXHAUSTED at once. A call still
  // waiting at `deadline` (its caller gone) is answered DEADLINE_EXCEEDED
  // and stores nothing.
  void PlaceAsync(const v1::PlaceOrderRequest& request, PlaceDone done,
                  absl::Time deadline = absl::InfiniteFuture());
  // PlaceAsync calls waiting for a commit, at most (tens of MB of requests).
  static constexpr size_t kMaxQueuedPlaces = 10000;
  // PlaceAsync, waiting for the answer.
  absl::StatusOr<PlaceResult> Place(const v1::PlaceOrderRequest& request);
  // Answers what is queued, then ends the committing thread; later
  // PlaceAsync calls get UNAVAILABLE. Idempotent.
  void Stop();
  // NOT_FOUND; FAILED_PRECONDITION for a CONFIRMED order.
  absl::StatusOr<v1::Order> Cancel(const std::string& order_id, const std::string& reason);
  absl::StatusOr<v1::Order> Get(const std::string& order_id);

  // The saga timeout: cancels, with compensation (order.cancelled through
  // the outbox, cause TIMEOUT), up to `limit` orders still PENDING that were
  // created more than `timeout` before the clock's now, oldest first, in
  // one transaction. Late outcomes for them are then only recorded
  // (order_saga.h); inventory releases and payment refunds on
  // order.cancelled. Returns how many it cancelled (fewer than `limit`:
  // none are left). REQUIRES: timeout > 0.
  absl::StatusOr<int> CancelTimedOut(absl::Duration timeout, int limit = 100);
  // Called, after the commit, with each order CancelTimedOut cancelled
  // (--flow=sync compensates them by direct calls: no order.cancelled goes
  // out). Must not block for long. REQUIRES: before the sweeper starts.
  void SetTimedOutListener(std::function<void(const v1::Order&)> listener) {
    timed_out_listener_ = std::move(listener);
  }

  // One outcome of a direct call (--flow=sync), as the saga is told it.
  struct DirectOutcome {
    SagaInput input;
    std::string reason;
  };
  // Applies `outcomes` in order to the order `order_id` through the saga
  // state machine (order_saga.h) and stores the result in one transaction,
  // as the handlers do for events (without events when !publish_events).
  // Returns the order as stored. NOT_FOUND for an unknown order.
  absl::StatusOr<v1::Order> Decide(const std::string& order_id,
                                   const std::vector<DirectOutcome>& outcomes);
  absl::StatusOr<v1::ListOrdersResponse> List(const v1::ListOrdersRequest& request);

  // Registers the handler of product.updated (topic "inventory"): the
  // catalog read model. Alone in --flow=sync; `lines` as below.
  void RegisterCatalogHandler(store::TransactionalConsumer& consumer,
                              services::PendingLogLines* lines = nullptr);
  // Registers the handlers of topic "inventory" (product.updated,
  // stock.reserved, stock.rejected). Their log lines go to `lines`, to be
  // written once their transaction commits (null: written at once).
  void RegisterInventoryHandlers(store::TransactionalConsumer& consumer,
                                 services::PendingLogLines* lines = nullptr);
  // Registers the handlers of topic "payments" (payment.captured,
  // payment.declined); `lines` as above.
  void RegisterPaymentHandlers(store::TransactionalConsumer& consumer,
                               services::PendingLogLines* lines = nullptr);

  // The saga step for an outcome event, inside the handler's transaction.
  // Public for tests that drive it without a broker.
  absl::Status ApplyOutcome(store::Tx& tx, const std::string& order_id, SagaInput input,
                            const std::string& reason, const events::v1::Event& cause,
                            services::PendingLogLines* lines = nullptr);

 private:
  // Writes `order` and, for a terminal outcome, its event to the outbox.
  absl::Status Persist(store::Tx& tx, v1::Order& order, SagaOutcome outcome,
                       const std::string& causation_id);
  void AfterCommit(const std::string& order_id);
  struct PendingPlace {
    v1::PlaceOrderRequest request;
    PlaceDone done;
    absl::Time deadline;
  };
  // One order inside the group-commit transaction.
  absl::Status PlaceInTx(store::Tx& tx, const v1::PlaceOrderRequest& request, PlaceResult* result);
  // The log line and notifications of a committed order.
  void ReportPlaced(const PlaceResult& result);
  void PlaceLoop();

  store::Database* const db_;
  store::OutboxRelay* const relay_;
  WatchHub* const hub_;
  const std::function<absl::Time()> clock_;
  const bool publish_events_;
  // relay_order_pending_orders, read from db_ when scraped.
  std::unique_ptr<PendingOrdersCollector> pending_metric_;
  std::function<void(const v1::Order&)> timed_out_listener_;

  absl::Mutex place_mu_;
  std::deque<PendingPlace> place_queue_ ABSL_GUARDED_BY(place_mu_);
  bool place_stopping_ ABSL_GUARDED_BY(place_mu_) = false;
  std::thread place_thread_;  // last: starts once the rest is built
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_MANAGER_H_
