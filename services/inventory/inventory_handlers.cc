#include "services/inventory/inventory_handlers.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/store/outbox.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/stock_ledger.h"
#include "services/inventory/stock_steps.h"

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

  std::vector<StockLine> lines;
  for (const events::v1::OrderLine& l : m.lines()) {
    StockLine& line = lines.emplace_back();
    line.set_sku(l.sku());
    line.set_quantity(l.quantity());
  }
  absl::StatusOr<ReserveResult> reserve = ReserveOrder(tx, *order_id, lines, absl::Now());
  if (!reserve.ok()) return reserve.status();
  if (reserve->replayed) {
    // The same order announced again under another event id: its stock was
    // decided the first time.
    AddNote(e, {log::Level::kInfo, "stock already decided for this order, nothing to do", *order_id,
                "", "", corr});
    return absl::OkStatus();
  }
  if (reserve->closed) {
    // A replayed order.created whose order.cancelled came first: holding
    // stock now would hold it for good.
    AddNote(e, {log::Level::kWarn,
                "order.created for an order cancelled before its stock was reserved: nothing held",
                *order_id, "", "", corr});
    return absl::OkStatus();
  }
  const ReserveDecision& decision = reserve->decision;

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
  absl::StatusOr<std::vector<StockLine>> lines = CommitOrder(tx, *order_id, absl::Now());
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
  absl::StatusOr<std::vector<StockLine>> lines = ReleaseOrder(tx, *order_id, absl::Now());
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
      log::Write(
          n.level, n.message,
          {{"order", n.order}, {n.detail_key, n.detail}, {"event", event_id}, {"corr", n.corr}});
    }
  });
}

}  // namespace relay::inventory
