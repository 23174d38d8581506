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

// `text` in single quotes, cut to its first `max` bytes (never inside a
// UTF-8 sequence) followed by "…(N bytes)" when longer; control characters
// become '?'.
std::string Excerpt(absl::string_view text, size_t max = 32);

}  // namespace relay

#endif  // RELAY_COMMON_TEXT_H_
