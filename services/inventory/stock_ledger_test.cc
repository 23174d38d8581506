#include "services/inventory/stock_ledger.h"

#include <limits>

#include "gtest/gtest.h"

namespace relay::inventory {
namespace {

events::v1::StockLine Line(const std::string& sku, int32_t q) {
  events::v1::StockLine l;
  l.set_sku(sku);
  l.set_quantity(q);
  return l;
}

TEST(StockLedger, ReservesWhenEveryLineIsAvailable) {
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {5, 1}}, {"B", {2, 0}}};
  ReserveDecision d = DecideReservation({Line("A", 4), Line("B", 2)}, levels);
  EXPECT_TRUE(d.ok);
  ASSERT_EQ(d.lines.size(), 2u);
}

TEST(StockLedger, RejectsAllWhenOneLineIsShortAndNamesIt) {
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {5, 0}}, {"B", {3, 2}}};
  ReserveDecision d = DecideReservation({Line("A", 1), Line("B", 2)}, levels);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.short_sku, "B");
  EXPECT_EQ(d.requested, 2);
  EXPECT_EQ(d.available, 1);
  EXPECT_EQ(d.reason, "out of stock: sku B (wanted 2, 1 left)");
}

TEST(StockLedger, UnknownSkuIsRejected) {
  ReserveDecision d = DecideReservation({Line("Z", 1)}, {});
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.reason, "unknown sku Z");
}

TEST(StockLedger, RepeatedSkuReservesTheSum) {
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {3, 0}}};
  ReserveDecision d = DecideReservation({Line("A", 2), Line("A", 2)}, levels);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.requested, 4);
  ReserveDecision ok = DecideReservation({Line("A", 1), Line("A", 2)}, levels);
  ASSERT_TRUE(ok.ok);
  ASSERT_EQ(ok.lines.size(), 1u);
  EXPECT_EQ(ok.lines[0].quantity(), 3);
}

TEST(StockLedger, HoldCommitReleaseMoveTheRightCounters) {
  StockLevel l{10, 0};
  Hold(l, 3);
  EXPECT_EQ(l.available(), 7);
  Commit(l, 3);
  EXPECT_EQ(l.on_hand, 7);
  EXPECT_EQ(l.reserved, 0);
  Hold(l, 2);
  Release(l, 2);
  EXPECT_EQ(l.on_hand, 7);
  EXPECT_EQ(l.available(), 7);
}

TEST(StockLedger, NonPositiveQuantityIsRejectedNotReserved) {
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {5, 0}}};
  ReserveDecision zero = DecideReservation({Line("A", 0)}, levels);
  EXPECT_FALSE(zero.ok);
  EXPECT_EQ(zero.reason, "invalid quantity 0 for sku A");
  ReserveDecision negative = DecideReservation({Line("A", 2), Line("A", -1)}, levels);
  EXPECT_FALSE(negative.ok);
  EXPECT_EQ(negative.short_sku, "A");
}

TEST(StockLedger, OrderWithoutLinesIsRejected) {
  ReserveDecision d = DecideReservation({}, {{"A", {5, 0}}});
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.reason, "the order has no lines");
}

TEST(StockLedger, RepeatedSkuSumBeyondInt32IsRejectedWithoutOverflow) {
  const int32_t big = std::numeric_limits<int32_t>::max();
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {kMaxOnHand, 0}}};
  ReserveDecision d = DecideReservation({Line("A", big), Line("A", big)}, levels);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.requested, big);  // clamped for the int32 event field
  EXPECT_EQ(d.reason, "invalid quantity 4294967294 for sku A");
}

TEST(StockLedger, ReasonNamesTheFirstShortSkuInOrderOfAppearance) {
  absl::flat_hash_map<std::string, StockLevel> levels = {{"A", {0, 0}}, {"B", {0, 0}}};
  ReserveDecision d = DecideReservation({Line("B", 1), Line("A", 1)}, levels);
  EXPECT_EQ(d.short_sku, "B");
  EXPECT_EQ(d.reason, "out of stock: sku B (wanted 1, 0 left)");
}

TEST(StockLedger, SetOnHandMustStayNonNegativeAndCoverReservations) {
  StockLevel level{10, 4};
  EXPECT_TRUE(CheckSetOnHand("A", level, 4).ok());
  EXPECT_FALSE(CheckSetOnHand("A", level, 0).ok());
  absl::Status below = CheckSetOnHand("A", level, 3);
  EXPECT_EQ(below.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(below.message(),
            "on_hand 3 for sku 'A' is below the 4 units reserved for pending orders");
  absl::Status negative = CheckSetOnHand("A", StockLevel{}, -1);
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(negative.message(), "on_hand must be >= 0 for sku 'A', got -1");
  EXPECT_EQ(CheckSetOnHand("A", StockLevel{}, kMaxOnHand + 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StockLedger, RestockNeedsAPositiveQuantityWithinTheLimit) {
  StockLevel level{10, 0};
  EXPECT_TRUE(CheckRestock("A", level, 1).ok());
  EXPECT_EQ(CheckRestock("A", level, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckRestock("A", level, -5).message(),
            "restock quantity must be > 0 for sku 'A', got -5");
  EXPECT_EQ(CheckRestock("A", level, kMaxOnHand).code(), absl::StatusCode::kInvalidArgument);
}

v1::Product Keyboard(int64_t on_hand, int64_t reserved) {
  v1::Product p;
  p.set_sku("KB-1");
  p.set_name("Mechanical keyboard");
  p.mutable_price()->set_amount_minor(8900);
  p.mutable_price()->set_currency("USD");
  p.set_on_hand(on_hand);
  p.set_reserved(reserved);
  p.set_available(on_hand - reserved);
  return p;
}

v1::SetStockRequest SetStock(const std::string& sku, int64_t on_hand) {
  v1::SetStockRequest r;
  r.set_sku(sku);
  r.set_on_hand(on_hand);
  return r;
}

TEST(StockLedger, SetStockOfAKnownSkuKeepsNameAndPrice) {
  absl::StatusOr<SetStockPlan> plan = PlanSetStock(Keyboard(50, 5), SetStock("KB-1", 7));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->created);
  EXPECT_FALSE(plan->catalog_changed);
  EXPECT_EQ(plan->product.on_hand(), 7);
  EXPECT_EQ(plan->product.reserved(), 5);
  EXPECT_EQ(plan->product.available(), 2);
  EXPECT_EQ(plan->product.name(), "Mechanical keyboard");
}

TEST(StockLedger, SetStockWithANewNameOrPriceChangesTheCatalog) {
  v1::SetStockRequest rename = SetStock("KB-1", 50);
  rename.set_name("Keyboard");
  EXPECT_TRUE(PlanSetStock(Keyboard(50, 0), rename)->catalog_changed);
  v1::SetStockRequest same_price = SetStock("KB-1", 50);
  *same_price.mutable_price() = Keyboard(0, 0).price();
  same_price.set_name("Mechanical keyboard");
  EXPECT_FALSE(PlanSetStock(Keyboard(50, 0), same_price)->catalog_changed);
  v1::SetStockRequest reprice = SetStock("KB-1", 50);
  reprice.mutable_price()->set_amount_minor(7900);
  reprice.mutable_price()->set_currency("USD");
  absl::StatusOr<SetStockPlan> plan = PlanSetStock(Keyboard(50, 0), reprice);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->catalog_changed);
  EXPECT_EQ(plan->product.price().amount_minor(), 7900);
}

TEST(StockLedger, SetStockCreatesOnlyWithNameAndPrice) {
  absl::StatusOr<SetStockPlan> unknown = PlanSetStock(std::nullopt, SetStock("NEW-1", 3));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(),
            "unknown sku 'NEW-1' (to create it, give a name and a price)");
  v1::SetStockRequest create = SetStock("NEW-1", 3);
  create.set_name("New thing");
  EXPECT_EQ(PlanSetStock(std::nullopt, create).status().code(), absl::StatusCode::kNotFound);
  create.mutable_price()->set_amount_minor(100);
  create.mutable_price()->set_currency("EUR");
  absl::StatusOr<SetStockPlan> plan = PlanSetStock(std::nullopt, create);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->created);
  EXPECT_TRUE(plan->catalog_changed);
  EXPECT_EQ(plan->product.available(), 3);
}

TEST(StockLedger, SetStockRejectsBadInput) {
  EXPECT_EQ(PlanSetStock(std::nullopt, SetStock("", 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSetStock(Keyboard(5, 0), SetStock("KB-1", -1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSetStock(Keyboard(5, 3), SetStock("KB-1", 2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::SetStockRequest bad_currency = SetStock("KB-1", 5);
  bad_currency.mutable_price()->set_amount_minor(100);
  bad_currency.mutable_price()->set_currency("usd");
  EXPECT_EQ(PlanSetStock(Keyboard(5, 0), bad_currency).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SetStockRequest negative_price = SetStock("KB-1", 5);
  negative_price.mutable_price()->set_amount_minor(-1);
  negative_price.mutable_price()->set_currency("USD");
  EXPECT_EQ(PlanSetStock(Keyboard(5, 0), negative_price).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StockLedger, FormatLinesForLogs) {
  EXPECT_EQ(FormatLines({Line("KB-1", 2), Line("MS-1", 1)}), "KB-1x2,MS-1x1");
  EXPECT_EQ(FormatLines({}), "");
}

}  // namespace
}  // namespace relay::inventory
