#ifndef RELAY_SERVICES_ORDER_ORDER_VALIDATION_H_
#define RELAY_SERVICES_ORDER_ORDER_VALIDATION_H_

// The one place order-service checks the shape of its requests: every string
// and enum field against the bound its .proto comment documents, and the
// item rules of PlaceOrder. What needs the database (an unknown sku, a page
// token it did not issue) is checked later.
//
// Each function returns OK or INVALID_ARGUMENT naming the field and the
// bound, echoing at most a short prefix of the input
// (services/shared/field_bounds.h). Pure, no I/O; thread-safe; any message
// a client can send is a valid argument (fuzz targets call them directly).

#include "absl/status/status.h"
#include "relay/order/v1/order.pb.h"

namespace relay::order {

// Most items in one order, and the quantity range of one item.
inline constexpr int kMaxOrderItems = 100;
inline constexpr int32_t kMaxItemQuantity = 1000000;
// ListOrders page_size bounds (0 means the default, 50).
inline constexpr int kMaxListPageSize = 1000;

absl::Status ValidatePlaceOrder(const v1::PlaceOrderRequest& request);
absl::Status ValidateGetOrder(const v1::GetOrderRequest& request);
absl::Status ValidateListOrders(const v1::ListOrdersRequest& request);
absl::Status ValidateCancelOrder(const v1::CancelOrderRequest& request);
absl::Status ValidateWatchOrder(const v1::WatchOrderRequest& request);

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_VALIDATION_H_
