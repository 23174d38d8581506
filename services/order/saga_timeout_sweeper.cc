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
    : manager_(manager),
      timeout_(options.timeout),
      interval_(IntervalFor(options)),
      worker_("saga-timeout", [this] {
        Pass();
        return interval_;
      }) {}

SagaTimeoutSweeper::~SagaTimeoutSweeper() { Stop(); }

void SagaTimeoutSweeper::Start() {
  if (timeout_ <= absl::ZeroDuration()) return;
  worker_.Start();
}

void SagaTimeoutSweeper::Stop() {
  worker_.Stop();
}

void SagaTimeoutSweeper::Pass() {
  // Batches until one finds fewer than a full batch left.
  while (!worker_.stopping()) {
    constexpr int kBatch = 100;
    absl::StatusOr<int> n = manager_->CancelTimedOut(timeout_, kBatch);
    if (!n.ok()) {
      if (!failing_) {
        RELAY_LOG(Error, "saga timeout pass failed; retried at the next interval",
                  {{"error", n.status().ToString()}});
      }
      failing_ = true;
      return;
    }
    failing_ = false;
    if (*n < kBatch) return;
  }
}

}  // namespace relay::order
