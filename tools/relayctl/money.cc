#include "tools/relayctl/money.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/text.h"

namespace relay::ctl {
namespace {

absl::Status BadAmount(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("amount ", Excerpt(text), ": ", why));
}

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

int MinorUnitDigits(absl::string_view currency) {
  static constexpr absl::string_view kZero[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY",
                                                "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                                                "VUV", "XAF", "XOF", "XPF"};
  static constexpr absl::string_view kThree[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
  for (absl::string_view c : kZero) {
    if (c == currency) return 0;
  }
  for (absl::string_view c : kThree) {
    if (c == currency) return 3;
  }
  return 2;
}

absl::StatusOr<int64_t> ParseMinorUnits(absl::string_view text, absl::string_view currency) {
  absl::string_view rest = text;
  const bool negative = !rest.empty() && rest.front() == '-';
  if (negative) rest.remove_prefix(1);
  absl::string_view whole = rest;
  absl::string_view fraction;
  bool has_point = false;
  if (size_t dot = rest.find('.'); dot != absl::string_view::npos) {
    has_point = true;
    whole = rest.substr(0, dot);
    fraction = rest.substr(dot + 1);
  }
  if (whole.empty() || !AllDigits(whole) || !AllDigits(fraction) ||
      (has_point && fraction.empty())) {
    return BadAmount(text, "expected a decimal number such as 12.50");
  }
  const int digits = MinorUnitDigits(currency);
  if (static_cast<int>(fraction.size()) > digits) {
    return BadAmount(text, absl::StrCat(currency.empty() ? "the currency" : currency, " has ",
                                        digits, " decimal places"));
  }
  // The magnitude may reach 2^63 only for a negative value.
  const uint64_t limit =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1u : 0u);
  uint64_t value = 0;
  auto push_digit = [&](int d) {
    if (value > (limit - d) / 10) return false;
    value = value * 10 + d;
    return true;
  };
  for (char c : whole) {
    if (!push_digit(c - '0')) return BadAmount(text, "too large");
  }
  for (int i = 0; i < digits; ++i) {
    int d = i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0;
    if (!push_digit(d)) return BadAmount(text, "too large");
  }
  if (!negative) return static_cast<int64_t>(value);
  if (value == 0) return 0;
  return -static_cast<int64_t>(value - 1) - 1;
}

std::string FormatMinorUnits(int64_t amount_minor, absl::string_view currency) {
  const int digits = MinorUnitDigits(currency);
  // Work on the magnitude as unsigned so INT64_MIN has one too.
  uint64_t magnitude = amount_minor < 0 ? 0 - static_cast<uint64_t>(amount_minor)
                                        : static_cast<uint64_t>(amount_minor);
  std::string text = absl::StrCat(magnitude);
  if (digits > 0) {
    if (static_cast<int>(text.size()) <= digits) {
      text.insert(0, digits + 1 - text.size(), '0');
    }
    text.insert(text.size() - digits, ".");
  }
  return amount_minor < 0 ? absl::StrCat("-", text) : text;
}

std::string FormatMoney(const relay::events::v1::Money& money) {
  if (money.amount_minor() == 0 && money.currency().empty()) return "-";
  std::string amount = FormatMinorUnits(money.amount_minor(), money.currency());
  if (money.currency().empty()) return amount;
  return absl::StrCat(amount, " ", money.currency());
}

}  // namespace relay::ctl
