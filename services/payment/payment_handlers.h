#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_

// What payment-service does with the events of topic "orders" (DESIGN §4.4,
// §4.5): order.created charges the customer (payment.captured or
// payment.declined), order.cancelled gives a capture back (payment.refunded).
// Each handler runs inside the TransactionalConsumer's transaction, so its
// account and payment changes, its outbox event and the inbox row of the
// event it handles commit together or not at all. Its log line waits for
// that commit: Committed() writes the lines of the events whose effects
// committed and drops the others (they are rolled back and come again).
//
//   PaymentHandlers handlers({.decline_rate = 0});
//   TransactionalConsumer consumer(db, channel, {.subscriber = PaymentSubscription()});
//   handlers.Register(consumer);
//   ... for each received batch:
//   std::vector<absl::Status> statuses = consumer.HandleBatch(deliveries);
//   int committed = handlers.Committed(deliveries, statuses);

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
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
  using Delivery = relay::store::TransactionalConsumer::Delivery;

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

  // Call once the consumer's transaction over `deliveries` ended, with the
  // statuses it returned. Writes the log line of each delivery a handler
  // applied whose status is OK (its effects committed) and returns how many
  // those were; forgets the lines of the others. REQUIRES: called after
  // every Handle()/HandleBatch() of a consumer these handlers are
  // registered on (the lines wait here until then).
  int Committed(absl::Span<const Delivery> deliveries, absl::Span<const absl::Status> statuses);
  // The same for one event handled by TransactionalConsumer::Handle().
  int Committed(const Event& event, const absl::Status& status);

 private:
  // Keeps the log line of `event_id` until Committed().
  void Note(const std::string& event_id, std::function<void()> log_line);

  const Options options_;
  absl::Mutex mu_;
  // Log lines of applied events whose transaction has not ended yet.
  absl::flat_hash_map<std::string, std::function<void()>> notes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_HANDLERS_H_
