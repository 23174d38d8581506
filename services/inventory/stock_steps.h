#ifndef RELAY_SERVICES_INVENTORY_STOCK_STEPS_H_
#define RELAY_SERVICES_INVENTORY_STOCK_STEPS_H_

// inventory-service's saga steps on inventory.db, inside the caller's
// transaction: reserve an order's stock, commit it (a sale), release it.
// The order.created, order.confirmed and order.cancelled handlers
// (inventory_handlers.h) run them and publish the outcome as an event; the
// ReserveStock, CommitStock and ReleaseStock RPCs (inventory_service.h, for
// order-service --flow=sync) run the same steps and answer the caller. So
// both flows share one set of rules (stock_ledger.h) and tables.
//
//   db->Transaction([&](store::Tx& tx) -> absl::Status {
//     absl::StatusOr<ReserveResult> r = ReserveOrder(tx, order_id, lines, absl::Now());
//     ...
//   });

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/stock_ledger.h"

namespace relay::inventory {

struct ReserveResult {
  // The order had reservations already (any state): nothing changed, and
  // `existing` holds them. `decision` is then unset.
  bool replayed = false;
  std::vector<ReservationRow> existing;
  // The order has no reservation and was released before
  // (services/shared/closed_orders.h): nothing changed, and `decision` is
  // unset.
  bool closed = false;
  // Otherwise: DecideReservation's answer; when ok, its lines are now HELD.
  ReserveDecision decision;
};

// docs/ARCHITECTURE.md#saga-steps, step 3: all or nothing. When the order
// has no reservation yet, decides over the current stock levels and, when
// every line fits, holds them (HELD rows, products.reserved up). A
// rejection stores nothing. An order released before it had any reservation
// is `closed`: nothing is held for it.
absl::StatusOr<ReserveResult> ReserveOrder(store::Tx& tx, const std::string& order_id,
                                           const std::vector<events::v1::StockLine>& lines,
                                           absl::Time now);

// The order's HELD reservations become COMMITTED (on_hand and reserved go
// down: a sale). Returns the lines moved; empty when none was held.
absl::StatusOr<std::vector<events::v1::StockLine>> CommitOrder(store::Tx& tx,
                                                               const std::string& order_id,
                                                               absl::Time now);

// The order's HELD reservations become RELEASED (reserved goes down).
// Returns the lines moved; empty when none was held. An order with no
// reservation at all is closed, so ReserveOrder holds nothing for it later.
absl::StatusOr<std::vector<events::v1::StockLine>> ReleaseOrder(store::Tx& tx,
                                                                const std::string& order_id,
                                                                absl::Time now);

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_STOCK_STEPS_H_
