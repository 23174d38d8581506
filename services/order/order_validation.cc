#include "services/order/order_validation.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "services/shared/field_bounds.h"

namespace relay::order {
namespace {

using services::CheckEnum;
using services::CheckString;
using services::kMaxIdBytes;
using services::kMaxPageTokenBytes;
using services::kMaxReasonBytes;
using services::kMaxSkuBytes;
using services::Presence;

absl::Status CheckOrderId(const std::string& order_id) {
  return CheckString("order_id", order_id, kMaxIdBytes, Presence::kRequired);
}

}  // namespace

absl::Status ValidatePlaceOrder(const v1::PlaceOrderRequest& r) {
  if (absl::Status s =
          CheckString("customer_id", r.customer_id(), kMaxIdBytes, Presence::kRequired);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckString("idempotency_key", r.idempotency_key(), kMaxIdBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  if (r.items_size() == 0) return absl::InvalidArgumentError("an order needs at least one item");
  if (r.items_size() > kMaxOrderItems) {
    return absl::InvalidArgumentError(
        absl::StrCat("an order has at most ", kMaxOrderItems, " items, got ", r.items_size()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < r.items_size(); ++i) {
    const auto& item = r.items(i);
    if (absl::Status s = CheckString(absl::StrCat("items[", i, "].sku"), item.sku(), kMaxSkuBytes,
                                     Presence::kRequired);
        !s.ok()) {
      return s;
    }
    if (item.quantity() < 1 || item.quantity() > kMaxItemQuantity) {
      return absl::InvalidArgumentError(absl::StrCat("items[", i, "] (sku ", Excerpt(item.sku()),
                                                     "): quantity must be in [1, ",
                                                     kMaxItemQuantity, "], got ", item.quantity()));
    }
    if (!seen.insert(item.sku()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sku ", Excerpt(item.sku()), " appears twice; put the total quantity in one item"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGetOrder(const v1::GetOrderRequest& r) { return CheckOrderId(r.order_id()); }

absl::Status ValidateListOrders(const v1::ListOrdersRequest& r) {
  if (r.page_size() < 0 || r.page_size() > kMaxListPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be in [0, ", kMaxListPageSize, "], got ", r.page_size()));
  }
  if (absl::Status s =
          CheckString("page_token", r.page_token(), kMaxPageTokenBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEnum("status", r.status(), v1::OrderStatus_IsValid); !s.ok()) return s;
  return CheckString("customer_id", r.customer_id(), kMaxIdBytes, Presence::kOptional);
}

absl::Status ValidateCancelOrder(const v1::CancelOrderRequest& r) {
  if (absl::Status s = CheckOrderId(r.order_id()); !s.ok()) return s;
  return CheckString("reason", r.reason(), kMaxReasonBytes, Presence::kOptional);
}

absl::Status ValidateWatchOrder(const v1::WatchOrderRequest& r) {
  return CheckOrderId(r.order_id());
}

}  // namespace relay::order
