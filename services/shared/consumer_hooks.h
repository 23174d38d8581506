#ifndef RELAY_SERVICES_SHARED_CONSUMER_HOOKS_H_
#define RELAY_SERVICES_SHARED_CONSUMER_HOOKS_H_

// How payment-service and inventory-service hook their handlers' log lines
// and the fault knobs (common/faults.h) into a TransactionalConsumer:
//
//   TransactionalConsumer::Options options;
//   options.subscriber = OrdersSubscription();
//   FitInFlightToHandlerDelay(options.subscriber, handler_delay);
//   HookLogLinesAndFaults(options, handlers, faults, stopping);
//   TransactionalConsumer consumer(db, channel, options, &relay);

#include <atomic>

#include "absl/time/time.h"
#include "common/events/subscriber.h"
#include "common/faults.h"
#include "common/store/transactional_consumer.h"

namespace relay::services {

// A received batch is handled before any of it is acked: caps
// `subscription.max_in_flight` so that one batch's handler delays take at
// most half its ack_deadline (and at least one event), or the broker would
// redeliver the batch meanwhile. No change when `handler_delay` is zero.
void FitInFlightToHandlerDelay(events::Subscriber::Options& subscription,
                               absl::Duration handler_delay);

// Sets `options.before_handle` and `options.after_commit` so that, around
// each event's transaction:
//  - before it, outside the database lock, `handlers.DropUncommitted()`
//    forgets the log lines of rolled-back events and `faults` sleeps the
//    handler_delay and the debug_delay after the event's publish time (not
//    once `stopping` is set);
//  - after its COMMIT and before its ack, `handlers.Committed(event)` writes
//    the event's log line and `faults` counts it for crash_after (a crash
//    there means a redelivery, which the inbox absorbs).
// REQUIRES: `handlers`, `faults` and `stopping` outlive the consumer.
template <typename Handlers>
void HookLogLinesAndFaults(store::TransactionalConsumer::Options& options, Handlers& handlers,
                           Faults& faults, const std::atomic<bool>& stopping) {
  using Event = store::TransactionalConsumer::Event;
  options.before_handle = [&handlers, &faults, &stopping](const Event& event) {
    handlers.DropUncommitted();
    if (!stopping.load()) {
      faults.BeforeHandler(event.has_publish_time()
                               ? absl::FromUnixSeconds(event.publish_time().seconds()) +
                                     absl::Nanoseconds(event.publish_time().nanos())
                               : absl::InfinitePast());
    }
  };
  options.after_commit = [&handlers, &faults](const Event& event) {
    handlers.Committed(event);
    faults.AfterHandled();
  };
}

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_CONSUMER_HOOKS_H_
