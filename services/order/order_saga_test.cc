#include "services/order/order_saga.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::order {
namespace {

using ::testing::HasSubstr;
using testing::IsOkAndHolds;
using testing::StatusIs;

v1::Order Pending() {
  v1::Order o;
  o.set_order_id("ord-1");
  o.set_status(v1::ORDER_STATUS_PENDING);
  return o;
}

TEST(OrderSaga, StockThenPaymentConfirms) {
  v1::Order o = Pending();
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_PENDING);
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(OrderSaga, PaymentThenStockConfirms) {
  v1::Order o = Pending();
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(OrderSaga, DuplicateOutcomesChangeNothing) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""), IsOkAndHolds(SagaOutcome::kNone));
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""), IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(OrderSaga, StockRejectedCancelsWithReason) {
  v1::Order o = Pending();
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockRejected, "out of stock: sku A"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_OUT_OF_STOCK);
  EXPECT_EQ(o.cancel_reason(), "out of stock: sku A");
}

TEST(OrderSaga, PaymentDeclinedCancelsEvenAfterStockReserved) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentDeclined, "insufficient funds"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_PAYMENT_DECLINED);
}

TEST(OrderSaga, LateCaptureOnCancelledOrderIsRecordedNotConfirmed) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockRejected, "short"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_TRUE(o.payment_captured());
  EXPECT_EQ(o.cancel_reason(), "short");
}

TEST(OrderSaga, SecondNegativeOutcomeKeepsTheFirstReason) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kPaymentDeclined, "declined"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockRejected, "short"),
              IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(o.cancel_reason(), "declined");
}

TEST(OrderSaga, CustomerCancelWhilePending) {
  v1::Order o = Pending();
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kCustomerCancel, "changed my mind"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_CUSTOMER);
  EXPECT_THAT(o.cancel_reason(), HasSubstr("changed my mind"));
  // Cancelling again is a no-op, not an error.
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kCustomerCancel, ""), IsOkAndHolds(SagaOutcome::kNone));
}

TEST(OrderSaga, CustomerCancelOfConfirmedOrderIsRefused) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kCustomerCancel, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CONFIRMED")));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(OrderSaga, LateNegativeOnConfirmedOrderChangesNothing) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentDeclined, "x"),
              IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(OrderSaga, TimeoutCancelsAPendingOrderWithCauseTimeout) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kTimeout, "no payment outcome after 5m"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_EQ(o.cancel_reason(), "timeout: no payment outcome after 5m");
}

TEST(OrderSaga, TimeoutOfAnEndedOrderChangesNothing) {
  v1::Order confirmed = Pending();
  ASSERT_THAT(ApplySagaInput(confirmed, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  ASSERT_THAT(ApplySagaInput(confirmed, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kConfirmed));
  const std::string before = confirmed.SerializeAsString();
  EXPECT_THAT(ApplySagaInput(confirmed, SagaInput::kTimeout, ""), IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(confirmed.SerializeAsString(), before);

  v1::Order cancelled = Pending();
  ASSERT_THAT(ApplySagaInput(cancelled, SagaInput::kCustomerCancel, ""),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_THAT(ApplySagaInput(cancelled, SagaInput::kTimeout, ""), IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(cancelled.cancel_cause(), events::v1::CANCEL_CAUSE_CUSTOMER);
}

TEST(OrderSaga, LateOutcomesAfterATimeoutAreOnlyRecorded) {
  v1::Order o = Pending();
  ASSERT_THAT(ApplySagaInput(o, SagaInput::kTimeout, ""), IsOkAndHolds(SagaOutcome::kCancelled));
  // A late capture and reservation are recorded (payment refunds and
  // inventory releases on order.cancelled); the order stays CANCELLED.
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentCaptured, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_TRUE(o.payment_captured());
  EXPECT_TRUE(o.stock_reserved());
  // Late rejections change nothing, the cause stays timeout.
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kPaymentDeclined, "x"),
              IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockRejected, "x"), IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  // And a customer cancel of a timed-out order is a no-op, not an error.
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kCustomerCancel, ""), IsOkAndHolds(SagaOutcome::kNone));
}

TEST(OrderSaga, AFailedDirectCallCancelsAPendingOrderAsDependencyUnavailable) {
  v1::Order o = Pending();
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kStockReserved, ""),
              IsOkAndHolds(SagaOutcome::kUpdated));
  EXPECT_THAT(ApplySagaInput(o, SagaInput::kDependencyFailed, "payment-service: down"),
              IsOkAndHolds(SagaOutcome::kCancelled));
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o.cancel_cause(), events::v1::CANCEL_CAUSE_DEPENDENCY_UNAVAILABLE);
  EXPECT_EQ(o.cancel_reason(), "dependency unavailable: payment-service: down");
  // On an ended order it changes nothing.
  v1::Order confirmed = Pending();
  ASSERT_THAT(ApplySagaInput(confirmed, SagaInput::kStockReserved, ""), testing::IsOk());
  ASSERT_THAT(ApplySagaInput(confirmed, SagaInput::kPaymentCaptured, ""), testing::IsOk());
  EXPECT_THAT(ApplySagaInput(confirmed, SagaInput::kDependencyFailed, "late"),
              IsOkAndHolds(SagaOutcome::kNone));
  EXPECT_EQ(confirmed.status(), v1::ORDER_STATUS_CONFIRMED);
}

}  // namespace
}  // namespace relay::order
