#ifndef RELAY_SERVICES_ORDER_SYNC_SAGA_H_
#define RELAY_SERVICES_ORDER_SYNC_SAGA_H_

// order-service --flow=sync: the order saga as request-response, the
// comparison docs/EVENT-DRIVEN.md measures against the event-driven flow.
// PlaceOrder stores the order as PENDING (no order.created is published),
// then a worker calls inventory-service ReserveStock and payment-service
// Charge in parallel, each with its own deadline, and decides through the
// same state machine (order_saga.h):
//
//   both yes            -> CONFIRMED, PlaceOrder answers it; then CommitStock
//   a no (stock, funds) -> Release / Refund the other, then CANCELLED
//                          (out_of_stock / payment_declined); PlaceOrder
//                          answers it, as in events mode
//   a call failed       -> Release and Refund (whatever happened), then
//                          CANCELLED (dependency_unavailable); PlaceOrder
//                          fails with UNAVAILABLE or DEADLINE_EXCEEDED,
//                          naming the order
//
// Compensation runs before the order is stored as CANCELLED, so a crash in
// between leaves a PENDING order for the saga timeout, whose listener calls
// Release and Refund again (both idempotent). What this flow cannot do
// (docs/EVENT-DRIVEN.md#the-honest-gaps-of-sync-mode): a Release or Refund
// that fails (the service is down) is logged and not retried; a
// CommitStock that fails leaves the units HELD; a Charge whose answer was
// lost to a crash of payment-service keeps the money until someone refunds.
//
//   SyncSaga saga(&manager, {.inventory_target = "inventory:7072",
//                            .payment_target = "payment:7073"});
//   saga.RunAsync(placed_order, [](absl::StatusOr<v1::Order> final) { ... });
//
// Thread-safe. Owns `workers` threads ("sync-saga"), started by the
// constructor and joined by Stop().

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "services/order/order_manager.h"

namespace relay::order {

class SyncSaga {
 public:
  struct Options {
    // host:port of inventory-service and payment-service. Required.
    std::string inventory_target;
    std::string payment_target;
    // The deadline of every call (> 0).
    absl::Duration call_timeout = absl::Seconds(2);
    // Orders whose calls run at the same time, at most (>= 1): a worker
    // thread each, as a thread-per-request server would have.
    int workers = 64;
  };

  using Done = std::function<void(absl::StatusOr<v1::Order>)>;

  // INVALID_ARGUMENT for bad options.
  static absl::Status Validate(const Options& options);
  // REQUIRES: Validate(options) is OK; `manager` outlives the saga.
  SyncSaga(OrderManager* manager, Options options);
  ~SyncSaga();  // Stop()

  SyncSaga(const SyncSaga&) = delete;
  SyncSaga& operator=(const SyncSaga&) = delete;

  // Runs the saga of `order` (just stored as PENDING) on a worker; `done`
  // gets the order as it ended, or the error PlaceOrder answers (see the
  // top of this file). Once stopping: UNAVAILABLE at once, the order stays
  // PENDING (the saga timeout ends it). A saga whose caller's `deadline`
  // passed while it waited for a worker calls no service: the order is
  // stored CANCELLED (cause TIMEOUT) and `done` gets DEADLINE_EXCEEDED.
  // Its calls end by that deadline too: a call cut short counts as failed,
  // so the order is cancelled and what the calls did is undone.
  // `done` must not block.
  void RunAsync(v1::Order order, Done done, absl::Time deadline = absl::InfiniteFuture());
  // Whether kMaxQueued sagas wait for a worker: PlaceOrder then answers
  // RESOURCE_EXHAUSTED before it stores anything.
  bool Full();
  // Sagas waiting for a worker, at most (RunAsync takes more only from
  // calls that passed Full() together).
  static constexpr size_t kMaxQueued = 10000;
  // Calls ReleaseStock and Refund for `order` on a worker (the saga timeout
  // listener: a PENDING order left by a crash). Best effort, logged.
  void CompensateAsync(v1::Order order);

  // Answers what is queued with UNAVAILABLE, lets running sagas finish
  // (each within a few call deadlines), joins the workers. Idempotent.
  void Stop();

 private:
  struct Job {
    v1::Order order;
    Done done;  // empty: compensation only
    absl::Time deadline = absl::InfiniteFuture();
  };
  // What one call ended with.
  struct Call {
    grpc::Status status;
    bool yes = false;    // reserved / captured
    std::string reason;  // a no's reason
  };

  void WorkLoop();
  void Run(Job job);
  // Ends a saga whose deadline passed before it ran, calling no service.
  void Abandon(Job job);
  // ReleaseStock (when `release`) and Refund (when `refund`) in parallel.
  void Compensate(const v1::Order& order, const std::string& reason, bool release = true,
                  bool refund = true);
  // The two first calls of the saga, in parallel; each waits at most
  // call_timeout, and not past `caller_deadline`.
  void ReserveAndCharge(const v1::Order& order, absl::Time caller_deadline, Call* reserve,
                        Call* charge);
  void CommitStock(const v1::Order& order);

  OrderManager* const manager_;
  const Options options_;
  std::unique_ptr<inventory::v1::InventoryService::Stub> inventory_;
  std::unique_ptr<payment::v1::PaymentService::Stub> payment_;

  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_sagas_ ABSL_GUARDED_BY(mu_) = 0;  // jobs of queue_ with a `done`
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // last: they start once the rest is built
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_SYNC_SAGA_H_
