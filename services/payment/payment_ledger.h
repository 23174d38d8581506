#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_

#include <optional>
#include <string>

#include "relay/events/v1/money.pb.h"

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
// ("insufficient funds: balance 5.00 USD, order 12.50 USD"). Pure.
ChargeDecision DecideCharge(const std::optional<AccountBalance>& account,
                            const events::v1::Money& amount, const std::string& customer_id);

// "12.50 USD" for {1250, "USD"}.
std::string FormatMoney(const events::v1::Money& money);

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_LEDGER_H_
