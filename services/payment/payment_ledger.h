#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_

// The payment rules, pure (no I/O, no clock): whether an order can be
// charged, whether a cancel needs a refund, what a deposit may be, and how
// money reads. payment_handlers.cc and payment_service.cc apply them to the
// database.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "relay/events/v1/money.pb.h"
#include "relay/payment/v1/payment.pb.h"

namespace relay::payment {

// An account as the ledger sees it.
struct AccountBalance {
  int64_t balance_minor = 0;
  std::string currency;
};

// The answer to "can this order be charged?".
struct ChargeDecision {
  bool capture = false;
  std::string reason;  // why it is declined
};

// Captures when the account exists, has the order's currency and at least
// the amount; otherwise declines with a reason a person understands
// ("insufficient funds: balance 5.00 USD, order 12.50 USD"). A negative
// amount is declined (capturing it would add money). Pure.
ChargeDecision DecideCharge(const std::optional<AccountBalance>& account,
                            const events::v1::Money& amount, const std::string& customer_id);

// The reason of a payment declined by the decline_rate fault knob.
inline constexpr absl::string_view kFaultDeclineReason = "declined by fault injection";

// Whether the decline_rate fault knob declines the order `order_id`: true
// for about `decline_rate` (0..1) of all order ids, always the same answer
// for the same id (a hash of it, stable across runs and builds), so a
// redelivered order.created is decided the way the first delivery was.
// decline_rate <= 0 never declines, >= 1 always does.
bool FaultInjectionDeclines(absl::string_view order_id, double decline_rate);

// Whether a cancelled order's payment in `status` must be given back: only
// a CAPTURED one (a DECLINED one took nothing, a REFUNDED one was given back).
bool NeedsRefund(relay::payment::v1::PaymentStatus status);

// Whether `code` looks like an ISO 4217 code: three letters A-Z.
bool IsCurrencyCode(absl::string_view code);

// The largest balance an account may hold, in minor units (10^16 of the
// currency's major unit): a refund gives back at most what a capture took
// from a balance within it, so no refund can overflow a balance, whatever
// was deposited between the two.
inline constexpr int64_t kMaxBalanceMinor = 1'000'000'000'000'000'000;
static_assert(kMaxBalanceMinor < std::numeric_limits<int64_t>::max() / 2,
              "a balance plus a refund of at most as much must fit");

// Checks a deposit of `amount` to `customer_id`, whose account is `account`
// (nullopt: none yet). OK when the amount is > 0 and in the account's
// currency (or, for a new account, a currency code and a non-empty `name`),
// and the new balance is at most kMaxBalanceMinor. Else INVALID_ARGUMENT, or NOT_FOUND for an
// unknown customer without `name`, with a message that says what is wrong.
absl::Status ValidateDeposit(const std::optional<AccountBalance>& account,
                             absl::string_view customer_id, const events::v1::Money& amount,
                             absl::string_view name);

// "12.50 USD" for {1250, "USD"}.
std::string FormatMoney(const events::v1::Money& money);
// The same for an amount and a currency.
std::string FormatMoney(int64_t amount_minor, absl::string_view currency);

// How a payment status is stored and logged: "CAPTURED", "DECLINED",
// "REFUNDED" ("UNSPECIFIED" for anything else).
std::string PaymentStatusName(relay::payment::v1::PaymentStatus status);
// The inverse; false for a name it does not know.
bool ParsePaymentStatus(absl::string_view name, relay::payment::v1::PaymentStatus* status);

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_
