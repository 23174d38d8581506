#include "tools/relayctl/order_view.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/money.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {

namespace ov1 = relay::order::v1;

bool IsTerminal(ov1::OrderStatus status) {
  return status == ov1::ORDER_STATUS_CONFIRMED || status == ov1::ORDER_STATUS_CANCELLED;
}

std::string StatusName(ov1::OrderStatus status) {
  std::string name = ov1::OrderStatus_Name(status);
  if (name.empty()) return absl::StrCat("STATUS_", static_cast<int>(status));
  if (absl::StartsWith(name, "ORDER_STATUS_")) name.erase(0, 13);
  return name;
}

absl::StatusOr<ov1::OrderStatus> ParseStatus(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "pending") return ov1::ORDER_STATUS_PENDING;
  if (lower == "confirmed") return ov1::ORDER_STATUS_CONFIRMED;
  if (lower == "cancelled") return ov1::ORDER_STATUS_CANCELLED;
  return absl::InvalidArgumentError(
      absl::StrCat("status ", Excerpt(text), ": expected pending, confirmed or cancelled"));
}

std::string ItemsText(const ov1::Order& order) {
  return absl::StrJoin(order.lines(), ",", [](std::string* out, const auto& line) {
    absl::StrAppend(out, line.sku(), "x", line.quantity());
  });
}

std::string CancelText(const ov1::Order& order) {
  if (order.status() != ov1::ORDER_STATUS_CANCELLED) return "";
  std::string text = CancelCauseName(order.cancel_cause());
  if (!order.cancel_reason().empty()) absl::StrAppend(&text, ": ", order.cancel_reason());
  return text;
}

void PrintOrder(std::ostream& out, const ov1::Order& order) {
  std::string status = StatusName(order.status());
  if (order.status() == ov1::ORDER_STATUS_CANCELLED)
    absl::StrAppend(&status, " (", CancelText(order), ")");
  Table fields({{"ORDER"}, {order.order_id()}});
  fields.AddRow({"customer", order.customer_id()});
  fields.AddRow({"status", status});
  fields.AddRow({"total", FormatMoney(order.total())});
  fields.AddRow({"stock", order.stock_reserved() ? "reserved" : "not reserved"});
  fields.AddRow({"payment", order.payment_captured() ? "captured" : "not captured"});
  if (!order.idempotency_key().empty()) fields.AddRow({"key", order.idempotency_key()});
  fields.AddRow({"created", FormatUtcTime(order.created_at())});
  fields.AddRow({"updated", FormatUtcTime(order.updated_at())});
  fields.Render(out);
  out << "\n";
  Table lines({{"SKU"},
               {"NAME"},
               {"QTY", Table::kRight},
               {"UNIT PRICE", Table::kRight},
               {"AMOUNT", Table::kRight}});
  for (const auto& line : order.lines()) {
    relay::events::v1::Money amount = line.unit_price();
    amount.set_amount_minor(line.unit_price().amount_minor() * line.quantity());
    lines.AddRow({line.sku(), line.name(), absl::StrCat(line.quantity()),
                  FormatMoney(line.unit_price()), FormatMoney(amount)});
  }
  lines.Render(out);
}

}  // namespace relay::ctl
