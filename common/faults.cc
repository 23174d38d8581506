#include "common/faults.h"

#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"

namespace relay {

void Faults::BeforeHandler(absl::Time published) const {
  if (handler_delay_ > absl::ZeroDuration()) absl::SleepFor(handler_delay_);
  if (debug_delay_ > absl::ZeroDuration() && published != absl::InfinitePast()) {
    const absl::Duration left = published + debug_delay_ - absl::Now();
    if (left > absl::ZeroDuration()) absl::SleepFor(left);
  }
}

void Faults::AfterHandled() {
  int64_t n = handled_.fetch_add(1) + 1;
  if (crash_after_ > 0 && n == crash_after_) {
    RELAY_LOG(Warn, "fault injection: crashing now", {{"handled", absl::StrCat(n)}});
    std::raise(SIGKILL);
  }
}

}  // namespace relay
