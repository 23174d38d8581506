#ifndef RELAY_SERVICES_ORDER_REQUEST_FINGERPRINT_H_
#define RELAY_SERVICES_ORDER_REQUEST_FINGERPRINT_H_

// What an idempotency key is bound to: the normalised content of the
// PlaceOrder request it was first used with. The same customer retrying the
// same key with the same request gets the original order back; the same key
// with a different request is refused (order_manager.h).
//
//   PlaceRequestFingerprint(request) == OrderFingerprint(order_it_made)
//
// Normalised: the items sorted by sku, so their order in the request does
// not matter; each sku length-prefixed, so no sku can imitate a separator.
// The result is a plain string (at most ~8 KB at the request bounds), exact
// rather than a hash: no collision can turn a different request into a
// replay. Pure; thread-safe.

#include <string>

#include "relay/order/v1/order.pb.h"

namespace relay::order {

// The fingerprint of a PlaceOrder request. REQUIRES: nothing (any request).
std::string PlaceRequestFingerprint(const v1::PlaceOrderRequest& request);

// The fingerprint of the request that placed `order` (customer and lines).
// For orders stored before fingerprints were (keys then had none).
std::string OrderFingerprint(const v1::Order& order);

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_REQUEST_FINGERPRINT_H_
