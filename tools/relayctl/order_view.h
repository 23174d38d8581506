#ifndef RELAY_TOOLS_RELAYCTL_ORDER_VIEW_H_
#define RELAY_TOOLS_RELAYCTL_ORDER_VIEW_H_

// How relayctl shows an order (relay.order.v1.Order) to people.

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/order/v1/order.pb.h"

namespace relay::ctl {

// CONFIRMED or CANCELLED.
bool IsTerminal(relay::order::v1::OrderStatus status);

// "PENDING" for ORDER_STATUS_PENDING.
std::string StatusName(relay::order::v1::OrderStatus status);

// "pending", "confirmed" or "cancelled" (any case) to the status;
// INVALID_ARGUMENT otherwise.
absl::StatusOr<relay::order::v1::OrderStatus> ParseStatus(absl::string_view text);

// "KB-1x2,MS-1x1".
std::string ItemsText(const relay::order::v1::Order& order);

// "out_of_stock: <reason>" for a cancelled order, "" otherwise.
std::string CancelText(const relay::order::v1::Order& order);

// The order as a key/value block followed by a table of its lines.
void PrintOrder(std::ostream& out, const relay::order::v1::Order& order);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_ORDER_VIEW_H_
