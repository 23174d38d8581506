#ifndef RELAY_COMMON_TEXT_H_
#define RELAY_COMMON_TEXT_H_

// Quoting user input in error messages and logs without echoing all of it:
// a 2 MB field must not come back in a status message (it would exceed the
// client's metadata limit and hide the real error).
//
//   return absl::InvalidArgumentError(
//       absl::StrCat("unknown sku ", Excerpt(request.sku())));  // 'GPU-1'

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace relay {

// The most bytes of user input an error message or log line quotes. Every
// service error that names a caller's id, sku or other value quotes it
// through Excerpt() with this bound, so a 100-byte (or 2 MB) field comes
// back as 32 bytes and its length.
inline constexpr size_t kMaxExcerptBytes = 32;

// `text` in single quotes, cut to its first `max` bytes (never inside a
// UTF-8 sequence) followed by "…(N bytes)" when longer; control characters
// become '?'.
std::string Excerpt(absl::string_view text, size_t max = kMaxExcerptBytes);

// The longest prefix of `text` of at most `max` bytes that does not end
// inside a UTF-8 sequence: for a bounded field that must stay valid UTF-8
// (a proto3 string), unlike a plain substr.
absl::string_view Utf8Prefix(absl::string_view text, size_t max);

// Whether `c` is a control character (bytes 0x00-0x1F and 0x7F): what
// no id or printed text may carry, as it could drive a terminal.
inline bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// `text` with each control character (bytes 0x00-0x1F, 0x7F) replaced by
// '?': for text from elsewhere (a peer's error message) that goes into a
// field the services refuse control characters in.
std::string ControlsReplaced(absl::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF): what a proto3 string field must hold, or the
// receiver refuses the whole message.
bool IsUtf8(absl::string_view text);

}  // namespace relay

#endif  // RELAY_COMMON_TEXT_H_
