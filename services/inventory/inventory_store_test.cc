#include "services/inventory/inventory_store.h"

#include <memory>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::inventory {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class InventoryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::Database::Open(dir_.Join("inventory.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(InventoryStore::Migrations()), IsOk());
  }

  absl::StatusOr<int> Seed() {
    int n = 0;
    absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
      absl::StatusOr<int> seeded = InventoryStore::SeedIfEmpty(tx, absl::Now());
      if (!seeded.ok()) return seeded.status();
      n = *seeded;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return n;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<store::Database> db_;
};

TEST_F(InventoryStoreTest, SeedsTenProductsWithTheirProductUpdatedEventsOnce) {
  EXPECT_THAT(Seed(), IsOkAndHolds(10));
  auto rows = test_util::OutboxRows(*db_);
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->size(), 10u);
  for (const auto& [topic, event] : *rows) {
    EXPECT_EQ(topic, "inventory");
    EXPECT_EQ(event.type(), "product.updated");
    EXPECT_EQ(event.source(), "inventory-service");
    EXPECT_FALSE(event.id().empty());
    auto payload = test_util::Payload<events::v1::ProductUpdated>(event);
    EXPECT_EQ(payload.sku(), event.key());
    EXPECT_EQ(payload.price().currency(), "USD");
  }
  EXPECT_THAT(Seed(), IsOkAndHolds(0));
  rows = test_util::OutboxRows(*db_);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->size(), 10u);

  ASSERT_THAT(db_->Read([](store::Tx& tx) -> absl::Status {
    auto gpu = InventoryStore::GetProduct(tx, "GPU-1");
    if (!gpu.ok()) return gpu.status();
    EXPECT_TRUE(gpu->has_value());
    EXPECT_EQ((*gpu)->on_hand(), 1);
    EXPECT_EQ((*gpu)->name(), "Graphics card");
    EXPECT_EQ((*gpu)->price().amount_minor(), 29900);
    return absl::OkStatus();
  }),
              IsOk());
}

TEST_F(InventoryStoreTest, MigratingAgainAfterReopenKeepsTheData) {
  ASSERT_THAT(Seed(), IsOkAndHolds(10));
  db_.reset();
  auto db = store::Database::Open(dir_.Join("inventory.db"), {});
  ASSERT_THAT(db, IsOk());
  db_ = std::move(*db);
  ASSERT_THAT(db_->Migrate(InventoryStore::Migrations()), IsOk());
  EXPECT_THAT(Seed(), IsOkAndHolds(0));
}

TEST_F(InventoryStoreTest, TheSchemaRefusesAReservationAboveOnHand) {
  ASSERT_THAT(Seed(), IsOk());
  absl::Status s = db_->Transaction([](store::Tx& tx) {
    return InventoryStore::SetLevel(tx, "GPU-1", StockLevel{1, 2}, absl::Now());
  });
  EXPECT_FALSE(s.ok());
  s = db_->Transaction([](store::Tx& tx) {
    return InventoryStore::SetLevel(tx, "NOPE", StockLevel{1, 0}, absl::Now());
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("NOPE")));
}

// "order/sku" of the reservations ListReservations returns for the filter.
std::vector<std::string> List(store::Database& db, const std::string& order_id, bool held_only,
                              int64_t limit = 100) {
  ReservationFilter filter;
  filter.order_id = order_id;
  filter.held_only = held_only;
  filter.limit = limit;
  std::vector<std::string> out;
  EXPECT_THAT(db.Read([&](store::Tx& tx) -> absl::Status {
    auto rows = InventoryStore::ListReservations(tx, filter);
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) out.push_back(r.order_id() + "/" + r.sku());
    return absl::OkStatus();
  }),
              IsOk());
  return out;
}

TEST_F(InventoryStoreTest, AReservationIsUniquePerOrderAndSku) {
  ASSERT_THAT(Seed(), IsOk());
  const ReservationRow row{"o-1", "KB-1", 1, v1::RESERVATION_STATE_HELD};
  absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
    if (absl::Status first = InventoryStore::InsertReservation(tx, row, absl::Now()); !first.ok()) {
      return first;
    }
    return InventoryStore::InsertReservation(tx, row, absl::Now());
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("o-1")));
  EXPECT_THAT(List(*db_, "", false), IsEmpty());  // the whole transaction rolled back
}

TEST_F(InventoryStoreTest, ReservationsAreListedNewestFirstWithFilters) {
  ASSERT_THAT(Seed(), IsOk());
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const std::vector<std::pair<ReservationRow, absl::Time>> rows = {
      {{"o-1", "KB-1", 2, v1::RESERVATION_STATE_HELD}, t0},
      {{"o-1", "MS-1", 1, v1::RESERVATION_STATE_HELD}, t0},
      {{"o-2", "KB-1", 1, v1::RESERVATION_STATE_HELD}, t0 + absl::Seconds(1)},
      {{"o-3", "HD-1", 1, v1::RESERVATION_STATE_HELD}, t0 + absl::Seconds(2)},
  };
  ASSERT_THAT(db_->Transaction([&](store::Tx& tx) -> absl::Status {
    for (const auto& [row, t] : rows) {
      if (absl::Status s = InventoryStore::InsertReservation(tx, row, t); !s.ok()) return s;
    }
    return InventoryStore::SetReservationState(tx, "o-2", "KB-1", v1::RESERVATION_STATE_RELEASED,
                                               t0 + absl::Seconds(3));
  }),
              IsOk());
  EXPECT_THAT(List(*db_, "", false), ElementsAre("o-3/HD-1", "o-2/KB-1", "o-1/KB-1", "o-1/MS-1"));
  EXPECT_THAT(List(*db_, "", true), ElementsAre("o-3/HD-1", "o-1/KB-1", "o-1/MS-1"));
  EXPECT_THAT(List(*db_, "o-1", false), ElementsAre("o-1/KB-1", "o-1/MS-1"));
  EXPECT_THAT(List(*db_, "o-2", true), IsEmpty());
  EXPECT_THAT(List(*db_, "", false, 2), ElementsAre("o-3/HD-1", "o-2/KB-1"));

  ASSERT_THAT(db_->Read([](store::Tx& tx) -> absl::Status {
    auto held = InventoryStore::ReservationsOf(tx, "o-2", /*held_only=*/true);
    if (!held.ok()) return held.status();
    EXPECT_TRUE(held->empty());
    auto any = InventoryStore::ReservationsOf(tx, "o-2", /*held_only=*/false);
    if (!any.ok()) return any.status();
    EXPECT_EQ(any->size(), 1u);
    EXPECT_EQ((*any)[0].state, v1::RESERVATION_STATE_RELEASED);
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(db_->Transaction([](store::Tx& tx) {
    return InventoryStore::SetReservationState(tx, "o-9", "KB-1", v1::RESERVATION_STATE_HELD,
                                               absl::Now());
  }),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("o-9")));
}

TEST(InventoryEvents, OrderEventsCarryKeyCorrelationCausationAndTraceparent) {
  events::v1::Event cause = test_util::Created("o-7", {test_util::Line("KB-1", 1)});
  (*cause.mutable_headers())["traceparent"] =
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  events::v1::StockReserved payload;
  payload.set_order_id("o-7");
  events::v1::Event e = OrderEvent("stock.reserved", "o-7", cause, payload);
  EXPECT_EQ(e.type(), "stock.reserved");
  EXPECT_EQ(e.key(), "o-7");
  EXPECT_EQ(e.source(), "inventory-service");
  EXPECT_EQ(e.headers().at("correlation_id"), "o-7");
  EXPECT_EQ(e.headers().at("causation_id"), cause.id());
  // The same trace, as a new span of it.
  EXPECT_THAT(e.headers().at("traceparent"),
              ::testing::MatchesRegex("00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01"));
  EXPECT_NE(e.headers().at("traceparent"), cause.headers().at("traceparent"));
  // A header that is not a traceparent is not carried on.
  (*cause.mutable_headers())["traceparent"] = "00-abc-def-01";
  EXPECT_EQ(OrderEvent("stock.reserved", "o-7", cause, payload).headers().count("traceparent"), 0u);
  EXPECT_EQ(test_util::Payload<events::v1::StockReserved>(e).order_id(), "o-7");
}

TEST(InventoryEvents, FormatMoney) {
  EXPECT_EQ(FormatMoney(8900, "USD"), "89.00 USD");
  EXPECT_EQ(FormatMoney(950, "USD"), "9.50 USD");
  EXPECT_EQ(FormatMoney(5, "EUR"), "0.05 EUR");
  EXPECT_EQ(FormatMoney(-1250, "USD"), "-12.50 USD");
}

}  // namespace
}  // namespace relay::inventory
