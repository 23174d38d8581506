#include "services/order/order_saga.h"

#include "absl/strings/str_cat.h"

namespace relay::order {
namespace {

using events::v1::CancelCause;

SagaOutcome Cancel(v1::Order& order, CancelCause cause, const std::string& reason) {
  order.set_status(v1::ORDER_STATUS_CANCELLED);
  order.set_cancel_cause(cause);
  order.set_cancel_reason(reason);
  return SagaOutcome::kCancelled;
}

SagaOutcome ConfirmIfComplete(v1::Order& order) {
  if (order.stock_reserved() && order.payment_captured()) {
    order.set_status(v1::ORDER_STATUS_CONFIRMED);
    return SagaOutcome::kConfirmed;
  }
  return SagaOutcome::kUpdated;
}

}  // namespace

bool IsTerminal(v1::OrderStatus status) {
  return status == v1::ORDER_STATUS_CONFIRMED || status == v1::ORDER_STATUS_CANCELLED;
}

std::string StatusName(v1::OrderStatus status) {
  switch (status) {
    case v1::ORDER_STATUS_PENDING:
      return "PENDING";
    case v1::ORDER_STATUS_CONFIRMED:
      return "CONFIRMED";
    case v1::ORDER_STATUS_CANCELLED:
      return "CANCELLED";
    default:
      return "UNSPECIFIED";
  }
}

absl::StatusOr<SagaOutcome> ApplySagaInput(v1::Order& order, SagaInput input,
                                           const std::string& reason) {
  const bool pending = order.status() == v1::ORDER_STATUS_PENDING;
  switch (input) {
    case SagaInput::kStockReserved:
      if (order.stock_reserved()) return SagaOutcome::kNone;
      order.set_stock_reserved(true);
      return pending ? ConfirmIfComplete(order) : SagaOutcome::kUpdated;
    case SagaInput::kPaymentCaptured:
      if (order.payment_captured()) return SagaOutcome::kNone;
      order.set_payment_captured(true);
      return pending ? ConfirmIfComplete(order) : SagaOutcome::kUpdated;
    case SagaInput::kStockRejected:
      if (!pending) return SagaOutcome::kNone;
      return Cancel(order, events::v1::CANCEL_CAUSE_OUT_OF_STOCK, reason);
    case SagaInput::kPaymentDeclined:
      if (!pending) return SagaOutcome::kNone;
      return Cancel(order, events::v1::CANCEL_CAUSE_PAYMENT_DECLINED, reason);
    case SagaInput::kCustomerCancel:
      if (order.status() == v1::ORDER_STATUS_CANCELLED) return SagaOutcome::kNone;
      if (order.status() == v1::ORDER_STATUS_CONFIRMED) {
        return absl::FailedPreconditionError(absl::StrCat(
            "order ", order.order_id(), " is CONFIRMED and can no longer be cancelled"));
      }
      return Cancel(order, events::v1::CANCEL_CAUSE_CUSTOMER,
                    reason.empty() ? "cancelled by the customer"
                                   : absl::StrCat("cancelled by the customer: ", reason));
    case SagaInput::kTimeout:
      if (!pending) return SagaOutcome::kNone;
      return Cancel(order, events::v1::CANCEL_CAUSE_TIMEOUT,
                    reason.empty() ? "timeout" : absl::StrCat("timeout: ", reason));
    case SagaInput::kDependencyFailed:
      if (!pending) return SagaOutcome::kNone;
      return Cancel(order, events::v1::CANCEL_CAUSE_DEPENDENCY_UNAVAILABLE,
                    reason.empty() ? "dependency unavailable"
                                   : absl::StrCat("dependency unavailable: ", reason));
  }
  return SagaOutcome::kNone;
}

}  // namespace relay::order
