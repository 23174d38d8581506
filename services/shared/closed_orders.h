#ifndef RELAY_SERVICES_SHARED_CLOSED_ORDERS_H_
#define RELAY_SERVICES_SHARED_CLOSED_ORDERS_H_

// The orders a saga participant was told to undo before it had done
// anything for them: inventory released an order with no reservation,
// payment refunded one with no payment. Kept in the service's own database
// (table closed_orders), one row per such order, forever, like the rows of
// the orders it did act on.
//
// Why: a participant that never acted on an order keeps no other trace of
// the cancel. A late first step would then act on a cancelled order, and no
// cancel would follow to undo it:
//   - an order.created dead-lettered, replayed after its order.cancelled
//     (docs/RUNBOOK.md#dead-letters);
//   - a ReserveStock or Charge call (order-service --flow=sync) that timed
//     out at the caller and lands after the ReleaseStock or Refund that
//     undid it.
// So the undo step closes the order (Close), and the first step asks
// IsClosed before it acts and then does nothing.
//
//   db->Transaction([&](store::Tx& tx) -> absl::Status {
//     absl::StatusOr<bool> closed = ClosedOrders::IsClosed(tx, order_id);
//     ...
//   });

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store/sqlite.h"

namespace relay::services {

class ClosedOrders {
 public:
  // The schema step that creates the table: append it to a service's
  // migrations (steps are positional).
  static std::string Migration();

  // Marks `order_id` closed at `now_us` (microseconds since the epoch).
  // Closing a closed order changes nothing.
  static absl::Status Close(store::Tx& tx, absl::string_view order_id, int64_t now_us);

  // Whether Close ran for `order_id`.
  static absl::StatusOr<bool> IsClosed(store::Tx& tx, absl::string_view order_id);
};

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_CLOSED_ORDERS_H_
