#include "common/backoff.h"

#include <algorithm>

namespace relay {

absl::Duration Backoff::ForAttempt(absl::Duration min, absl::Duration max, uint32_t attempt) {
  absl::Duration d = min;
  // Doubling stops at max, so a huge attempt count cannot overflow.
  for (uint32_t i = 1; i < attempt && d < max; ++i) d *= 2;
  return std::min(d, max);
}

}  // namespace relay
