#ifndef RELAY_COMMON_FAULTS_H_
#define RELAY_COMMON_FAULTS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace relay {

// Fault knobs for demos and tests, all off by default: a delay in every
// event handler, and a crash (SIGKILL to itself, like `kill -9`) after N
// handled events.
//
// Thread-safe.
class Faults {
 public:
  Faults(absl::Duration handler_delay, int64_t crash_after)
      : handler_delay_(handler_delay), crash_after_(crash_after) {}

  // Call at the start of every event handler: sleeps handler_delay.
  void BeforeHandler() const;
  // Call after every handled event (once its transaction committed): kills
  // the process when the count reaches crash_after (> 0).
  void AfterHandled();

 private:
  const absl::Duration handler_delay_;
  const int64_t crash_after_;
  std::atomic<int64_t> handled_{0};
};

}  // namespace relay

#endif  // RELAY_COMMON_FAULTS_H_
