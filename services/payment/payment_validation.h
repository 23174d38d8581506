#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_VALIDATION_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_VALIDATION_H_

// The one place payment-service checks the shape of its requests: every
// string field against the bound its .proto comment documents, and
// currencies. Customer ids have order-service's bound (128 bytes), so no
// account can be opened that could never place an order. Amounts and what
// needs an account are the ledger's (payment_ledger.h).
//
// Each function returns OK or INVALID_ARGUMENT naming the field and the
// bound, echoing at most a short prefix of the input
// (services/shared/field_bounds.h). Pure, no I/O; thread-safe; any message
// a client can send is a valid argument (fuzz targets call them directly).

#include "absl/status/status.h"
#include "relay/payment/v1/payment.pb.h"

namespace relay::payment {

absl::Status ValidateListAccounts(const v1::ListAccountsRequest& request);
absl::Status ValidateGetAccount(const v1::GetAccountRequest& request);
absl::Status ValidateDeposit(const v1::DepositRequest& request);
// Also: exactly one of order_id and payment_id.
absl::Status ValidateGetPayment(const v1::GetPaymentRequest& request);
// Also: an amount is required, >= 0, in a currency code.
absl::Status ValidateCharge(const v1::ChargeRequest& request);
absl::Status ValidateRefund(const v1::RefundRequest& request);

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_VALIDATION_H_
