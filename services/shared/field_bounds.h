#ifndef RELAY_SERVICES_SHARED_FIELD_BOUNDS_H_
#define RELAY_SERVICES_SHARED_FIELD_BOUNDS_H_

// The checks every service's request validation is made of: a string field
// within its bound, a known enum value, an ISO 4217 code. Their errors are
// INVALID_ARGUMENT naming the field and the bound and quote at most
// kMaxExcerptBytes (32) bytes of the caller's input (relay::Excerpt,
// common/text.h), as every other service error does (NOT_FOUND for an
// unknown id or sku included), so an error
// for a 2 MB field stays a few dozen bytes (gRPC carries the message in a trailer; a default client
// refuses metadata over 8 KiB and would see RESOURCE_EXHAUSTED instead).
//
//   if (absl::Status s = CheckString("customer_id", r.customer_id(), kMaxIdBytes,
//                                    Presence::kRequired); !s.ok()) return s;
//
// Pure functions; thread-safe.

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace relay::services {

// The bounds shared by every service, so that an id one service accepts is
// accepted by the others. Each field's .proto comment states its bound.
inline constexpr size_t kMaxIdBytes = 128;         // customer, order, payment ids, keys
inline constexpr size_t kMaxSkuBytes = 64;         // product skus
inline constexpr size_t kMaxNameBytes = 200;       // product and account names
inline constexpr size_t kMaxReasonBytes = 500;     // free-text reasons
inline constexpr size_t kMaxPageTokenBytes = 256;  // opaque paging tokens

enum class Presence { kOptional, kRequired };

// OK when `value` has at most `max_bytes` bytes, no control character
// (bytes 0x00-0x1F and 0x7F: an id or a reason with ESC or CR in it would
// rewrite an operator's terminal wherever it is printed) and, when
// `presence` is kRequired, is not empty. Else INVALID_ARGUMENT: "<field> is
// required", "<field> is N bytes, the limit is M: 'abc…'…(N bytes)" or
// "<field> holds a control character (byte I is 0x1b): 'a?c'".
absl::Status CheckString(absl::string_view field, absl::string_view value, size_t max_bytes,
                         Presence presence);

// OK when `is_valid(value)` (a generated <Enum>_IsValid); INVALID_ARGUMENT
// "<field> has unknown value N" otherwise. proto3 keeps unknown enum values
// as plain integers, so only this check stops them.
absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int));

// OK when `value` is three letters A-Z (an ISO 4217 code such as USD).
absl::Status CheckCurrency(absl::string_view field, absl::string_view value);

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_FIELD_BOUNDS_H_
