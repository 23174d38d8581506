#include "tools/relayctl/money.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::ctl {
namespace {

using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseMinorUnits, ReadsDecimalsExactly) {
  EXPECT_THAT(ParseMinorUnits("12.5", "USD"), IsOkAndHolds(1250));
  EXPECT_THAT(ParseMinorUnits("12.50", "USD"), IsOkAndHolds(1250));
  EXPECT_THAT(ParseMinorUnits("12", "USD"), IsOkAndHolds(1200));
  EXPECT_THAT(ParseMinorUnits("0.05", "USD"), IsOkAndHolds(5));
  EXPECT_THAT(ParseMinorUnits("0", "USD"), IsOkAndHolds(0));
  EXPECT_THAT(ParseMinorUnits("-3.10", "USD"), IsOkAndHolds(-310));
  // 0.1 + 0.2 style amounts that floating point gets wrong.
  EXPECT_THAT(ParseMinorUnits("0.29", "USD"), IsOkAndHolds(29));
  EXPECT_THAT(ParseMinorUnits("1.15", "USD"), IsOkAndHolds(115));
}

TEST(ParseMinorUnits, FollowsTheCurrencysDecimals) {
  EXPECT_THAT(ParseMinorUnits("1000", "JPY"), IsOkAndHolds(1000));
  EXPECT_THAT(ParseMinorUnits("1.5", "JPY"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JPY has 0 decimal places")));
  EXPECT_THAT(ParseMinorUnits("1.234", "KWD"), IsOkAndHolds(1234));
}

TEST(ParseMinorUnits, RejectsMoreDecimalsThanTheCurrencyHas) {
  EXPECT_THAT(ParseMinorUnits("1.234", "USD"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("USD has 2 decimal places")));
}

TEST(ParseMinorUnits, RejectsWhatIsNotADecimalNumber) {
  for (const char* text : {"abc", "", "-", ".5", "12.", "1,000", " 12", "12 ", "+1", "1e3", "1.2.3",
                           "--1", "0x10", "١٢"}) {
    EXPECT_THAT(ParseMinorUnits(text, "USD"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected a decimal")))
        << text;
  }
}

TEST(ParseMinorUnits, RejectsWhatDoesNotFitInt64) {
  EXPECT_THAT(ParseMinorUnits("92233720368547758.07", "USD"),
              IsOkAndHolds(std::numeric_limits<int64_t>::max()));
  EXPECT_THAT(ParseMinorUnits("-92233720368547758.08", "USD"),
              IsOkAndHolds(std::numeric_limits<int64_t>::min()));
  EXPECT_THAT(ParseMinorUnits("92233720368547758.08", "USD"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too large")));
  EXPECT_THAT(ParseMinorUnits("99999999999999999999999", "USD"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too large")));
}

TEST(FormatMinorUnits, PutsThePointByCurrency) {
  EXPECT_EQ(FormatMinorUnits(1250, "USD"), "12.50");
  EXPECT_EQ(FormatMinorUnits(5, "USD"), "0.05");
  EXPECT_EQ(FormatMinorUnits(0, "USD"), "0.00");
  EXPECT_EQ(FormatMinorUnits(-5, "USD"), "-0.05");
  EXPECT_EQ(FormatMinorUnits(1000, "JPY"), "1000");
  EXPECT_EQ(FormatMinorUnits(1234, "KWD"), "1.234");
  EXPECT_EQ(FormatMinorUnits(std::numeric_limits<int64_t>::min(), "USD"), "-92233720368547758.08");
}

TEST(FormatMinorUnits, RoundTripsThroughParse) {
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{99}, int64_t{100}, int64_t{-1234567},
                    std::numeric_limits<int64_t>::max()}) {
    EXPECT_THAT(ParseMinorUnits(FormatMinorUnits(v, "USD"), "USD"), IsOkAndHolds(v));
  }
}

TEST(FormatMoney, AddsTheCurrency) {
  relay::events::v1::Money money;
  EXPECT_EQ(FormatMoney(money), "-");
  money.set_amount_minor(1250);
  money.set_currency("USD");
  EXPECT_EQ(FormatMoney(money), "12.50 USD");
}

}  // namespace
}  // namespace relay::ctl
