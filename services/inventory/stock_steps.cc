#include "services/inventory/stock_steps.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "services/shared/closed_orders.h"

namespace relay::inventory {
namespace {

using events::v1::StockLine;

// Moves each HELD reservation of `order_id` to `state`, applying `effect`
// (Commit or Release) to its product's level. Returns the lines moved.
absl::StatusOr<std::vector<StockLine>> SettleHeld(
    store::Tx& tx, const std::string& order_id, v1::ReservationState state,
    const std::function<void(StockLevel&, int64_t)>& effect, absl::Time now) {
  absl::StatusOr<std::vector<ReservationRow>> held =
      InventoryStore::ReservationsOf(tx, order_id, /*held_only=*/true);
  if (!held.ok()) return held.status();
  std::vector<std::string> skus;
  for (const ReservationRow& r : *held) skus.push_back(r.sku);
  absl::StatusOr<absl::flat_hash_map<std::string, StockLevel>> levels =
      InventoryStore::Levels(tx, skus);
  if (!levels.ok()) return levels.status();
  std::vector<StockLine> lines;
  for (const ReservationRow& r : *held) {
    auto it = levels->find(r.sku);
    if (it == levels->end()) {
      return absl::InternalError(
          absl::StrCat("order ", order_id, " holds sku ", r.sku, " which has no product row"));
    }
    effect(it->second, r.quantity);
    if (absl::Status s = InventoryStore::SetLevel(tx, r.sku, it->second, now); !s.ok()) return s;
    if (absl::Status s = InventoryStore::SetReservationState(tx, order_id, r.sku, state, now);
        !s.ok()) {
      return s;
    }
    StockLine& line = lines.emplace_back();
    line.set_sku(r.sku);
    line.set_quantity(static_cast<int32_t>(r.quantity));
  }
  return lines;
}

}  // namespace

absl::StatusOr<ReserveResult> ReserveOrder(store::Tx& tx, const std::string& order_id,
                                           const std::vector<StockLine>& lines, absl::Time now) {
  ReserveResult result;
  absl::StatusOr<std::vector<ReservationRow>> existing =
      InventoryStore::ReservationsOf(tx, order_id, /*held_only=*/false);
  if (!existing.ok()) return existing.status();
  if (!existing->empty()) {
    result.replayed = true;
    result.existing = std::move(*existing);
    return result;
  }
  absl::StatusOr<bool> closed = services::ClosedOrders::IsClosed(tx, order_id);
  if (!closed.ok()) return closed.status();
  if (*closed) {
    result.closed = true;
    return result;
  }
  std::vector<std::string> skus;
  for (const StockLine& l : lines) skus.push_back(l.sku());
  absl::StatusOr<absl::flat_hash_map<std::string, StockLevel>> levels =
      InventoryStore::Levels(tx, skus);
  if (!levels.ok()) return levels.status();
  result.decision = DecideReservation(lines, *levels);
  if (!result.decision.ok) return result;
  for (const StockLine& l : result.decision.lines) {
    StockLevel& level = (*levels)[l.sku()];
    Hold(level, l.quantity());
    if (absl::Status s = InventoryStore::SetLevel(tx, l.sku(), level, now); !s.ok()) return s;
    if (absl::Status s = InventoryStore::InsertReservation(
            tx, {order_id, l.sku(), l.quantity(), v1::RESERVATION_STATE_HELD}, now);
        !s.ok()) {
      return s;
    }
  }
  return result;
}

absl::StatusOr<std::vector<StockLine>> CommitOrder(store::Tx& tx, const std::string& order_id,
                                                   absl::Time now) {
  return SettleHeld(tx, order_id, v1::RESERVATION_STATE_COMMITTED, Commit, now);
}

absl::StatusOr<std::vector<StockLine>> ReleaseOrder(store::Tx& tx, const std::string& order_id,
                                                    absl::Time now) {
  absl::StatusOr<std::vector<StockLine>> released =
      SettleHeld(tx, order_id, v1::RESERVATION_STATE_RELEASED, Release, now);
  if (!released.ok() || !released->empty()) return released;
  absl::StatusOr<std::vector<ReservationRow>> any =
      InventoryStore::ReservationsOf(tx, order_id, /*held_only=*/false);
  if (!any.ok()) return any.status();
  if (any->empty()) {
    // Never reserved (rejected, or its order.created not handled yet): a
    // later reserve must not hold stock that nothing would release.
    if (absl::Status s = services::ClosedOrders::Close(tx, order_id, absl::ToUnixMicros(now));
        !s.ok()) {
      return s;
    }
  }
  return released;
}

}  // namespace relay::inventory
