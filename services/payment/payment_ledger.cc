#include "services/payment/payment_ledger.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace relay::payment {

std::string FormatMoney(const events::v1::Money& money) {
  int64_t a = money.amount_minor();
  const char* sign = a < 0 ? "-" : "";
  uint64_t abs = a < 0 ? static_cast<uint64_t>(-(a + 1)) + 1 : static_cast<uint64_t>(a);
  return absl::StrFormat("%s%d.%02d %s", sign, abs / 100, abs % 100, money.currency());
}

ChargeDecision DecideCharge(const std::optional<AccountBalance>& account,
                            const events::v1::Money& amount, const std::string& customer_id) {
  ChargeDecision d;
  if (!account.has_value()) {
    d.reason = absl::StrCat("unknown account ", customer_id);
    return d;
  }
  if (account->currency != amount.currency()) {
    d.reason = absl::StrCat("account ", customer_id, " holds ", account->currency,
                            ", the order is in ", amount.currency());
    return d;
  }
  events::v1::Money balance;
  balance.set_amount_minor(account->balance_minor);
  balance.set_currency(account->currency);
  if (account->balance_minor < amount.amount_minor()) {
    d.reason = absl::StrCat("insufficient funds: balance ", FormatMoney(balance), ", order ",
                            FormatMoney(amount));
    return d;
  }
  d.capture = true;
  return d;
}

}  // namespace relay::payment
