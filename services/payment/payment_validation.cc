#include "services/payment/payment_validation.h"

#include "absl/strings/str_cat.h"
#include "services/shared/field_bounds.h"

namespace relay::payment {
namespace {

using services::CheckString;
using services::kMaxIdBytes;
using services::Presence;

absl::Status CheckCustomerId(const std::string& customer_id) {
  return CheckString("customer_id", customer_id, kMaxIdBytes, Presence::kRequired);
}

}  // namespace

absl::Status ValidateListAccounts(const v1::ListAccountsRequest&) { return absl::OkStatus(); }

absl::Status ValidateGetAccount(const v1::GetAccountRequest& r) {
  return CheckCustomerId(r.customer_id());
}

absl::Status ValidateDeposit(const v1::DepositRequest& r) {
  if (absl::Status s = CheckCustomerId(r.customer_id()); !s.ok()) return s;
  if (absl::Status s = CheckString("name", r.name(), services::kMaxNameBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  // No amount at all: the ledger says it must be positive.
  if (r.has_amount()) return services::CheckCurrency("amount.currency", r.amount().currency());
  return absl::OkStatus();
}

absl::Status ValidateGetPayment(const v1::GetPaymentRequest& r) {
  if (absl::Status s = CheckString("order_id", r.order_id(), kMaxIdBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckString("payment_id", r.payment_id(), kMaxIdBytes, Presence::kOptional);
      !s.ok()) {
    return s;
  }
  const bool by_order = !r.order_id().empty();
  const bool by_id = !r.payment_id().empty();
  if (by_order && by_id) {
    return absl::InvalidArgumentError("give order_id or payment_id, not both");
  }
  if (!by_order && !by_id) return absl::InvalidArgumentError("order_id or payment_id is required");
  return absl::OkStatus();
}

absl::Status ValidateCharge(const v1::ChargeRequest& r) {
  if (absl::Status s = CheckString("order_id", r.order_id(), kMaxIdBytes, Presence::kRequired);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckCustomerId(r.customer_id()); !s.ok()) return s;
  if (!r.has_amount()) return absl::InvalidArgumentError("amount is required");
  if (r.amount().amount_minor() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount must be >= 0, got ", r.amount().amount_minor()));
  }
  return services::CheckCurrency("amount.currency", r.amount().currency());
}

absl::Status ValidateRefund(const v1::RefundRequest& r) {
  if (absl::Status s = CheckString("order_id", r.order_id(), kMaxIdBytes, Presence::kRequired);
      !s.ok()) {
    return s;
  }
  return CheckString("reason", r.reason(), services::kMaxReasonBytes, Presence::kOptional);
}

}  // namespace relay::payment
