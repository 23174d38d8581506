#include "services/payment/payment_steps.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "services/payment/payment_ledger.h"
#include "services/shared/closed_orders.h"

namespace relay::payment {

absl::StatusOr<ChargeResult> ChargeOrder(store::Tx& tx, const ChargeOrderInput& input,
                                         double decline_rate, int64_t now_us) {
  ChargeResult result;
  absl::StatusOr<std::optional<PaymentRow>> existing = FindPaymentByOrder(tx, input.order_id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    result.payment = std::move(**existing);
    result.replayed = true;
    return result;
  }
  absl::StatusOr<bool> closed = services::ClosedOrders::IsClosed(tx, input.order_id);
  if (!closed.ok()) return closed.status();
  if (*closed) {
    result.closed = true;
    return result;
  }
  absl::StatusOr<std::optional<AccountRow>> account = FindAccount(tx, input.customer_id);
  if (!account.ok()) return account.status();
  ChargeDecision decision;
  if (FaultInjectionDeclines(input.order_id, decline_rate)) {
    decision.reason = std::string(kFaultDeclineReason);
  } else {
    std::optional<AccountBalance> balance;
    if (account->has_value()) {
      balance = AccountBalance{(*account)->balance_minor, (*account)->currency};
    }
    decision = DecideCharge(balance, input.amount, input.customer_id);
  }
  PaymentRow& payment = result.payment;
  payment.payment_id = NewId("pay");
  payment.order_id = input.order_id;
  payment.customer_id = input.customer_id;
  payment.amount_minor = input.amount.amount_minor();
  payment.currency = input.amount.currency();
  payment.status = decision.capture ? v1::PAYMENT_STATUS_CAPTURED : v1::PAYMENT_STATUS_DECLINED;
  payment.reason = decision.reason;
  payment.created_us = now_us;
  payment.updated_us = now_us;
  if (absl::Status s = InsertPayment(tx, payment); !s.ok()) return s;
  if (!decision.capture) return result;
  // DecideCharge captures only from an existing account in the currency.
  result.balance_minor = (*account)->balance_minor - payment.amount_minor;
  if (absl::Status s = SetBalance(tx, input.customer_id, result.balance_minor); !s.ok()) return s;
  return result;
}

absl::StatusOr<RefundResult> RefundOrder(store::Tx& tx, const std::string& order_id,
                                         const std::string& reason, int64_t now_us) {
  RefundResult result;
  absl::StatusOr<std::optional<PaymentRow>> found = FindPaymentByOrder(tx, order_id);
  if (!found.ok()) return found.status();
  result.payment = std::move(*found);
  if (!result.payment.has_value()) {
    // Cancelled before it was charged: a later charge must not take money
    // that nothing would give back.
    if (absl::Status s = services::ClosedOrders::Close(tx, order_id, now_us); !s.ok()) return s;
    return result;
  }
  if (!NeedsRefund(result.payment->status)) return result;
  PaymentRow& payment = *result.payment;
  absl::StatusOr<std::optional<AccountRow>> account = FindAccount(tx, payment.customer_id);
  if (!account.ok()) return account.status();
  if (!account->has_value()) {
    // Accounts are never deleted: this is a damaged database.
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot refund order ", order_id, ": account ", payment.customer_id, " is gone"));
  }
  if ((*account)->balance_minor > std::numeric_limits<int64_t>::max() - payment.amount_minor) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot refund order ", order_id, ": balance of ", payment.customer_id, " would overflow"));
  }
  result.balance_minor = (*account)->balance_minor + payment.amount_minor;
  if (absl::Status s = SetBalance(tx, payment.customer_id, result.balance_minor); !s.ok()) return s;
  if (absl::Status s =
          UpdatePaymentStatus(tx, payment.payment_id, v1::PAYMENT_STATUS_REFUNDED, reason, now_us);
      !s.ok()) {
    return s;
  }
  payment.status = v1::PAYMENT_STATUS_REFUNDED;
  payment.reason = reason;
  payment.updated_us = now_us;
  result.refunded = true;
  return result;
}

}  // namespace relay::payment
