#include "services/payment/payment_ledger.h"

#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::payment {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;

events::v1::Money Usd(int64_t minor) {
  events::v1::Money m;
  m.set_amount_minor(minor);
  m.set_currency("USD");
  return m;
}

TEST(PaymentLedger, CapturesWhenTheBalanceCovers) {
  EXPECT_TRUE(DecideCharge(AccountBalance{1250, "USD"}, Usd(1250), "c-1").capture);
}

TEST(PaymentLedger, DeclinesInsufficientFundsWithBothAmounts) {
  ChargeDecision d = DecideCharge(AccountBalance{500, "USD"}, Usd(1250), "c-1");
  EXPECT_FALSE(d.capture);
  EXPECT_EQ(d.reason, "insufficient funds: balance 5.00 USD, order 12.50 USD");
}

TEST(PaymentLedger, DeclinesUnknownAccount) {
  ChargeDecision d = DecideCharge(std::nullopt, Usd(1), "c-9");
  EXPECT_FALSE(d.capture);
  EXPECT_EQ(d.reason, "unknown account c-9");
}

TEST(PaymentLedger, DeclinesOtherCurrency) {
  ChargeDecision d = DecideCharge(AccountBalance{100000, "EUR"}, Usd(1), "c-1");
  EXPECT_FALSE(d.capture);
}

TEST(PaymentLedger, FormatsMoney) {
  EXPECT_EQ(FormatMoney(Usd(5)), "0.05 USD");
  EXPECT_EQ(FormatMoney(Usd(123456)), "1234.56 USD");
  EXPECT_EQ(FormatMoney(Usd(-250)), "-2.50 USD");
}

TEST(PaymentLedger, DeclinesANegativeTotal) {
  ChargeDecision d = DecideCharge(AccountBalance{1000, "USD"}, Usd(-100), "c-1");
  EXPECT_FALSE(d.capture);
  EXPECT_EQ(d.reason, "invalid order total -1.00 USD");
}

TEST(PaymentLedger, FaultInjectionNeverDeclinesAtZeroAndAlwaysAtOne) {
  for (const char* id : {"", "ord-1", "ord-01j2hw8qbfxzg6m0rkc3d4e5f6"}) {
    EXPECT_FALSE(FaultInjectionDeclines(id, 0)) << id;
    EXPECT_TRUE(FaultInjectionDeclines(id, 1)) << id;
  }
}

TEST(PaymentLedger, FaultInjectionDecidesAnOrderTheSameWayEveryTime) {
  for (int i = 0; i < 100; ++i) {
    std::string id = "ord-" + std::to_string(i);
    EXPECT_EQ(FaultInjectionDeclines(id, 0.5), FaultInjectionDeclines(id, 0.5)) << id;
  }
}

TEST(PaymentLedger, FaultInjectionDeclinesAboutTheRate) {
  int declined = 0;
  for (int i = 0; i < 10000; ++i) {
    declined += FaultInjectionDeclines("ord-" + std::to_string(i), 0.3) ? 1 : 0;
  }
  EXPECT_GT(declined, 2700);
  EXPECT_LT(declined, 3300);
}

TEST(PaymentLedger, RefundsOnlyACapture) {
  EXPECT_TRUE(NeedsRefund(v1::PAYMENT_STATUS_CAPTURED));
  EXPECT_FALSE(NeedsRefund(v1::PAYMENT_STATUS_DECLINED));
  EXPECT_FALSE(NeedsRefund(v1::PAYMENT_STATUS_REFUNDED));
  EXPECT_FALSE(NeedsRefund(v1::PAYMENT_STATUS_UNSPECIFIED));
}

TEST(PaymentLedger, AcceptsAPositiveDepositInTheAccountsCurrency) {
  EXPECT_THAT(ValidateDeposit(AccountBalance{100, "USD"}, "c-1", Usd(1), ""), IsOk());
}

TEST(PaymentLedger, RejectsANonPositiveDeposit) {
  EXPECT_THAT(ValidateDeposit(AccountBalance{100, "USD"}, "c-1", Usd(0), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be positive")));
  EXPECT_THAT(ValidateDeposit(AccountBalance{100, "USD"}, "c-1", Usd(-5), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-0.05 USD")));
}

TEST(PaymentLedger, RejectsADepositInAnotherCurrency) {
  events::v1::Money eur;
  eur.set_amount_minor(100);
  eur.set_currency("EUR");
  EXPECT_THAT(ValidateDeposit(AccountBalance{100, "USD"}, "c-1", eur, ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("account 'c-1' holds USD, cannot deposit EUR")));
}

TEST(PaymentLedger, RejectsADepositWithoutACurrencyCode) {
  events::v1::Money none;
  none.set_amount_minor(100);
  EXPECT_THAT(ValidateDeposit(AccountBalance{100, "USD"}, "c-1", none, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ISO 4217")));
  none.set_currency("usd");
  EXPECT_THAT(ValidateDeposit(std::nullopt, "c-1", none, "Eve"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ISO 4217")));
}

TEST(PaymentLedger, DepositToAnUnknownCustomerNeedsAName) {
  EXPECT_THAT(ValidateDeposit(std::nullopt, "c-9", Usd(100), ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unknown customer 'c-9'")));
  EXPECT_THAT(ValidateDeposit(std::nullopt, "c-9", Usd(100), "Eve"), IsOk());
}

// Balances stay at most kMaxBalanceMinor: a deposit up to INT64_MAX was
// taken, and the refund of an earlier capture then overflowed, failed, and
// was dead-lettered, leaving the money taken on a cancelled order.
TEST(PaymentLedger, RejectsADepositPastTheLargestBalance) {
  AccountBalance rich{kMaxBalanceMinor - 10, "USD"};
  EXPECT_THAT(ValidateDeposit(rich, "c-1", Usd(11), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("past")));
  EXPECT_THAT(ValidateDeposit(rich, "c-1", Usd(10), ""), IsOk());
  EXPECT_THAT(ValidateDeposit(rich, "c-1", Usd(std::numeric_limits<int64_t>::max()), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("past")));
  // A new account too.
  EXPECT_THAT(ValidateDeposit(std::nullopt, "c-9", Usd(kMaxBalanceMinor + 1), "Eve"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("past")));
  EXPECT_THAT(ValidateDeposit(std::nullopt, "c-9", Usd(kMaxBalanceMinor), "Eve"), IsOk());
}

TEST(PaymentLedger, RejectsADepositWithoutCustomer) {
  EXPECT_THAT(ValidateDeposit(std::nullopt, "", Usd(100), "Eve"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("customer_id")));
}

TEST(PaymentLedger, NamesAndParsesStatuses) {
  for (v1::PaymentStatus s :
       {v1::PAYMENT_STATUS_CAPTURED, v1::PAYMENT_STATUS_DECLINED, v1::PAYMENT_STATUS_REFUNDED}) {
    v1::PaymentStatus parsed = v1::PAYMENT_STATUS_UNSPECIFIED;
    ASSERT_TRUE(ParsePaymentStatus(PaymentStatusName(s), &parsed));
    EXPECT_EQ(parsed, s);
  }
  EXPECT_EQ(PaymentStatusName(v1::PAYMENT_STATUS_CAPTURED), "CAPTURED");
  v1::PaymentStatus parsed;
  EXPECT_FALSE(ParsePaymentStatus("PAID", &parsed));
}

TEST(PaymentLedger, FormatsTheSmallestAmount) {
  EXPECT_EQ(FormatMoney(std::numeric_limits<int64_t>::min(), "USD"), "-92233720368547758.08 USD");
}

}  // namespace
}  // namespace relay::payment
