#include "services/order/saga_timeout_sweeper.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace relay::order {
namespace {

absl::Duration IntervalFor(const SagaTimeoutSweeper::Options& o) {
  if (o.interval > absl::ZeroDuration()) return o.interval;
  return std::clamp(o.timeout / 10, absl::Milliseconds(10), absl::Seconds(10));
}

}  // namespace

SagaTimeoutSweeper::SagaTimeoutSweeper(OrderManager* manager, Options options)
    : manager_(manager), timeout_(options.timeout), interval_(IntervalFor(options)) {}

SagaTimeoutSweeper::~SagaTimeoutSweeper() { Stop(); }

void SagaTimeoutSweeper::Start() {
  if (timeout_ <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] { Run(); });
}

void SagaTimeoutSweeper::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void SagaTimeoutSweeper::Run() {
  bool failing = false;
  do {
    // Batches until a pass finds fewer than a full batch left.
    while (!stop_.HasBeenNotified()) {
      constexpr int kBatch = 100;
      absl::StatusOr<int> n = manager_->CancelTimedOut(timeout_, kBatch);
      if (!n.ok()) {
        if (!failing) {
          RELAY_LOG(Error, "saga timeout pass failed; retried at the next interval",
                    {{"error", n.status().ToString()}});
        }
        failing = true;
        break;
      }
      failing = false;
      if (*n < kBatch) break;
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace relay::order
