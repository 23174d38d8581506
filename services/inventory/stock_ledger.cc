#include "services/inventory/stock_ledger.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text.h"

namespace relay::inventory {

ReserveDecision DecideReservation(const std::vector<events::v1::StockLine>& lines,
                                  const absl::flat_hash_map<std::string, StockLevel>& levels) {
  ReserveDecision d;
  auto reject = [&d](const std::string& sku, int64_t requested, int64_t available,
                     std::string reason) {
    d.short_sku = sku;
    d.requested =
        static_cast<int32_t>(std::min<int64_t>(requested, std::numeric_limits<int32_t>::max()));
    d.available = available;
    d.reason = std::move(reason);
    return d;
  };
  if (lines.empty()) return reject("", 0, 0, "the order has no lines");
  // Summed in 64 bits: two int32 quantities of one sku may not fit in 32.
  std::vector<int64_t> totals;
  absl::flat_hash_map<std::string, size_t> index;
  for (const events::v1::StockLine& l : lines) {
    if (l.quantity() < 1) {
      return reject(l.sku(), l.quantity(), 0,
                    absl::StrCat("invalid quantity ", l.quantity(), " for sku ", l.sku()));
    }
    auto [it, inserted] = index.emplace(l.sku(), d.lines.size());
    if (inserted) {
      d.lines.push_back(l);
      totals.push_back(l.quantity());
    } else {
      totals[it->second] += l.quantity();
    }
  }
  for (size_t i = 0; i < d.lines.size(); ++i) {
    if (totals[i] > std::numeric_limits<int32_t>::max()) {
      const std::string& sku = d.lines[i].sku();
      return reject(sku, totals[i], 0,
                    absl::StrCat("invalid quantity ", totals[i], " for sku ", sku));
    }
    d.lines[i].set_quantity(static_cast<int32_t>(totals[i]));
  }
  for (const events::v1::StockLine& l : d.lines) {
    auto it = levels.find(l.sku());
    if (it == levels.end())
      return reject(l.sku(), l.quantity(), 0, absl::StrCat("unknown sku ", l.sku()));
    const int64_t available = it->second.available();
    if (available < l.quantity()) {
      return reject(l.sku(), l.quantity(), available,
                    absl::StrCat("out of stock: sku ", l.sku(), " (wanted ", l.quantity(), ", ",
                                 std::max<int64_t>(available, 0), " left)"));
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

absl::Status CheckSetOnHand(absl::string_view sku, const StockLevel& level, int64_t on_hand) {
  if (on_hand < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("on_hand must be >= 0 for sku ", Excerpt(sku), ", got ", on_hand));
  }
  if (on_hand > kMaxOnHand) {
    return absl::InvalidArgumentError(absl::StrCat("on_hand ", on_hand, " for sku ", Excerpt(sku),
                                                   " is above the limit ", kMaxOnHand));
  }
  if (on_hand < level.reserved) {
    return absl::FailedPreconditionError(
        absl::StrCat("on_hand ", on_hand, " for sku ", Excerpt(sku), " is below the ",
                     level.reserved, " units reserved for pending orders"));
  }
  return absl::OkStatus();
}

absl::Status CheckRestock(absl::string_view sku, const StockLevel& level, int64_t quantity) {
  if (quantity < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("restock quantity must be > 0 for sku ", Excerpt(sku), ", got ", quantity));
  }
  if (quantity > kMaxOnHand - level.on_hand) {
    return absl::InvalidArgumentError(absl::StrCat("restocking sku ", Excerpt(sku), " by ",
                                                   quantity, " would put on_hand above the limit ",
                                                   kMaxOnHand));
  }
  return absl::OkStatus();
}

absl::StatusOr<SetStockPlan> PlanSetStock(const std::optional<v1::Product>& current,
                                          const v1::SetStockRequest& request) {
  const std::string& sku = request.sku();
  if (sku.empty()) return absl::InvalidArgumentError("sku is required");
  if (absl::Status s = CheckSetOnHand(sku, StockLevel{}, request.on_hand()); !s.ok()) return s;
  if (request.has_price()) {
    const events::v1::Money& price = request.price();
    if (price.amount_minor() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("price of sku ", Excerpt(sku), " must be >= 0, got ", price.amount_minor()));
    }
    const std::string& c = price.currency();
    if (c.size() != 3 ||
        !std::all_of(c.begin(), c.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
      return absl::InvalidArgumentError(
          absl::StrCat("price of sku ", Excerpt(sku),
                       " needs an ISO 4217 currency code like USD, got ", Excerpt(c)));
    }
  }
  SetStockPlan plan;
  v1::Product& p = plan.product;
  if (!current.has_value()) {
    if (request.name().empty() || !request.has_price()) {
      return absl::NotFoundError(
          absl::StrCat("unknown sku ", Excerpt(sku), " (to create it, give a name and a price)"));
    }
    p.set_sku(sku);
    p.set_name(request.name());
    *p.mutable_price() = request.price();
    p.set_on_hand(request.on_hand());
    p.set_available(request.on_hand());
    plan.created = true;
    plan.catalog_changed = true;
    return plan;
  }
  p = *current;
  if (absl::Status s =
          CheckSetOnHand(sku, StockLevel{p.on_hand(), p.reserved()}, request.on_hand());
      !s.ok()) {
    return s;
  }
  p.set_on_hand(request.on_hand());
  p.set_available(p.on_hand() - p.reserved());
  if (!request.name().empty() && request.name() != p.name()) {
    p.set_name(request.name());
    plan.catalog_changed = true;
  }
  if (request.has_price() && (request.price().amount_minor() != p.price().amount_minor() ||
                              request.price().currency() != p.price().currency())) {
    *p.mutable_price() = request.price();
    plan.catalog_changed = true;
  }
  return plan;
}

std::string FormatLines(const std::vector<events::v1::StockLine>& lines) {
  return absl::StrJoin(lines, ",", [](std::string* out, const events::v1::StockLine& l) {
    absl::StrAppend(out, l.sku(), "x", l.quantity());
  });
}

}  // namespace relay::inventory
