#ifndef RELAY_SERVICES_ORDER_ORDER_METRICS_H_
#define RELAY_SERVICES_ORDER_ORDER_METRICS_H_

// order-service's metrics in the process registry
// (docs/OBSERVABILITY.md#order-service): orders placed, orders ended by
// status and reason, the saga's duration, and (read when scraped) the
// orders still PENDING.

#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/store/sqlite.h"
#include "relay/order/v1/order.pb.h"

namespace relay::order {

// Counts a new order (not a replayed one).
void CountPlaced();
// Counts an order that has just become CONFIRMED or CANCELLED (the reason
// label: "none", or its cancel_cause's name, a bounded set), and observes
// placed → now. Call once the change is committed.
void CountEnded(const v1::Order& order, absl::Time now);

// Reports relay_order_pending_orders on each scrape while it lives: one
// indexed count on `db`, which must outlive it.
class PendingOrdersCollector {
 public:
  explicit PendingOrdersCollector(store::Database* db);
  ~PendingOrdersCollector();
  PendingOrdersCollector(const PendingOrdersCollector&) = delete;
  PendingOrdersCollector& operator=(const PendingOrdersCollector&) = delete;

 private:
  int id_;
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_METRICS_H_
