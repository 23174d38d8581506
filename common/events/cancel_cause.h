#ifndef RELAY_COMMON_EVENTS_CANCEL_CAUSE_H_
#define RELAY_COMMON_EVENTS_CANCEL_CAUSE_H_

#include <string>

#include "relay/events/v1/order_events.pb.h"

namespace relay::events {

// "out_of_stock" for CANCEL_CAUSE_OUT_OF_STOCK, "unspecified" for 0; the
// number for a value this build does not know. relayctl prints it, and
// order-service uses it as the `reason` label of its metrics.
std::string CancelCauseName(v1::CancelCause cause);

}  // namespace relay::events

#endif  // RELAY_COMMON_EVENTS_CANCEL_CAUSE_H_
