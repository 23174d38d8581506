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

// An id with ESC or CR in it would rewrite the terminal of every operator
// who lists it; non-ASCII text (UTF-8) is fine.
TEST(FieldBounds, CheckStringRefusesControlCharacters) {
  EXPECT_THAT(CheckString("customer_id", "c-caf\xc3\xa9", 128, Presence::kRequired), IsOk());
  for (const std::string& bad :
       {std::string("c\x1b[2J"), std::string("a\rb"), std::string("a\nb"), std::string("a\tb"),
        std::string("a\x7f"), std::string("a\0b", 3)}) {
    EXPECT_THAT(CheckString("customer_id", bad, 128, Presence::kRequired),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("customer_id holds a control character (byte 1 is 0x"),
                               Not(HasSubstr("\x1b")), Not(HasSubstr("\r")))))
        << bad;
  }
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
