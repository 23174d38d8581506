#ifndef RELAY_TOOLS_RELAYCTL_EVENT_FORMAT_H_
#define RELAY_TOOLS_RELAYCTL_EVENT_FORMAT_H_

// How relayctl shows events and protos: payloads decoded by event type
// (docs/EVENTS.md) into a one-line summary of their key fields, times and
// durations for people, and JSON for scripts.
//
//   SummarizePayload(event);  // customer=c-1 items=KB-1x2 total=25.00 USD

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/events/cancel_cause.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "relay/events/v1/event.pb.h"
#include "relay/events/v1/order_events.pb.h"

namespace relay::ctl {

// The typed payload of `event`, decoded by its type: nullptr for a type
// relayctl does not know, DATA_LOSS when the bytes do not parse as the
// message of a known type.
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> DecodePayload(
    const relay::events::v1::Event& event);

// The key fields of the payload as `name=value` words, e.g.
// "customer=c-1 items=KB-1x2 total=25.00 USD" for order.created;
// "(N bytes)" for an unknown type, "(undecodable N bytes)" for bad data.
std::string SummarizePayload(const relay::events::v1::Event& event);

// "out_of_stock" for CANCEL_CAUSE_OUT_OF_STOCK (common/events/cancel_cause.h).
using relay::events::CancelCauseName;

// One line for `events tail` (no newline): publish time, topic, offset,
// type, key, correlation id and the payload summary, e.g.
// "2026-11-26T22:30:19.229Z  orders      12  order.created      key=o-1  corr=o-1  customer=c-1
// ..."
std::string FormatEventLine(const relay::events::v1::Event& event);

// `text` with its control characters escaped (\n, \r, \t, \xNN), for a
// table cell of what others wrote (an event's type or source, a group's type
// filter): its bytes must not drive the terminal.
std::string Printable(absl::string_view text);

// The event's correlation_id header, or "" without one.
std::string CorrelationId(const relay::events::v1::Event& event);

// RFC 3339 UTC with milliseconds, like the logs: "2026-11-26T22:30:19.229Z";
// "-" for an unset timestamp.
std::string FormatUtcTime(const google::protobuf::Timestamp& time);
std::string FormatUtcTime(absl::Time time);
absl::Time ToTime(const google::protobuf::Timestamp& time);

// A short duration for people: "0.4ms", "12.3ms", "1.204s", "2m3.5s".
std::string FormatDelta(absl::Duration d);

// `message` as JSON with proto field names and every field printed (zeros
// and empty ones too, so scripts find the keys); pretty or on one line.
std::string ToJson(const google::protobuf::Message& message, bool pretty);

// `message` converted to a JSON object value (for building documents).
google::protobuf::Value ToJsonValue(const google::protobuf::Message& message);

// The event as a JSON object: the envelope fields, "payload" with the
// decoded payload (or "data" in base64 for an unknown type) and "summary".
google::protobuf::Value EventToJsonValue(const relay::events::v1::Event& event);

// A JSON value of text or number.
google::protobuf::Value StringValue(const std::string& text);
google::protobuf::Value NumberValue(double number);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_EVENT_FORMAT_H_
