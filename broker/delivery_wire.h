#ifndef RELAY_BROKER_DELIVERY_WIRE_H_
#define RELAY_BROKER_DELIVERY_WIRE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/storage/stored_event.h"

namespace relay::broker {

// Delivery messages written from the stored bytes, without building a
// protobuf message per event. A SubscribeResponse on the wire is its fields
// back to back; each `deliveries` entry (field 2) is a Delivery, whose
// `event` (field 1) is the stored Event bytes followed by the `topic` field
// the log leaves out (protobuf parsers take fields in any order), and whose
// `attempt` is field 2. What a client parses is exactly the SubscribeResponse
// that copying each event into a v1::Delivery would have made
// (delivery_wire_test checks it against protobuf).

// Appends one `deliveries` entry of a SubscribeResponse to `*out`.
void AppendDelivery(absl::string_view topic, const StoredEvent& event, uint32_t attempt,
                    std::string* out);

// The bytes AppendDelivery() appends.
size_t DeliveryWireSize(absl::string_view topic, const StoredEvent& event, uint32_t attempt);

}  // namespace relay::broker

#endif  // RELAY_BROKER_DELIVERY_WIRE_H_
