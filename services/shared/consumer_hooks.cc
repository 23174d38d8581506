#include "services/shared/consumer_hooks.h"

#include <algorithm>
#include <cstdint>

namespace relay::services {

void FitInFlightToHandlerDelay(events::Subscriber::Options& subscription,
                               absl::Duration handler_delay) {
  if (handler_delay <= absl::ZeroDuration()) return;
  const int64_t fit = (subscription.ack_deadline / 2) / handler_delay;
  subscription.max_in_flight =
      static_cast<uint32_t>(std::clamp<int64_t>(fit, 1, subscription.max_in_flight));
}

}  // namespace relay::services
