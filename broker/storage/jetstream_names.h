#ifndef RELAY_BROKER_STORAGE_JETSTREAM_NAMES_H_
#define RELAY_BROKER_STORAGE_JETSTREAM_NAMES_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace relay::broker {

// How a Relay topic is named in JetStream (docs/JETSTREAM.md#names).
//
// Topics are [a-z0-9._-]{1,255}; JetStream stream names may not hold '.',
// '*', '>', whitespace or slashes, and a stream name is a directory name on
// the server (at most 255 bytes). So:
//
//   stream  = "RELAY_" + topic with every '.' written as 'D'
//   subject = "relay." + stream
//
// Uppercase letters never occur in topics, so 'D' decodes back to '.' and
// the mapping is injective. A topic longer than 249 characters would give a
// stream name above 255 bytes; it becomes
//
//   "RELAY_" + the first 231 encoded characters + "H" + 16 hex digits
//
// (254 bytes) where the hex is the FNV-1a 64 hash of the whole topic. The
// 'H' at index 237 tells it apart (an encoded topic has no 'H'). Such a
// name cannot be decoded by itself: the stream's description holds the full
// topic ("relay topic <topic>"), which the backend checks on every use, so
// a hash collision is refused, never merged.
inline constexpr absl::string_view kStreamPrefix = "RELAY_";
inline constexpr absl::string_view kSubjectPrefix = "relay.";
inline constexpr size_t kMaxStreamNameBytes = 255;

// The stream name of `topic`. REQUIRES: `topic` is a valid topic name.
std::string StreamNameForTopic(absl::string_view topic);
// The subject events of `topic` are published on.
std::string SubjectForTopic(absl::string_view topic);
// The description a topic's stream is created with.
std::string StreamDescriptionForTopic(absl::string_view topic);

// The topic of a stream: from its name, or for a hashed name from its
// description (checked against the hash). nullopt for a stream that is not
// a Relay topic's.
std::optional<std::string> TopicForStream(absl::string_view stream_name,
                                          absl::string_view description);

// The Nats-Msg-Id header value of an event id (docs/JETSTREAM.md#dedupe).
// Ids are any bytes; a header value may not hold CR, LF or edge spaces. An
// id of printable ASCII without spaces that does not start with '~' goes as
// it is; any other id as "~" + its bytes in hex. Injective.
std::string MsgIdForEventId(absl::string_view id);

// The key-value bucket of the consumer groups' checkpoints
// (docs/JETSTREAM.md#group-state).
inline constexpr absl::string_view kGroupBucket = "relay_groups";

// The bucket key of a consumer group: topic and group, each with every '.'
// written 'D' (as in stream names), joined by '/':
//
//   ("orders", "payment-service")   -> "orders/payment-service"
//   ("orders.dlq", "ops.audit")     -> "ordersDdlq/opsDaudit"
//
// Key characters are then [a-z0-9_-D/]: all allowed in a key, and no '.',
// so a key is one subject token of the bucket ("$KV.relay_groups.<key>"),
// whatever dots, leading or trailing, the names have. Neither name holds
// '/' or an uppercase letter, so the key splits back at its one '/' and
// 'D' decodes to '.': injective. Names are at most 255 characters, keys
// at most 511. REQUIRES: valid topic and group names (broker/validation.h).
std::string GroupKey(absl::string_view topic, absl::string_view group);

// The (topic, group) of a key GroupKey() made; nullopt for any other key.
std::optional<std::pair<std::string, std::string>> GroupForKey(absl::string_view key);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_JETSTREAM_NAMES_H_
