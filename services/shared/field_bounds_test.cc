#include "services/shared/field_bounds.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::services {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(FieldBounds, EchoPrefixKeepsShortInputWhole) {
  EXPECT_EQ(EchoPrefix("KB-1"), "\"KB-1\"");
  EXPECT_EQ(EchoPrefix(std::string(32, 'a')), "\"" + std::string(32, 'a') + "\"");
}

TEST(FieldBounds, EchoPrefixCutsLongInputAtThirtyTwoBytes) {
  EXPECT_EQ(EchoPrefix(std::string(2 << 20, 'a')), "\"" + std::string(32, 'a') + "\xE2\x80\xA6\"");
}

TEST(FieldBounds, EchoPrefixNeverSplitsAUtf8Character) {
  // 31 ASCII bytes, then "é" (2 bytes) straddling the cut at 32.
  std::string value = std::string(31, 'a') + "\xC3\xA9" + "tail";
  EXPECT_EQ(EchoPrefix(value), "\"" + std::string(31, 'a') + "\xE2\x80\xA6\"");
}

TEST(FieldBounds, CheckStringNamesTheFieldAndTheBound) {
  EXPECT_THAT(CheckString("sku", "KB-1", 64, Presence::kRequired), IsOk());
  EXPECT_THAT(CheckString("sku", "", 64, Presence::kOptional), IsOk());
  EXPECT_THAT(CheckString("sku", "", 64, Presence::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument, "sku is required"));
  EXPECT_THAT(CheckString("sku", std::string(64, 's'), 64, Presence::kRequired), IsOk());
  EXPECT_THAT(CheckString("sku", std::string(2 << 20, 's'), 64, Presence::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("sku is 2097152 bytes, the limit is 64"),
                             Not(HasSubstr(std::string(33, 's'))))));
}

bool OnlyOneAndTwo(int v) { return v == 1 || v == 2; }

TEST(FieldBounds, CheckEnumRefusesUnknownValues) {
  EXPECT_THAT(CheckEnum("status", 2, OnlyOneAndTwo), IsOk());
  EXPECT_THAT(CheckEnum("status", 99, OnlyOneAndTwo),
              StatusIs(absl::StatusCode::kInvalidArgument, "status has unknown value 99"));
}

TEST(FieldBounds, CheckCurrencyWantsThreeCapitalLetters) {
  EXPECT_THAT(CheckCurrency("price.currency", "USD"), IsOk());
  for (const char* bad : {"", "usd", "US", "USDX", "U$D"}) {
    EXPECT_THAT(CheckCurrency("price.currency", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("price.currency")))
        << bad;
  }
}

}  // namespace
}  // namespace relay::services
