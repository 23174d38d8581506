#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_VALIDATION_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_VALIDATION_H_

// The one place inventory-service checks the shape of its requests: every
// string field against the bound its .proto comment documents, and
// currencies. Quantities, amounts and what needs the stock (an unknown sku,
// on_hand below what is reserved) are the stock ledger's (stock_ledger.h).
//
// Each function returns OK or INVALID_ARGUMENT naming the field and the
// bound, echoing at most a short prefix of the input
// (services/shared/field_bounds.h). Pure, no I/O; thread-safe; any message
// a client can send is a valid argument (fuzz targets call them directly).

#include "absl/status/status.h"
#include "relay/inventory/v1/inventory.pb.h"

namespace relay::inventory {

absl::Status ValidateListProducts(const v1::ListProductsRequest& request);
absl::Status ValidateGetStock(const v1::GetStockRequest& request);
absl::Status ValidateSetStock(const v1::SetStockRequest& request);
absl::Status ValidateRestock(const v1::RestockRequest& request);
absl::Status ValidateListReservations(const v1::ListReservationsRequest& request);
// Also the lines: 1 to kMaxReserveLines, each quantity in [1, kMaxLineQuantity].
absl::Status ValidateReserveStock(const v1::ReserveStockRequest& request);
absl::Status ValidateReleaseStock(const v1::ReleaseStockRequest& request);
absl::Status ValidateCommitStock(const v1::CommitStockRequest& request);

// ReserveStock's bounds: order-service's (an order has at most 100 items,
// each of at most 1,000,000 units).
inline constexpr int kMaxReserveLines = 100;
inline constexpr int kMaxLineQuantity = 1'000'000;

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_VALIDATION_H_
