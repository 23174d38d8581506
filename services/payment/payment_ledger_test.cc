#include "services/payment/payment_ledger.h"

#include "gtest/gtest.h"

namespace relay::payment {
namespace {

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

}  // namespace
}  // namespace relay::payment
