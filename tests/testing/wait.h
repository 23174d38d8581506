#ifndef RELAY_TESTS_TESTING_WAIT_H_
#define RELAY_TESTS_TESTING_WAIT_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace relay::testing {

// Polls `condition` until it holds or `timeout` passes; returns its last
// value. For conditions owned by another process or thread that offers no
// notification (the test's deadline, not a sleep, decides).
inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration timeout = absl::Seconds(10)) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_WAIT_H_
