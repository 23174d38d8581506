// The handlers driven through TransactionalConsumer::Handle/HandleBatch on a
// real SQLite file, without a broker (the consumer is never started).

#include "services/inventory/inventory_handlers.h"

#include <memory>

#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/store/outbox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/inventory_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::inventory {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using test_util::Cancelled;
using test_util::Confirmed;
using test_util::Created;
using test_util::Line;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Event = events::v1::Event;

class InventoryHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::Database::Open(dir_.Join("inventory.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(InventoryStore::Migrations()), IsOk());
    // The seed catalog, without its product.updated rows: the tests look at
    // what the handlers add to the outbox.
    ASSERT_THAT(db_->Transaction([](store::Tx& tx) -> absl::Status {
      if (auto n = InventoryStore::SeedIfEmpty(tx, absl::Now()); !n.ok()) return n.status();
      return tx.Exec("DELETE FROM outbox");
    }),
                IsOk());
    // Never started: the tests hand it the events. The channel is never
    // connected.
    store::TransactionalConsumer::Options options;
    options.subscriber.topic = "orders";
    options.subscriber.group = "inventory-service";
    // As InventoryApp hooks them: a line is written only after its COMMIT.
    options.before_handle = [this](const Event&) { handlers_.DropUncommitted(); };
    options.after_commit = [this](const Event& e) {
      if (handlers_.Committed(e)) ++committed_;
    };
    consumer_ = std::make_unique<store::TransactionalConsumer>(db_.get(),
                                                               MakeChannel("127.0.0.1:1"), options);
    handlers_.Register(*consumer_);
  }

  absl::Status Handle(const Event& e) { return consumer_->Handle(e, {}); }

  StockLevel Level(const std::string& sku) {
    StockLevel level;
    EXPECT_THAT(db_->Read([&](store::Tx& tx) -> absl::Status {
      auto levels = InventoryStore::Levels(tx, {sku});
      if (!levels.ok()) return levels.status();
      level = levels->at(sku);
      return absl::OkStatus();
    }),
                IsOk());
    return level;
  }

  // "SKU:quantity:STATE" of each reservation of `order_id`, by sku.
  std::vector<std::string> Reservations(const std::string& order_id) {
    std::vector<std::string> out;
    EXPECT_THAT(db_->Read([&](store::Tx& tx) -> absl::Status {
      auto rows = InventoryStore::ReservationsOf(tx, order_id, /*held_only=*/false);
      if (!rows.ok()) return rows.status();
      for (const ReservationRow& r : *rows) {
        out.push_back(absl::StrCat(r.sku, ":", r.quantity, ":",
                                   v1::ReservationState_Name(r.state).substr(18)));
      }
      return absl::OkStatus();
    }),
                IsOk());
    return out;
  }

  std::vector<Event> Outbox() {
    std::vector<Event> events;
    auto rows = test_util::OutboxRows(*db_);
    EXPECT_THAT(rows, IsOk());
    if (!rows.ok()) return events;
    for (auto& [topic, e] : *rows) {
      EXPECT_EQ(topic, "inventory");
      events.push_back(e);
    }
    return events;
  }

  std::vector<std::string> OutboxTypes() {
    std::vector<std::string> types;
    for (const Event& e : Outbox()) types.push_back(e.type());
    return types;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<store::Database> db_;
  InventoryHandlers handlers_;
  std::unique_ptr<store::TransactionalConsumer> consumer_;
  int committed_ = 0;  // log lines written
};

TEST_F(InventoryHandlersTest, ReservesEveryLineAndEmitsStockReserved) {
  Event created = Created("o-1", {Line("KB-1", 2), Line("MS-1", 1)});
  (*created.mutable_headers())["traceparent"] =
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  ASSERT_THAT(Handle(created), IsOk());

  EXPECT_THAT(Reservations("o-1"), ElementsAre("KB-1:2:HELD", "MS-1:1:HELD"));
  EXPECT_EQ(Level("KB-1").reserved, 2);
  EXPECT_EQ(Level("KB-1").on_hand, 50);
  EXPECT_EQ(Level("MS-1").reserved, 1);
  std::vector<Event> out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  const Event& e = out[0];
  EXPECT_EQ(e.type(), "stock.reserved");
  EXPECT_EQ(e.key(), "o-1");
  EXPECT_EQ(e.source(), "inventory-service");
  EXPECT_EQ(e.headers().at("correlation_id"), "o-1");
  EXPECT_EQ(e.headers().at("causation_id"), created.id());
  EXPECT_THAT(e.headers().at("traceparent"),
              ::testing::MatchesRegex("00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01"));
  EXPECT_NE(e.headers().at("traceparent"), created.headers().at("traceparent"));
  auto reserved = test_util::Payload<events::v1::StockReserved>(e);
  EXPECT_EQ(reserved.order_id(), "o-1");
  ASSERT_EQ(reserved.lines_size(), 2);
  EXPECT_EQ(reserved.lines(0).sku(), "KB-1");
  EXPECT_EQ(reserved.lines(0).quantity(), 2);
  EXPECT_EQ(reserved.lines(1).sku(), "MS-1");
  EXPECT_EQ(reserved.lines(1).quantity(), 1);
}

TEST_F(InventoryHandlersTest, AShortLineReservesNothingAndEmitsStockRejected) {
  Event created = Created("o-2", {Line("KB-1", 1), Line("GPU-1", 2)});
  ASSERT_THAT(Handle(created), IsOk());

  EXPECT_THAT(Reservations("o-2"), IsEmpty());
  EXPECT_EQ(Level("KB-1").reserved, 0);
  EXPECT_EQ(Level("GPU-1").reserved, 0);
  std::vector<Event> out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type(), "stock.rejected");
  EXPECT_EQ(out[0].key(), "o-2");
  EXPECT_EQ(out[0].headers().at("causation_id"), created.id());
  auto rejected = test_util::Payload<events::v1::StockRejected>(out[0]);
  EXPECT_EQ(rejected.order_id(), "o-2");
  EXPECT_EQ(rejected.sku(), "GPU-1");
  EXPECT_EQ(rejected.requested(), 2);
  EXPECT_EQ(rejected.available(), 1);
  EXPECT_EQ(rejected.reason(), "out of stock: sku GPU-1 (wanted 2, 1 left)");
}

TEST_F(InventoryHandlersTest, AnUnknownSkuIsRejected) {
  ASSERT_THAT(Handle(Created("o-3", {Line("NOPE-9", 1)})), IsOk());
  std::vector<Event> out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  auto rejected = test_util::Payload<events::v1::StockRejected>(out[0]);
  EXPECT_EQ(rejected.sku(), "NOPE-9");
  EXPECT_EQ(rejected.reason(), "unknown sku NOPE-9");
}

TEST_F(InventoryHandlersTest, TheSameOrderCreatedTwiceHasOneEffect) {
  Event created = Created("o-4", {Line("KB-1", 2)});
  ASSERT_THAT(Handle(created), IsOk());
  ASSERT_THAT(Handle(created), IsOk());  // a redelivery: the inbox absorbs it
  // The same order announced again under a new event id: already decided.
  ASSERT_THAT(Handle(Created("o-4", {Line("KB-1", 2)})), IsOk());

  EXPECT_THAT(Reservations("o-4"), ElementsAre("KB-1:2:HELD"));
  EXPECT_EQ(Level("KB-1").reserved, 2);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved"));
  EXPECT_EQ(consumer_->stats().duplicates, 1u);
  EXPECT_EQ(consumer_->stats().handled, 2u);
}

TEST_F(InventoryHandlersTest, ConfirmCommitsTheHeldStock) {
  ASSERT_THAT(Handle(Created("o-5", {Line("KB-1", 2), Line("HD-1", 3)})), IsOk());
  Event confirmed = Confirmed("o-5");
  ASSERT_THAT(Handle(confirmed), IsOk());

  EXPECT_THAT(Reservations("o-5"), ElementsAre("HD-1:3:COMMITTED", "KB-1:2:COMMITTED"));
  EXPECT_EQ(Level("KB-1").on_hand, 48);
  EXPECT_EQ(Level("KB-1").reserved, 0);
  EXPECT_EQ(Level("HD-1").on_hand, 27);
  EXPECT_EQ(Level("HD-1").reserved, 0);

  // Again, redelivered or under a new id: the stock is sold only once.
  ASSERT_THAT(Handle(confirmed), IsOk());
  ASSERT_THAT(Handle(Confirmed("o-5")), IsOk());
  EXPECT_EQ(Level("KB-1").on_hand, 48);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved"));
}

TEST_F(InventoryHandlersTest, CancelReleasesTheHeldStockExactlyOnce) {
  ASSERT_THAT(Handle(Created("o-6", {Line("MN-27", 4)})), IsOk());
  EXPECT_EQ(Level("MN-27").reserved, 4);
  Event cancelled = Cancelled("o-6", "cancelled by the customer");
  ASSERT_THAT(Handle(cancelled), IsOk());

  EXPECT_THAT(Reservations("o-6"), ElementsAre("MN-27:4:RELEASED"));
  EXPECT_EQ(Level("MN-27").reserved, 0);
  EXPECT_EQ(Level("MN-27").on_hand, 20);
  std::vector<Event> out = Outbox();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].type(), "stock.released");
  EXPECT_EQ(out[1].key(), "o-6");
  EXPECT_EQ(out[1].headers().at("correlation_id"), "o-6");
  EXPECT_EQ(out[1].headers().at("causation_id"), cancelled.id());
  auto released = test_util::Payload<events::v1::StockReleased>(out[1]);
  EXPECT_EQ(released.order_id(), "o-6");
  ASSERT_EQ(released.lines_size(), 1);
  EXPECT_EQ(released.lines(0).sku(), "MN-27");
  EXPECT_EQ(released.lines(0).quantity(), 4);
  EXPECT_EQ(released.reason(), "cancelled by the customer");

  ASSERT_THAT(Handle(cancelled), IsOk());
  ASSERT_THAT(Handle(Cancelled("o-6", "again")), IsOk());
  EXPECT_EQ(Level("MN-27").reserved, 0);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved", "stock.released"));
}

TEST_F(InventoryHandlersTest, CancelAfterARejectionDoesNothing) {
  ASSERT_THAT(Handle(Created("o-7", {Line("GPU-1", 5)})), IsOk());
  ASSERT_THAT(Handle(Cancelled("o-7", "out of stock: sku GPU-1 (wanted 5, 1 left)")), IsOk());
  EXPECT_THAT(Reservations("o-7"), IsEmpty());
  EXPECT_EQ(Level("GPU-1").reserved, 0);
  EXPECT_EQ(Level("GPU-1").on_hand, 1);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.rejected"));
}

TEST_F(InventoryHandlersTest, AnOrderCreatedReplayedAfterItsCancelHoldsNothing) {
  // Rejected, then cancelled; an operator replays the order.created (under a
  // new event id) once the stock would fit.
  ASSERT_THAT(Handle(Created("o-7", {Line("GPU-1", 5)})), IsOk());
  ASSERT_THAT(Handle(Cancelled("o-7", "out of stock")), IsOk());
  ASSERT_THAT(Handle(Created("o-7", {Line("GPU-1", 1)})), IsOk());
  // Dead-lettered here before it was handled, and its order timed out.
  ASSERT_THAT(Handle(Cancelled("o-9", "timeout")), IsOk());
  ASSERT_THAT(Handle(Created("o-9", {Line("KB-1", 1)})), IsOk());

  EXPECT_THAT(Reservations("o-7"), IsEmpty());
  EXPECT_THAT(Reservations("o-9"), IsEmpty());
  EXPECT_EQ(Level("GPU-1").reserved, 0);
  EXPECT_EQ(Level("KB-1").reserved, 0);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.rejected"));
  // Only those orders are closed.
  ASSERT_THAT(Handle(Created("o-10", {Line("GPU-1", 1)})), IsOk());
  EXPECT_EQ(Level("GPU-1").reserved, 1);
}

TEST_F(InventoryHandlersTest, CancelAfterConfirmLeavesTheSaleAlone) {
  ASSERT_THAT(Handle(Created("o-8", {Line("WC-1", 1)})), IsOk());
  ASSERT_THAT(Handle(Confirmed("o-8")), IsOk());
  ASSERT_THAT(Handle(Cancelled("o-8", "too late")), IsOk());
  EXPECT_THAT(Reservations("o-8"), ElementsAre("WC-1:1:COMMITTED"));
  EXPECT_EQ(Level("WC-1").on_hand, 24);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved"));
}

TEST_F(InventoryHandlersTest, ConfirmOrCancelOfAnUnknownOrderDoesNothing) {
  ASSERT_THAT(Handle(Confirmed("o-unknown")), IsOk());
  ASSERT_THAT(Handle(Cancelled("o-unknown", "whatever")), IsOk());
  EXPECT_THAT(Reservations("o-unknown"), IsEmpty());
  EXPECT_THAT(Outbox(), IsEmpty());
  for (const char* sku : {"KB-1", "MS-1", "GPU-1"}) EXPECT_EQ(Level(sku).reserved, 0);
}

TEST_F(InventoryHandlersTest, TheLastUnitGoesToTheFirstOrder) {
  ASSERT_THAT(Handle(Created("o-first", {Line("GPU-1", 1)})), IsOk());
  ASSERT_THAT(Handle(Created("o-second", {Line("GPU-1", 1)})), IsOk());
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved", "stock.rejected"));
  EXPECT_EQ(test_util::Payload<events::v1::StockRejected>(Outbox()[1]).reason(),
            "out of stock: sku GPU-1 (wanted 1, 0 left)");
  // Once the first is cancelled, the unit can be reserved again.
  ASSERT_THAT(Handle(Cancelled("o-first", "customer")), IsOk());
  ASSERT_THAT(Handle(Created("o-third", {Line("GPU-1", 1)})), IsOk());
  EXPECT_THAT(Reservations("o-third"), ElementsAre("GPU-1:1:HELD"));
}

TEST_F(InventoryHandlersTest, AnEventWithoutAnOrderIdFailsAndChangesNothing) {
  events::v1::OrderCreated m;
  m.add_lines()->set_sku("KB-1");
  m.mutable_lines(0)->set_quantity(1);
  Event e = test_util::OrderEventFor("order.created", "", m);
  EXPECT_THAT(Handle(e), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names no order")));
  EXPECT_EQ(Level("KB-1").reserved, 0);
  EXPECT_THAT(Outbox(), IsEmpty());
  EXPECT_EQ(consumer_->stats().failed, 1u);
}

TEST_F(InventoryHandlersTest, ABatchCommitsTogetherAndAFailingEventRollsBackOnlyItself) {
  Event first = Created("o-10", {Line("KB-1", 1)});
  Event broken = Created("o-11", {Line("KB-1", 1)});
  broken.set_data("\xff\xff not a protobuf");
  Event cancel_first = Cancelled("o-10", "customer");
  Event third = Created("o-12", {Line("SSD-1", 2)});
  std::vector<store::TransactionalConsumer::Delivery> batch = {
      {&first, {}}, {&broken, {}}, {&cancel_first, {}}, {&third, {}}};
  std::vector<absl::Status> statuses = consumer_->HandleBatch(batch);
  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_THAT(statuses[0], IsOk());
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parse")));
  EXPECT_THAT(statuses[2], IsOk());
  EXPECT_THAT(statuses[3], IsOk());
  // Three handled and committed; the broken one was never applied.
  EXPECT_EQ(committed_, 3);

  EXPECT_THAT(Reservations("o-10"), ElementsAre("KB-1:1:RELEASED"));
  EXPECT_THAT(Reservations("o-11"), IsEmpty());
  EXPECT_THAT(Reservations("o-12"), ElementsAre("SSD-1:2:HELD"));
  EXPECT_EQ(Level("KB-1").reserved, 0);
  EXPECT_THAT(OutboxTypes(), ElementsAre("stock.reserved", "stock.released", "stock.reserved"));
}

TEST_F(InventoryHandlersTest, OnlyEventsWhoseEffectsCommittedAreLogged) {
  Event created = Created("o-20", {Line("KB-1", 1)});
  ASSERT_THAT(Handle(created), IsOk());
  EXPECT_EQ(committed_, 1);
  // A redelivery: no handler ran, nothing to log.
  ASSERT_THAT(Handle(created), IsOk());
  EXPECT_EQ(committed_, 1);
  // A handler that ran but whose transaction then failed (as a failed
  // COMMIT would): the next event's handling drops its line.
  Event cancelled = Cancelled("o-20", "customer");
  absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
    events::v1::OrderCancelled m;
    EXPECT_TRUE(m.ParseFromString(cancelled.data()));
    if (absl::Status h = handlers_.OrderCancelled(tx, m, cancelled); !h.ok()) return h;
    return absl::AbortedError("commit failed");
  });
  ASSERT_THAT(s, StatusIs(absl::StatusCode::kAborted, HasSubstr("commit failed")));
  ASSERT_THAT(Handle(Created("o-21", {Line("MS-1", 1)})), IsOk());
  EXPECT_EQ(committed_, 2);
  EXPECT_FALSE(handlers_.Committed(cancelled));
  EXPECT_EQ(Level("KB-1").reserved, 1);
}

}  // namespace
}  // namespace relay::inventory
