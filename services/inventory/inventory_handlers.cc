#include "services/inventory/inventory_handlers.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/store/outbox.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/stock_ledger.h"

namespace relay::inventory {
namespace {

using events::v1::StockLine;
using store::Tx;

constexpr char kOrderCreated[] = "order.created";
constexpr char kOrderConfirmed[] = "order.confirmed";
constexpr char kOrderCancelled[] = "order.cancelled";

// The order an event is about: its payload's order id, else the event key.
absl::StatusOr<std::string> OrderIdOf(const std::string& payload_id, const events::v1::Event& e) {
  const std::string& id = payload_id.empty() ? e.key() : payload_id;
  if (id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", e.id(), " of type ", e.type(), " names no order"));
  }
  return id;
}

std::string CorrelationOf(const events::v1::Event& e, const std::string& order_id) {
  auto it = e.headers().find("correlation_id");
  return it == e.headers().end() || it->second.empty() ? order_id : it->second;
}

// Moves each HELD reservation of `order_id` to `state`, applying `effect`
// (Commit or Release) to its product's level. Returns the lines moved.
absl::StatusOr<std::vector<StockLine>> SettleHeld(
    Tx& tx, const std::string& order_id, v1::ReservationState state,
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

void InventoryHandlers::Register(store::TransactionalConsumer& consumer) {
  using Info = store::TransactionalConsumer::DeliveryInfo;
  consumer.On<events::v1::OrderCreated>(
      kOrderCreated, [this](Tx& tx, const events::v1::OrderCreated& m, const Event& e,
                            const Info&) { return OrderCreated(tx, m, e); });
  consumer.On<events::v1::OrderConfirmed>(
      kOrderConfirmed, [this](Tx& tx, const events::v1::OrderConfirmed& m, const Event& e,
                              const Info&) { return OrderConfirmed(tx, m, e); });
  consumer.On<events::v1::OrderCancelled>(
      kOrderCancelled, [this](Tx& tx, const events::v1::OrderCancelled& m, const Event& e,
                              const Info&) { return OrderCancelled(tx, m, e); });
}

absl::Status InventoryHandlers::OrderCreated(Tx& tx, const events::v1::OrderCreated& m,
                                             const Event& e) {
  absl::StatusOr<std::string> order_id = OrderIdOf(m.order_id(), e);
  if (!order_id.ok()) return order_id.status();
  const std::string corr = CorrelationOf(e, *order_id);

  absl::StatusOr<std::vector<ReservationRow>> existing =
      InventoryStore::ReservationsOf(tx, *order_id, /*held_only=*/false);
  if (!existing.ok()) return existing.status();
  if (!existing->empty()) {
    // The same order announced again under another event id: its stock was
    // decided the first time.
    AddNote(e, {log::Level::kInfo, "stock already decided for this order, nothing to do", *order_id,
                "", "", corr});
    return absl::OkStatus();
  }

  std::vector<StockLine> lines;
  std::vector<std::string> skus;
  for (const events::v1::OrderLine& l : m.lines()) {
    StockLine& line = lines.emplace_back();
    line.set_sku(l.sku());
    line.set_quantity(l.quantity());
    skus.push_back(l.sku());
  }
  absl::StatusOr<absl::flat_hash_map<std::string, StockLevel>> levels =
      InventoryStore::Levels(tx, skus);
  if (!levels.ok()) return levels.status();
  ReserveDecision decision = DecideReservation(lines, *levels);
  const absl::Time now = absl::Now();

  if (!decision.ok) {
    events::v1::StockRejected rejected;
    rejected.set_order_id(*order_id);
    rejected.set_sku(decision.short_sku);
    rejected.set_requested(decision.requested);
    rejected.set_available(static_cast<int32_t>(
        std::clamp<int64_t>(decision.available, 0, std::numeric_limits<int32_t>::max())));
    rejected.set_reason(decision.reason);
    absl::StatusOr<std::string> id = store::Outbox::Add(
        tx, kInventoryTopic, OrderEvent("stock.rejected", *order_id, e, rejected));
    if (!id.ok()) return id.status();
    AddNote(e, {log::Level::kInfo, "stock rejected", *order_id, "reason", decision.reason, corr});
    return absl::OkStatus();
  }

  for (const StockLine& l : decision.lines) {
    StockLevel& level = (*levels)[l.sku()];
    Hold(level, l.quantity());
    if (absl::Status s = InventoryStore::SetLevel(tx, l.sku(), level, now); !s.ok()) return s;
    if (absl::Status s = InventoryStore::InsertReservation(
            tx, {*order_id, l.sku(), l.quantity(), v1::RESERVATION_STATE_HELD}, now);
        !s.ok()) {
      return s;
    }
  }
  events::v1::StockReserved reserved;
  reserved.set_order_id(*order_id);
  for (const StockLine& l : decision.lines) *reserved.add_lines() = l;
  absl::StatusOr<std::string> id =
      store::Outbox::Add(tx, kInventoryTopic, OrderEvent("stock.reserved", *order_id, e, reserved));
  if (!id.ok()) return id.status();
  AddNote(e, {log::Level::kInfo, "stock reserved", *order_id, "lines", FormatLines(decision.lines),
              corr});
  return absl::OkStatus();
}

absl::Status InventoryHandlers::OrderConfirmed(Tx& tx, const events::v1::OrderConfirmed& m,
                                               const Event& e) {
  absl::StatusOr<std::string> order_id = OrderIdOf(m.order_id(), e);
  if (!order_id.ok()) return order_id.status();
  const std::string corr = CorrelationOf(e, *order_id);
  absl::StatusOr<std::vector<StockLine>> lines =
      SettleHeld(tx, *order_id, v1::RESERVATION_STATE_COMMITTED, Commit, absl::Now());
  if (!lines.ok()) return lines.status();
  if (lines->empty()) {
    // order-service confirms only after stock.reserved, so this is either a
    // repeat (already committed) or a sign that something went wrong.
    AddNote(e, {log::Level::kWarn, "order confirmed but no stock is held for it", *order_id, "", "",
                corr});
    return absl::OkStatus();
  }
  AddNote(e, {log::Level::kInfo, "stock committed", *order_id, "lines", FormatLines(*lines), corr});
  return absl::OkStatus();
}

absl::Status InventoryHandlers::OrderCancelled(Tx& tx, const events::v1::OrderCancelled& m,
                                               const Event& e) {
  absl::StatusOr<std::string> order_id = OrderIdOf(m.order_id(), e);
  if (!order_id.ok()) return order_id.status();
  const std::string corr = CorrelationOf(e, *order_id);
  absl::StatusOr<std::vector<StockLine>> lines =
      SettleHeld(tx, *order_id, v1::RESERVATION_STATE_RELEASED, Release, absl::Now());
  if (!lines.ok()) return lines.status();
  if (lines->empty()) {
    // Rejected orders are cancelled too: there was nothing to give back.
    AddNote(e, {log::Level::kInfo, "order cancelled, no stock held to release", *order_id, "", "",
                corr});
    return absl::OkStatus();
  }
  events::v1::StockReleased released;
  released.set_order_id(*order_id);
  for (const StockLine& l : *lines) *released.add_lines() = l;
  released.set_reason(m.reason());
  absl::StatusOr<std::string> id =
      store::Outbox::Add(tx, kInventoryTopic, OrderEvent("stock.released", *order_id, e, released));
  if (!id.ok()) return id.status();
  AddNote(e, {log::Level::kInfo, "stock released", *order_id, "lines", FormatLines(*lines), corr});
  return absl::OkStatus();
}

void InventoryHandlers::AddNote(const Event& e, Note note) {
  log_lines_.Note(e.id(), [n = std::move(note), event_id = e.id()] {
    if (n.detail_key.empty()) {
      log::Write(n.level, n.message, {{"order", n.order}, {"event", event_id}, {"corr", n.corr}});
    } else {
      log::Write(n.level, n.message,
                 {{"order", n.order}, {n.detail_key, n.detail}, {"event", event_id}, {"corr", n.corr}});
    }
  });
}

}  // namespace relay::inventory
