#include "services/inventory/stock_ledger.h"

#include "absl/strings/str_cat.h"

namespace relay::inventory {

ReserveDecision DecideReservation(const std::vector<events::v1::StockLine>& lines,
                                  const absl::flat_hash_map<std::string, StockLevel>& levels) {
  ReserveDecision d;
  absl::flat_hash_map<std::string, size_t> index;
  for (const events::v1::StockLine& l : lines) {
    auto [it, inserted] = index.emplace(l.sku(), d.lines.size());
    if (inserted) {
      d.lines.push_back(l);
    } else {
      d.lines[it->second].set_quantity(d.lines[it->second].quantity() + l.quantity());
    }
  }
  for (const events::v1::StockLine& l : d.lines) {
    auto it = levels.find(l.sku());
    int64_t available = it == levels.end() ? 0 : it->second.available();
    if (it == levels.end() || available < l.quantity()) {
      d.short_sku = l.sku();
      d.requested = l.quantity();
      d.available = available;
      d.reason = it == levels.end()
                     ? absl::StrCat("unknown sku ", l.sku())
                     : absl::StrCat("out of stock: sku ", l.sku(), " (wanted ", l.quantity(), ", ",
                                    available, " left)");
      return d;
    }
  }
  d.ok = true;
  return d;
}

void Hold(StockLevel& level, int64_t quantity) { level.reserved += quantity; }

void Commit(StockLevel& level, int64_t quantity) {
  level.on_hand -= quantity;
  level.reserved -= quantity;
}

void Release(StockLevel& level, int64_t quantity) { level.reserved -= quantity; }

}  // namespace relay::inventory
