#ifndef RELAY_BROKER_VALIDATION_H_
#define RELAY_BROKER_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "relay/broker/v1/broker.pb.h"

namespace relay::broker {

// Bounds of the envelope's strings (documented in event.proto): what a
// client may publish. Checked by ValidatePublish().
inline constexpr size_t kMaxIdBytes = 256;
inline constexpr size_t kMaxTypeBytes = 128;
inline constexpr size_t kMaxKeyBytes = 256;
inline constexpr size_t kMaxSourceBytes = 128;
inline constexpr size_t kMaxHeaders = 100;
inline constexpr size_t kMaxHeaderNameBytes = 128;
inline constexpr size_t kMaxHeaderValueBytes = 4096;
// Of a Subscribe open: member name, and types in the filter.
inline constexpr size_t kMaxMemberNameBytes = 128;
inline constexpr size_t kMaxFilterTypes = 100;

// Limits on what a client may send.
struct Limits {
  size_t max_event_bytes = 1 << 20;  // serialized size of one event
  size_t max_batch_events = 10000;
};

// Topic and group names: [a-z0-9._-]{1,128}, or up to 255 for a name
// ending in ".dlq" (dead-letter topics). `what` names the field in the
// error ("topic", "group").
absl::Status ValidateName(absl::string_view what, absl::string_view name);

// Checks a publish batch as a whole: valid topic, at least one event, each
// event with an id and a type, within the size limit, and a `topic` field
// that is empty or equal to the request's. The message names the offending
// event by index and id.
absl::Status ValidatePublish(const v1::PublishRequest& request, const Limits& limits);

// Checks the first Subscribe request and the values of its options; the
// topic must leave room for its group's DeadLetterTopic() to be a name.
absl::Status ValidateOpen(const v1::SubscribeRequest::Open& open);

// Checks the topic and the key / correlation_id filters of a Read.
absl::Status ValidateReadFilter(const v1::ReadRequest& request);

// The dead-letter topic of `topic`.
std::string DeadLetterTopic(absl::string_view topic);

}  // namespace relay::broker

#endif  // RELAY_BROKER_VALIDATION_H_
