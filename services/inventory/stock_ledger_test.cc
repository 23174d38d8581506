#include "services/inventory/stock_ledger.h"

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

}  // namespace
}  // namespace relay::inventory
