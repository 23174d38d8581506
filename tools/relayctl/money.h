#ifndef RELAY_TOOLS_RELAYCTL_MONEY_H_
#define RELAY_TOOLS_RELAYCTL_MONEY_H_

// Money as people type and read it, converted exactly to and from integer
// minor units (relay.events.v1.Money). No floating point anywhere.
//
//   absl::StatusOr<int64_t> cents = ParseMinorUnits("12.5", "USD");  // 1250
//   FormatMoney(money);                                               // "12.50 USD"

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/events/v1/money.pb.h"

namespace relay::ctl {

// Digits after the decimal point of `currency` (ISO 4217): 2 for most, 0 for
// e.g. JPY and KRW, 3 for e.g. BHD and KWD.
int MinorUnitDigits(absl::string_view currency);

// Parses a decimal amount such as "12", "12.5", "0.05" or "-3.10" into minor
// units of `currency`. INVALID_ARGUMENT for anything else: no digits, more
// decimals than the currency has ("1.234" in USD), signs other than one
// leading '-', spaces, thousands separators, exponents, or a value that
// does not fit in int64.
absl::StatusOr<int64_t> ParseMinorUnits(absl::string_view text, absl::string_view currency);

// "12.50" for 1250 in USD, "-0.05" for -5, "1000" for 1000 in JPY.
std::string FormatMinorUnits(int64_t amount_minor, absl::string_view currency);

// "12.50 USD"; "-" for a Money with neither amount nor currency.
std::string FormatMoney(const relay::events::v1::Money& money);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_MONEY_H_
