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

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_VALIDATION_H_
