#include "services/payment/payment_ledger.h"

#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/text.h"

namespace relay::payment {

using relay::payment::v1::PaymentStatus;

std::string FormatMoney(int64_t amount_minor, absl::string_view currency) {
  const char* sign = amount_minor < 0 ? "-" : "";
  // Negating INT64_MIN overflows; do it in unsigned arithmetic.
  uint64_t abs = amount_minor < 0 ? static_cast<uint64_t>(-(amount_minor + 1)) + 1
                                  : static_cast<uint64_t>(amount_minor);
  return absl::StrFormat("%s%d.%02d %s", sign, abs / 100, abs % 100, currency);
}

std::string FormatMoney(const events::v1::Money& money) {
  return FormatMoney(money.amount_minor(), money.currency());
}

ChargeDecision DecideCharge(const std::optional<AccountBalance>& account,
                            const events::v1::Money& amount, const std::string& customer_id) {
  ChargeDecision d;
  if (!account.has_value()) {
    d.reason = absl::StrCat("unknown account ", customer_id);
    return d;
  }
  if (account->currency != amount.currency()) {
    d.reason = absl::StrCat("account ", Excerpt(customer_id), " holds ", account->currency,
                            ", the order is in ", amount.currency());
    return d;
  }
  if (amount.amount_minor() < 0) {
    d.reason = absl::StrCat("invalid order total ", FormatMoney(amount));
    return d;
  }
  if (account->balance_minor < amount.amount_minor()) {
    d.reason = absl::StrCat("insufficient funds: balance ",
                            FormatMoney(account->balance_minor, account->currency), ", order ",
                            FormatMoney(amount));
    return d;
  }
  d.capture = true;
  return d;
}

bool FaultInjectionDeclines(absl::string_view order_id, double decline_rate) {
  if (!(decline_rate > 0)) return false;  // also NaN
  if (decline_rate >= 1) return true;
  // FNV-1a 64: fixed by its definition, unlike std::hash, so the same order
  // is decided the same way by every build and every restart.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : order_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // FNV's low bits mix poorly for short inputs; fold the high half in.
  h ^= h >> 32;
  h *= 0x9e3779b97f4a7c15ull;
  const double unit = static_cast<double>(h >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return unit < decline_rate;
}

bool NeedsRefund(PaymentStatus status) { return status == v1::PAYMENT_STATUS_CAPTURED; }

bool IsCurrencyCode(absl::string_view code) {
  if (code.size() != 3) return false;
  for (char c : code) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

absl::Status ValidateDeposit(const std::optional<AccountBalance>& account,
                             absl::string_view customer_id, const events::v1::Money& amount,
                             absl::string_view name) {
  if (customer_id.empty()) return absl::InvalidArgumentError("customer_id is required");
  if (amount.amount_minor() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("deposit amount must be positive, got ", FormatMoney(amount)));
  }
  if (!IsCurrencyCode(amount.currency())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deposit currency must be an ISO 4217 code like USD, got ", Excerpt(amount.currency())));
  }
  if (!account.has_value()) {
    if (name.empty()) {
      return absl::NotFoundError(absl::StrCat("unknown customer ", Excerpt(customer_id),
                                              " (give a name to open an account)"));
    }
  } else if (amount.currency() != account->currency) {
    return absl::InvalidArgumentError(absl::StrCat("account ", Excerpt(customer_id), " holds ",
                                                   account->currency, ", cannot deposit ",
                                                   amount.currency()));
  }
  const int64_t balance = account.has_value() ? account->balance_minor : 0;
  if (amount.amount_minor() > kMaxBalanceMinor ||
      balance > kMaxBalanceMinor - amount.amount_minor()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deposit of ", FormatMoney(amount), " would take the balance of ", Excerpt(customer_id),
        " past ", FormatMoney(kMaxBalanceMinor, amount.currency())));
  }
  return absl::OkStatus();
}

std::string PaymentStatusName(PaymentStatus status) {
  switch (status) {
    case v1::PAYMENT_STATUS_CAPTURED:
      return "CAPTURED";
    case v1::PAYMENT_STATUS_DECLINED:
      return "DECLINED";
    case v1::PAYMENT_STATUS_REFUNDED:
      return "REFUNDED";
    default:
      return "UNSPECIFIED";
  }
}

bool ParsePaymentStatus(absl::string_view name, PaymentStatus* status) {
  for (PaymentStatus s :
       {v1::PAYMENT_STATUS_CAPTURED, v1::PAYMENT_STATUS_DECLINED, v1::PAYMENT_STATUS_REFUNDED}) {
    if (name == PaymentStatusName(s)) {
      *status = s;
      return true;
    }
  }
  return false;
}

}  // namespace relay::payment
