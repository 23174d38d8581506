#ifndef RELAY_COMMON_BACKOFF_H_
#define RELAY_COMMON_BACKOFF_H_

// The one exponential backoff of Relay: the pause before a retry is min,
// then 2·min, 4·min, … capped at max. The publisher, the subscriber and the
// outbox relay pause with a Backoff between failed attempts; the broker's
// delivery scheduler spaces redeliveries with Backoff::ForAttempt.
//
//   Backoff backoff(absl::Milliseconds(50), absl::Seconds(2));
//   while (!TryOnce()) Sleep(backoff.Next());  // 50 ms, 100 ms, … 2 s, 2 s
//   backoff.Reset();                           // after a success
//
// Not thread-safe: each retry loop owns its own.

#include <cstdint>

#include "absl/time/time.h"

namespace relay {

class Backoff {
 public:
  // REQUIRES: 0 < min <= max.
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(max), next_(min) {}

  // The pause before the next retry; the one after it is twice as long,
  // up to max.
  absl::Duration Next() {
    absl::Duration d = next_;
    next_ = next_ >= max_ / 2 ? max_ : next_ * 2;
    return d;
  }

  // After a success: the next pause is min again.
  void Reset() { next_ = min_; }

  // The pause before retry number `attempt` (1 is the first retry):
  // min·2^(attempt−1), capped at max; min for attempt 0.
  static absl::Duration ForAttempt(absl::Duration min, absl::Duration max, uint32_t attempt);

 private:
  absl::Duration min_;
  absl::Duration max_;
  absl::Duration next_;
};

}  // namespace relay

#endif  // RELAY_COMMON_BACKOFF_H_
