#ifndef RELAY_COMMON_IDS_H_
#define RELAY_COMMON_IDS_H_

// Identifiers for events and entities, unique without coordination and
// ordered by creation time (so an index on them grows at its end and a
// sorted listing reads as a timeline).
//
//   std::string event_id = NewEventId();  // "0190a3c4-5e6f-7a1b-8c2d-3e4f5a6b7c8d"
//   std::string order_id = NewId("ord");  // "ord-01j2hw8qbfxzg6m0rkc3d4e5f6"

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace relay {

// A UUIDv7 (RFC 9562) in the canonical 36-character lowercase hex form:
// 48 bits of Unix milliseconds, a 12-bit counter that keeps ids created in
// the same millisecond in creation order, 62 random bits. Ids from one
// process compare (as strings) in the order they were created; ids from
// different processes in the order of their milliseconds.
//
// Thread-safe.
std::string NewEventId();

// An entity id: `prefix`, '-', then the same 128 bits as NewEventId() in
// 26 characters of lowercase Crockford base32 (digits and letters without
// i, l, o, u), so ids with one prefix also sort by creation time.
// REQUIRES: `prefix` is short lowercase text without '-' (e.g. "ord").
//
// Thread-safe.
std::string NewId(absl::string_view prefix);

// The 128 bits of an id NewId() made, as 32 lowercase hex digits (the form
// of a W3C trace id: order-service uses an order's bits as its trace id);
// nullopt when `id` is not `prefix-` and 26 Crockford base32 digits.
std::optional<std::string> IdBitsHex(absl::string_view id);

// The inverse: `prefix-` and the 26 base32 digits of 32 hex digits; nullopt
// when `hex` is not 32 hex digits.
std::optional<std::string> IdFromBitsHex(absl::string_view prefix, absl::string_view hex);

}  // namespace relay

#endif  // RELAY_COMMON_IDS_H_
