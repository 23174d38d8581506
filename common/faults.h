#ifndef RELAY_COMMON_FAULTS_H_
#define RELAY_COMMON_FAULTS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace relay {

// Fault knobs for demos and tests, all off by default: a delay in every
// event handler, a crash (SIGKILL to itself, like `kill -9`) after N
// handled events, and, for benchmarks, a debug delay: no event is handled
// sooner than that after the broker published it, which adds latency
// without capping throughput (a batch waits once, not once per event).
//
// Thread-safe.
class Faults {
 public:
  Faults(absl::Duration handler_delay, int64_t crash_after,
         absl::Duration debug_delay = absl::ZeroDuration())
      : handler_delay_(handler_delay), crash_after_(crash_after), debug_delay_(debug_delay) {}

  // Call at the start of every event handler: sleeps handler_delay, then
  // until debug_delay after `published` (the event's broker publish time;
  // InfinitePast: no debug delay).
  void BeforeHandler(absl::Time published = absl::InfinitePast()) const;
  // Call after every handled event (once its transaction committed): kills
  // the process when the count reaches crash_after (> 0).
  void AfterHandled();

 private:
  const absl::Duration handler_delay_;
  const int64_t crash_after_;
  const absl::Duration debug_delay_;
  std::atomic<int64_t> handled_{0};
};

}  // namespace relay

#endif  // RELAY_COMMON_FAULTS_H_
