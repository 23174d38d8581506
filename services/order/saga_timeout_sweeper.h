#ifndef RELAY_SERVICES_ORDER_SAGA_TIMEOUT_SWEEPER_H_
#define RELAY_SERVICES_ORDER_SAGA_TIMEOUT_SWEEPER_H_

#include "absl/time/time.h"
#include "common/worker.h"
#include "services/order/order_manager.h"

namespace relay::order {

// Runs the saga timeout: a thread that every `interval` asks the manager to
// cancel the orders still PENDING after `timeout`
// (OrderManager::CancelTimedOut, which reads the manager's clock, so tests
// move time with the clock seam instead of waiting). A failed pass is
// logged and retried at the next interval.
//
//   SagaTimeoutSweeper sweeper(&manager, {.timeout = absl::Minutes(5)});
//   sweeper.Start();
//
// Thread-safe. REQUIRES: `manager` outlives the sweeper.
class SagaTimeoutSweeper {
 public:
  struct Options {
    // How long an order may stay PENDING. Zero or less: never time out
    // (Start() then starts nothing).
    absl::Duration timeout = absl::Minutes(5);
    // Between passes; zero: timeout / 10, within [10 ms, 10 s], so an order
    // ends at most about 10% after its timeout.
    absl::Duration interval = absl::ZeroDuration();
  };

  SagaTimeoutSweeper(OrderManager* manager, Options options);
  ~SagaTimeoutSweeper();  // Stop()

  SagaTimeoutSweeper(const SagaTimeoutSweeper&) = delete;
  SagaTimeoutSweeper& operator=(const SagaTimeoutSweeper&) = delete;

  // Starts the thread; its first pass runs at once. REQUIRES: called at
  // most once.
  void Start();
  // Ends the thread (a pass in progress finishes its batch first).
  // Idempotent and thread-safe.
  void Stop();

  // The interval actually used.
  absl::Duration interval() const { return interval_; }

 private:
  void Pass();

  OrderManager* const manager_;
  const absl::Duration timeout_;
  const absl::Duration interval_;
  bool failing_ = false;  // worker thread only: log a failure once
  Worker worker_;         // Pass() every interval_
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_SAGA_TIMEOUT_SWEEPER_H_
