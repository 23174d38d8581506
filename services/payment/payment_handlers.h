#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_

#include "services/shared/pending_log_lines.h"

// What payment-service does with the events of topic "orders" (docs/ARCHITECTURE.md#saga-steps,
// steps 4-5): order.created charges the customer (payment.captured or
// payment.declined), order.cancelled gives a capture back (payment.refunded).
// Each handler runs inside the TransactionalConsumer's transaction, so its
// account and payment changes, its outbox event and the inbox row of the
// event it handles commit together or not at all. Its log line waits for
// that commit: the consumer's after_commit hook calls Committed(), which
// writes it; the lines of rolled-back events (they come again) are dropped.
//
//   PaymentHandlers handlers({.decline_rate = 0});
//   TransactionalConsumer::Options options;
//   options.subscriber = PaymentSubscription();
//   options.before_handle = [&](const Event&) { handlers.DropUncommitted(); };
//   options.after_commit = [&](const Event& e) { handlers.Committed(e); };
//   TransactionalConsumer consumer(db, channel, options);
//   handlers.Register(consumer);
//   consumer.Start();

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/events/subscriber.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "relay/events/v1/event.pb.h"
#include "relay/events/v1/order_events.pb.h"

namespace relay::payment {

// Where payment-service reads and writes, and who it says it is.
inline constexpr absl::string_view kOrdersTopic = "orders";
inline constexpr absl::string_view kPaymentsTopic = "payments";
inline constexpr absl::string_view kConsumerGroup = "payment-service";
inline constexpr absl::string_view kServiceName = "payment-service";

// The subscription of payment-service: topic "orders", group
// "payment-service", from the earliest event when the group is new.
relay::events::Subscriber::Options PaymentSubscription();

// The order.created and order.cancelled handlers, and the log lines of the
// events they applied until those commit. Thread-safe.
class PaymentHandlers {
 public:
  using Event = relay::events::v1::Event;

  struct Options {
    // Fault knob (0..1): this share of orders is declined with reason
    // "declined by fault injection", the same orders on every delivery.
    double decline_rate = 0;
    // The clock that stamps payments (a seam for tests).
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  explicit PaymentHandlers(Options options);

  // Registers both handlers on `consumer`. REQUIRES: before consumer.Start();
  // `this` outlives the consumer.
  void Register(relay::store::TransactionalConsumer& consumer);

  // order.created: when the order has a payment already, nothing (a second
  // order.created for it, under another event id). Else captures (balance
  // down, payment CAPTURED, payment.captured) or declines (payment DECLINED
  // with the reason, payment.declined). INVALID_ARGUMENT for an event
  // without order id (nacked, in the end dead-lettered).
  absl::Status OnOrderCreated(relay::store::Tx& tx, const relay::events::v1::OrderCreated& order,
                              const Event& event);

  // order.cancelled: when the order's payment is CAPTURED, gives the amount
  // back (balance up, payment REFUNDED, payment.refunded); otherwise (none,
  // declined, refunded before) nothing.
  absl::Status OnOrderCancelled(relay::store::Tx& tx,
                                const relay::events::v1::OrderCancelled& cancel,
                                const Event& event);

  // Forgets the log lines of events applied in a transaction that then
  // rolled back (they come again). Call it from the consumer's before_handle
  // hook: by then every earlier transaction has ended. REQUIRES: events are
  // handled one transaction at a time (as a started consumer does).
  void DropUncommitted() { log_lines_.DropUncommitted(); }
  // Writes the log line of `event`, whose transaction committed: call it
  // from the consumer's after_commit hook. Returns false when there is
  // none (no handler here applied it).
  bool Committed(const Event& event) { return log_lines_.Committed(event); }

 private:
  // Keeps the log line of `event_id` until Committed() or DropUncommitted().
  void Note(const std::string& event_id, std::function<void()> log_line) {
    log_lines_.Note(event_id, std::move(log_line));
  }

  const Options options_;
  services::PendingLogLines log_lines_;
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_
