#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_STEPS_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_STEPS_H_

// payment-service's two saga steps on payment.db, inside the caller's
// transaction: charge an order, refund it. The order.created and
// order.cancelled handlers (payment_handlers.h) run them and publish the
// outcome as an event; the Charge and Refund RPCs (payment_service.h, for
// order-service --flow=sync) run the same steps and answer the caller. So
// both flows share one set of rules (payment_ledger.h) and tables.
//
//   db->Transaction([&](Tx& tx) -> absl::Status {
//     absl::StatusOr<ChargeResult> r = ChargeOrder(tx, {order_id, customer, total}, options);
//     ...
//   });

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/money.pb.h"
#include "services/payment/payment_store.h"

namespace relay::payment {

// What to charge.
struct ChargeOrderInput {
  std::string order_id;
  std::string customer_id;
  events::v1::Money amount;
};

struct ChargeResult {
  // The order's payment after the step (CAPTURED or DECLINED when new).
  PaymentRow payment;
  // The order had a payment already: nothing changed.
  bool replayed = false;
  // The order has no payment and was refunded before
  // (services/shared/closed_orders.h): nothing changed, `payment` is unset.
  bool closed = false;
  // The account's balance after a capture (for the log line).
  int64_t balance_minor = 0;
};

// docs/ARCHITECTURE.md#saga-steps, step 4. When the order has a payment
// already, answers it with `replayed` and changes nothing (a second
// order.created under another event id, or a retried Charge). Otherwise
// decides with DecideCharge (or the decline_rate fault knob,
// FaultInjectionDeclines) and inserts the payment: CAPTURED takes the
// amount from the balance, DECLINED takes nothing and carries the reason.
// An order refunded before it had a payment is `closed`: nothing is taken.
// REQUIRES: input.order_id is not empty.
absl::StatusOr<ChargeResult> ChargeOrder(store::Tx& tx, const ChargeOrderInput& input,
                                         double decline_rate, int64_t now_us);

struct RefundResult {
  // The order's payment after the step; nullopt when it has none.
  std::optional<PaymentRow> payment;
  // This step gave money back.
  bool refunded = false;
  // The account's balance after a refund (for the log line).
  int64_t balance_minor = 0;
};

// docs/ARCHITECTURE.md#saga-steps, step 5: when the order's payment is
// CAPTURED, gives the amount back (balance up, REFUNDED with `reason`);
// otherwise (declined, refunded before) changes nothing. An order with no
// payment is closed, so ChargeOrder takes nothing for it later.
// FAILED_PRECONDITION when the account is gone or its balance would
// overflow (a damaged database). REQUIRES: order_id is not empty.
absl::StatusOr<RefundResult> RefundOrder(store::Tx& tx, const std::string& order_id,
                                         const std::string& reason, int64_t now_us);

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_STEPS_H_
