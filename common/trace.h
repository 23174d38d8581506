#ifndef RELAY_COMMON_TRACE_H_
#define RELAY_COMMON_TRACE_H_

// W3C trace context (Trace Context, level 1) as Relay carries it: the
// `traceparent` header of an event, "00-<trace id>-<parent id>-<flags>",
// e.g. "00-0191e3b2c4d57a1b8c2d3e4f5a6b7c8d-b7ad6b7169203331-01"
// (docs/OBSERVABILITY.md#trace-context).
//
// order-service starts one trace per order; every event the order causes
// carries that trace id, each with a new parent id (the span of the hop that
// emitted it).

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace relay {

inline constexpr absl::string_view kTraceparentHeader = "traceparent";

struct TraceParent {
  std::string trace_id;   // 32 lowercase hex digits, not all zero
  std::string parent_id;  // 16 lowercase hex digits, not all zero
  std::string flags;      // 2 lowercase hex digits ("01": sampled)
};

// The parsed header; nullopt when it is not a version-00 traceparent (a
// malformed one is ignored, as the specification asks, never an error).
std::optional<TraceParent> ParseTraceparent(absl::string_view header);

std::string FormatTraceparent(const TraceParent& t);

// 16 random lowercase hex digits, not all zero. Thread-safe.
std::string NewSpanId();

// The header of an event caused by one carrying `cause`: the same trace and
// flags with a new parent id. Empty when `cause` is not a traceparent.
std::string ChildTraceparent(absl::string_view cause);

// A 32-hex-digit trace id: lowercase, not all zero.
bool IsTraceId(absl::string_view id);

}  // namespace relay

#endif  // RELAY_COMMON_TRACE_H_
