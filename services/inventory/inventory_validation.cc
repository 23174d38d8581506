#include "services/inventory/inventory_validation.h"

#include "services/shared/field_bounds.h"

namespace relay::inventory {
namespace {

using services::CheckCurrency;
using services::CheckString;
using services::Presence;

absl::Status CheckSku(const std::string& sku) {
  return CheckString("sku", sku, services::kMaxSkuBytes, Presence::kRequired);
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

}  // namespace relay::inventory
