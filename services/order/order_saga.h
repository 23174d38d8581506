#ifndef RELAY_SERVICES_ORDER_ORDER_SAGA_H_
#define RELAY_SERVICES_ORDER_ORDER_SAGA_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/order/v1/order.pb.h"

namespace relay::order {

// What the order saga is told (docs/ARCHITECTURE.md#the-order-saga): the outcomes of inventory and
// payment, and the customer's cancel.
enum class SagaInput {
  kStockReserved,
  kStockRejected,
  kPaymentCaptured,
  kPaymentDeclined,
  kCustomerCancel,
  // Still PENDING after the saga timeout (the caller decides when).
  kTimeout,
  // --flow=sync: a call to inventory or payment failed (down, or past its
  // deadline; docs/EVENT-DRIVEN.md).
  kDependencyFailed,
};

// What a transition asks the caller to do.
enum class SagaOutcome {
  kNone,       // nothing (a duplicate, or a late outcome on a terminal order)
  kUpdated,    // the order changed but is still PENDING
  kConfirmed,  // now CONFIRMED: publish order.confirmed
  kCancelled,  // now CANCELLED: publish order.cancelled
};

// The order state machine: PENDING → CONFIRMED | CANCELLED.
//  - CONFIRMED once both stock.reserved and payment.captured arrived, in
//    either order;
//  - CANCELLED on stock.rejected, payment.declined, a customer cancel,
//    a failed call in --flow=sync (cause DEPENDENCY_UNAVAILABLE) or
//    the saga timeout while PENDING (a timeout of an ended order changes
//    nothing, so a timeout racing an outcome is harmless);
//  - terminal orders do not change state: a late stock.reserved or
//    payment.captured on a CANCELLED order is only recorded (inventory and
//    payment compensate by themselves on order.cancelled, which they see
//    after order.created because both share the order's key) — also after
//    a timeout, when the outcome is late rather than missing;
//  - a duplicate input changes nothing.
// A customer cancel of a CONFIRMED order is FAILED_PRECONDITION (the only
// error); the order is unchanged then.
//
// Pure: no I/O, no clock. `reason` is the human-readable reason carried by
// rejections and cancels.
absl::StatusOr<SagaOutcome> ApplySagaInput(v1::Order& order, SagaInput input,
                                           const std::string& reason);

// "PENDING", "CONFIRMED", "CANCELLED".
std::string StatusName(v1::OrderStatus status);

bool IsTerminal(v1::OrderStatus status);

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_SAGA_H_
