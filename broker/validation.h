#ifndef RELAY_BROKER_VALIDATION_H_
#define RELAY_BROKER_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "relay/broker/v1/broker.pb.h"

namespace relay::broker {

// Limits on what a client may send.
struct Limits {
  size_t max_event_bytes = 1 << 20;  // serialized size of one event
  size_t max_batch_events = 10000;
};

// Topic and group names: [a-z0-9._-]{1,128}. `what` names the field in the
// error ("topic", "group").
absl::Status ValidateName(absl::string_view what, absl::string_view name);

// Checks a publish batch as a whole: valid topic, at least one event, each
// event with an id and a type, within the size limit, and a `topic` field
// that is empty or equal to the request's. The message names the offending
// event by index and id.
absl::Status ValidatePublish(const v1::PublishRequest& request, const Limits& limits);

// Checks the first Subscribe request and the values of its options.
absl::Status ValidateOpen(const v1::SubscribeRequest::Open& open);

// The dead-letter topic of `topic`.
std::string DeadLetterTopic(absl::string_view topic);

}  // namespace relay::broker

#endif  // RELAY_BROKER_VALIDATION_H_
