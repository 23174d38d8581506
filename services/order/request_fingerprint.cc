#include "services/order/request_fingerprint.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace relay::order {
namespace {

std::string Fingerprint(const std::string& customer_id,
                        std::vector<std::pair<std::string, int64_t>> items) {
  std::sort(items.begin(), items.end());
  std::string out = absl::StrCat("v1;", customer_id.size(), ":", customer_id, ";");
  for (const auto& [sku, quantity] : items) {
    absl::StrAppend(&out, sku.size(), ":", sku, "=", quantity, ";");
  }
  return out;
}

}  // namespace

std::string PlaceRequestFingerprint(const v1::PlaceOrderRequest& request) {
  std::vector<std::pair<std::string, int64_t>> items;
  items.reserve(request.items_size());
  for (const auto& item : request.items()) items.emplace_back(item.sku(), item.quantity());
  return Fingerprint(request.customer_id(), std::move(items));
}

std::string OrderFingerprint(const v1::Order& order) {
  std::vector<std::pair<std::string, int64_t>> items;
  items.reserve(order.lines_size());
  for (const auto& line : order.lines()) items.emplace_back(line.sku(), line.quantity());
  return Fingerprint(order.customer_id(), std::move(items));
}

}  // namespace relay::order
