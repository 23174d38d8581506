#include "services/inventory/inventory_validation.h"

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "services/shared/field_bounds.h"

namespace relay::inventory {
namespace {

using services::CheckCurrency;
using services::CheckString;
using services::Presence;

absl::Status CheckSku(const std::string& sku) {
  return CheckString("sku", sku, services::kMaxSkuBytes, Presence::kRequired);
}

absl::Status CheckOrderId(const std::string& order_id) {
  return CheckString("order_id", order_id, services::kMaxIdBytes, Presence::kRequired);
}

}  // namespace

absl::Status ValidateListProducts(const v1::ListProductsRequest&) { return absl::OkStatus(); }

absl::Status ValidateGetStock(const v1::GetStockRequest& r) { return CheckSku(r.sku()); }

absl::Status ValidateSetStock(const v1::SetStockRequest& r) {
  if (absl::Status s = CheckSku(r.sku()); !s.ok()) return s;
  if (absl::Status s = CheckString("name", r.name(), services::kMaxNameBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  // Quantities and amounts: the stock ledger (stock_ledger.h).
  if (r.has_price()) return CheckCurrency("price.currency", r.price().currency());
  return absl::OkStatus();
}

absl::Status ValidateRestock(const v1::RestockRequest& r) {
  return CheckSku(r.sku());  // the quantity: DoRestock and the stock ledger
}

absl::Status ValidateListReservations(const v1::ListReservationsRequest& r) {
  // The limit: DoListReservations.
  return CheckString("order_id", r.order_id(), services::kMaxIdBytes, Presence::kOptional);
}

absl::Status ValidateReserveStock(const v1::ReserveStockRequest& r) {
  if (absl::Status s = CheckOrderId(r.order_id()); !s.ok()) return s;
  if (r.lines_size() == 0) return absl::InvalidArgumentError("lines: at least one is required");
  if (r.lines_size() > kMaxReserveLines) {
    return absl::InvalidArgumentError(
        absl::StrCat("lines: at most ", kMaxReserveLines, ", got ", r.lines_size()));
  }
  for (int i = 0; i < r.lines_size(); ++i) {
    const events::v1::StockLine& line = r.lines(i);
    if (absl::Status s = CheckString(absl::StrCat("lines[", i, "].sku"), line.sku(),
                                     services::kMaxSkuBytes, Presence::kRequired);
        !s.ok()) {
      return s;
    }
    if (line.quantity() < 1 || line.quantity() > kMaxLineQuantity) {
      return absl::InvalidArgumentError(absl::StrCat("lines[", i, "] (sku ", Excerpt(line.sku()),
                                                     "): quantity must be in [1, ",
                                                     kMaxLineQuantity, "], got ", line.quantity()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReleaseStock(const v1::ReleaseStockRequest& r) {
  if (absl::Status s = CheckOrderId(r.order_id()); !s.ok()) return s;
  return CheckString("reason", r.reason(), services::kMaxReasonBytes, Presence::kOptional);
}

absl::Status ValidateCommitStock(const v1::CommitStockRequest& r) {
  return CheckOrderId(r.order_id());
}

}  // namespace relay::inventory
