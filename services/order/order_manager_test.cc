// OrderManager on a real SQLite file, its handlers driven through
// TransactionalConsumer::Handle (no broker needed).

#include "services/order/order_manager.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_server.h"
#include "common/ids.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/order/order_store.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::order {
namespace {

using ::relay::testing::MetricNow;

using events::v1::Event;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::IsOkAndHolds;
using testing::StatusIs;
using testing::WaitFor;

class OrderManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::Database::Open(dir_.Join("orders.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(OrderStore::Migrations()), IsOk());
    // The clock seam: tests move time by `skew_` instead of waiting.
    manager_ = std::make_unique<OrderManager>(db_.get(), nullptr, nullptr,
                                              [this] { return absl::Now() + skew_; });
    store::TransactionalConsumer::Options o;
    o.subscriber.topic = "inventory";
    o.subscriber.group = "order-service";
    // Never started: the tests call Handle() directly.
    inventory_ =
        std::make_unique<store::TransactionalConsumer>(db_.get(), MakeChannel("127.0.0.1:1"), o);
    manager_->RegisterInventoryHandlers(*inventory_);
    o.subscriber.topic = "payments";
    payments_ =
        std::make_unique<store::TransactionalConsumer>(db_.get(), MakeChannel("127.0.0.1:1"), o);
    manager_->RegisterPaymentHandlers(*payments_);
    AddProduct("KB-1", "Keyboard", 8900);
    AddProduct("MS-1", "Mouse", 2500);
  }

  template <typename M>
  Event MakeEvent(const std::string& type, const M& payload, const std::string& key) {
    Event e;
    e.set_id(NewEventId());
    e.set_type(type);
    e.set_key(key);
    e.set_data(payload.SerializeAsString());
    return e;
  }

  void AddProduct(const std::string& sku, const std::string& name, int64_t price) {
    events::v1::ProductUpdated p;
    p.set_sku(sku);
    p.set_name(name);
    p.mutable_price()->set_amount_minor(price);
    p.mutable_price()->set_currency("USD");
    ASSERT_THAT(inventory_->Handle(MakeEvent("product.updated", p, sku), {}), IsOk());
  }

  v1::PlaceOrderRequest Request(const std::string& key = "") {
    v1::PlaceOrderRequest r;
    r.set_customer_id("c-alice");
    auto* i = r.add_items();
    i->set_sku("KB-1");
    i->set_quantity(2);
    i = r.add_items();
    i->set_sku("MS-1");
    i->set_quantity(1);
    r.set_idempotency_key(key);
    return r;
  }

  // The outbox rows as (topic, event).
  std::vector<std::pair<std::string, Event>> Outbox() {
    std::vector<std::pair<std::string, Event>> rows;
    EXPECT_THAT(db_->Read([&](store::Tx& tx) -> absl::Status {
      auto st = tx.Prepare("SELECT topic, event FROM outbox ORDER BY seq");
      if (!st.ok()) return st.status();
      while (true) {
        auto row = st->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        Event e;
        e.ParseFromString(st->ColumnBlob(1));
        rows.emplace_back(st->ColumnText(0), e);
      }
      return absl::OkStatus();
    }),
                IsOk());
    return rows;
  }

  Event Reserved(const std::string& order_id) {
    events::v1::StockReserved m;
    m.set_order_id(order_id);
    return MakeEvent("stock.reserved", m, order_id);
  }
  Event Captured(const std::string& order_id) {
    events::v1::PaymentCaptured m;
    m.set_order_id(order_id);
    return MakeEvent("payment.captured", m, order_id);
  }

  relay::testing::TempDir dir_;
  absl::Duration skew_;  // written only while no Place() is in flight
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<OrderManager> manager_;
  std::unique_ptr<store::TransactionalConsumer> inventory_;
  std::unique_ptr<store::TransactionalConsumer> payments_;
};

TEST_F(OrderManagerTest, PlaceStoresPendingOrderWithItsOrderCreatedEvent) {
  auto placed = manager_->Place(Request());
  ASSERT_THAT(placed, IsOk());
  const v1::Order& o = placed->order;
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_PENDING);
  EXPECT_EQ(o.total().amount_minor(), 2 * 8900 + 2500);
  EXPECT_EQ(o.total().currency(), "USD");
  ASSERT_EQ(o.lines_size(), 2);
  EXPECT_EQ(o.lines(0).name(), "Keyboard");

  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first, "orders");
  const Event& e = rows[0].second;
  EXPECT_EQ(e.type(), "order.created");
  EXPECT_EQ(e.key(), o.order_id());
  EXPECT_EQ(e.headers().at("correlation_id"), o.order_id());
  // The order's trace starts here; its id is the order id's bits.
  EXPECT_THAT(
      e.headers().at("traceparent"),
      ::testing::MatchesRegex(absl::StrCat("00-", *IdBitsHex(o.order_id()), "-[0-9a-f]{16}-01")));
  events::v1::OrderCreated created;
  ASSERT_TRUE(created.ParseFromString(e.data()));
  EXPECT_EQ(created.total().amount_minor(), o.total().amount_minor());
  EXPECT_EQ(created.lines_size(), 2);
}

TEST_F(OrderManagerTest, BadItemsAreRejectedAndStoreNothing) {
  v1::PlaceOrderRequest r = Request();
  r.mutable_items(0)->set_quantity(0);
  EXPECT_THAT(manager_->Place(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quantity")));
  r = Request();
  r.mutable_items(1)->set_sku("NOPE");
  EXPECT_THAT(manager_->Place(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown sku 'NOPE'")));
  r = Request();
  r.mutable_items(1)->set_sku("KB-1");
  EXPECT_THAT(manager_->Place(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  r = Request();
  r.clear_customer_id();
  EXPECT_THAT(manager_->Place(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("customer_id")));
  r = Request();
  r.clear_items();
  EXPECT_THAT(manager_->Place(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one")));
  EXPECT_TRUE(Outbox().empty());
  auto list = manager_->List({});
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->orders_size(), 0);
}

TEST_F(OrderManagerTest, SameIdempotencyKeyReturnsTheSameOrder) {
  auto first = manager_->Place(Request("key-1"));
  auto second = manager_->Place(Request("key-1"));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(second->replayed);
  EXPECT_EQ(first->order.order_id(), second->order.order_id());
  EXPECT_EQ(Outbox().size(), 1u);
}

TEST_F(OrderManagerTest, BothPositiveOutcomesConfirmInEitherOrder) {
  auto a = manager_->Place(Request());
  auto b = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_THAT(inventory_->Handle(Reserved(a->order.order_id()), {}), IsOk());
  ASSERT_THAT(payments_->Handle(Captured(a->order.order_id()), {}), IsOk());
  ASSERT_THAT(payments_->Handle(Captured(b->order.order_id()), {}), IsOk());
  ASSERT_THAT(inventory_->Handle(Reserved(b->order.order_id()), {}), IsOk());
  for (const auto* p : {&*a, &*b}) {
    auto o = manager_->Get(p->order.order_id());
    ASSERT_THAT(o, IsOk());
    EXPECT_EQ(o->status(), v1::ORDER_STATUS_CONFIRMED);
  }
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[2].second.type(), "order.confirmed");
  EXPECT_EQ(rows[3].second.type(), "order.confirmed");
  EXPECT_FALSE(rows[2].second.headers().at("causation_id").empty());
}

TEST_F(OrderManagerTest, RedeliveredEventHasNoSecondEffect) {
  auto a = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  Event reserved = Reserved(a->order.order_id());
  Event captured = Captured(a->order.order_id());
  ASSERT_THAT(inventory_->Handle(reserved, {}), IsOk());
  ASSERT_THAT(payments_->Handle(captured, {}), IsOk());
  ASSERT_THAT(payments_->Handle(captured, {}), IsOk());
  ASSERT_THAT(inventory_->Handle(reserved, {}), IsOk());
  EXPECT_EQ(Outbox().size(), 2u);  // order.created, one order.confirmed
  EXPECT_GE(payments_->stats().duplicates, 1u);
}

TEST_F(OrderManagerTest, DeclineCancelsWithReasonAndLateCaptureDoesNotConfirm) {
  auto a = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  const std::string id = a->order.order_id();
  events::v1::PaymentDeclined d;
  d.set_order_id(id);
  d.set_reason("insufficient funds");
  ASSERT_THAT(payments_->Handle(MakeEvent("payment.declined", d, id), {}), IsOk());
  ASSERT_THAT(inventory_->Handle(Reserved(id), {}), IsOk());
  auto o = manager_->Get(id);
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o->cancel_cause(), events::v1::CANCEL_CAUSE_PAYMENT_DECLINED);
  EXPECT_THAT(o->cancel_reason(), HasSubstr("insufficient funds"));
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].second.type(), "order.cancelled");
}

TEST_F(OrderManagerTest, CustomerCancelWhilePendingAndNotAfterConfirm) {
  auto a = manager_->Place(Request());
  auto b = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  auto cancelled = manager_->Cancel(a->order.order_id(), "changed my mind");
  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->status(), v1::ORDER_STATUS_CANCELLED);
  ASSERT_THAT(inventory_->Handle(Reserved(b->order.order_id()), {}), IsOk());
  ASSERT_THAT(payments_->Handle(Captured(b->order.order_id()), {}), IsOk());
  EXPECT_THAT(manager_->Cancel(b->order.order_id(), ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CONFIRMED")));
  EXPECT_THAT(manager_->Cancel("ord-nope", ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("ord-nope")));
}

TEST_F(OrderManagerTest, ListPagesNewestFirstAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto p = manager_->Place(Request());
    ASSERT_THAT(p, IsOk());
    ids.push_back(p->order.order_id());
  }
  ASSERT_THAT(manager_->Cancel(ids[1], ""), IsOk());
  v1::ListOrdersRequest req;
  req.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto r = manager_->List(req);
    ASSERT_THAT(r, IsOk());
    for (const auto& o : r->orders()) seen.push_back(o.order_id());
    if (r->next_page_token().empty()) break;
    req.set_page_token(r->next_page_token());
  }
  EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));
  v1::ListOrdersRequest cancelled;
  cancelled.set_status(v1::ORDER_STATUS_CANCELLED);
  auto r = manager_->List(cancelled);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->orders_size(), 1);
  EXPECT_EQ(r->orders(0).order_id(), ids[1]);
  v1::ListOrdersRequest bad;
  bad.set_page_token("garbage");
  EXPECT_THAT(manager_->List(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

TEST_F(OrderManagerTest, ConcurrentPlacesCommitTogetherAndKeepIdempotency) {
  // 8 clients place the same 20 keyed orders at once: group commit puts many
  // in one transaction, and a key seen earlier in the same batch replays.
  constexpr int kClients = 8, kOrders = 20;
  std::vector<std::vector<std::string>> ids(kClients, std::vector<std::string>(kOrders));
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kOrders; ++i) {
        auto placed = manager_->Place(Request(absl::StrCat("key-", i)));
        if (placed.ok()) ids[c][i] = placed->order.order_id();
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < kOrders; ++i) {
    for (int c = 0; c < kClients; ++c) {
      ASSERT_FALSE(ids[c][i].empty());
      EXPECT_EQ(ids[c][i], ids[0][i]) << "key-" << i;
    }
  }
  v1::ListOrdersRequest all;
  all.set_page_size(1000);
  auto list = manager_->List(all);
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->orders_size(), kOrders);
  EXPECT_EQ(Outbox().size(), static_cast<size_t>(kOrders));
}

// While the database is held (a stalled disk, another connection's lock),
// PlaceOrder calls wait in a bounded queue: past kMaxQueuedPlaces they are
// refused at once instead of held without end; and a call whose caller gave
// up (deadline past) while it waited stores no order, even when the
// committing thread had already taken it and was waiting for the database.
TEST_F(OrderManagerTest, WaitingPlacesAreBoundedAndThoseWhoseCallerLeftStoreNothing) {
  absl::Notification holding, release;
  std::thread holder([&] {
    EXPECT_THAT(db_->Transaction([&](store::Tx&) {
      holding.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    }),
                IsOk());
  });
  holding.WaitForNotification();

  absl::Mutex mu;
  int ok = 0, exhausted = 0, late = 0, other = 0;
  auto count = [&](absl::StatusOr<OrderManager::PlaceResult> r) {
    absl::MutexLock lock(&mu);
    if (r.ok()) {
      ++ok;
    } else if (absl::IsResourceExhausted(r.status())) {
      ++exhausted;
      EXPECT_THAT(r.status().message(), HasSubstr("waiting to be stored (the limit)"));
    } else if (absl::IsDeadlineExceeded(r.status())) {
      ++late;
    } else {
      ++other;
      ADD_FAILURE() << r.status();
    }
  };
  // One caller whose deadline passes while the committing thread, its order
  // in hand, waits for the database; then more than fit.
  const absl::Time deadline = absl::Now() + absl::Milliseconds(100);
  manager_->PlaceAsync(Request("left"), count, deadline);
  // The committing thread holds at most one batch (256) besides the queue.
  const int calls = static_cast<int>(OrderManager::kMaxQueuedPlaces) + 256 + 50;
  for (int i = 0; i < calls; ++i) manager_->PlaceAsync(Request(), count);
  {
    absl::MutexLock lock(&mu);
    EXPECT_GE(exhausted, 50);  // answered at once, while the database is held
    EXPECT_EQ(ok, 0);
  }
  // The deadline passes while the database is still held.
  ASSERT_TRUE(WaitFor([&] { return absl::Now() > deadline; }, absl::Seconds(10)));
  release.Notify();
  holder.join();
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return ok + exhausted + late + other == calls + 1;
      },
      absl::Seconds(60)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(late, 1);
  EXPECT_EQ(other, 0);
  // Every order answered OK is stored, and only those: the one whose caller
  // left is not (its key was never used).
  EXPECT_EQ(Outbox().size(), static_cast<size_t>(ok));
  absl::StatusOr<OrderManager::PlaceResult> again = manager_->Place(Request("left"));
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->replayed);
}

TEST(OrderManagerEmptyCatalog, PlaceIsUnavailableUntilTheCatalogArrives) {
  relay::testing::TempDir dir;
  auto db = store::Database::Open(dir.Join("o.db"), {});
  ASSERT_THAT(db, IsOk());
  ASSERT_THAT((*db)->Migrate(OrderStore::Migrations()), IsOk());
  OrderManager manager(db->get(), nullptr, nullptr);
  v1::PlaceOrderRequest r;
  r.set_customer_id("c");
  r.add_items()->set_sku("KB-1");
  r.mutable_items(0)->set_quantity(1);
  EXPECT_THAT(manager.Place(r), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("catalog")));
}

// ------------------------------------------------------------ saga timeout

// Issue 10: orders placed, ended by status and bounded reason, the saga's
// duration, and the orders pending now.
TEST_F(OrderManagerTest, MetricsCountOrdersPlacedEndedAndPending) {
  auto ended = [](const std::string& status, const std::string& reason) {
    return MetricNow(
        absl::StrCat("relay_order_ended_total{status=\"", status, "\",reason=\"", reason, "\"}"));
  };
  const double placed = MetricNow("relay_order_placed_total");
  const double confirmed = ended("confirmed", "none");
  const double declined = ended("cancelled", "payment_declined");
  const double by_customer = ended("cancelled", "customer");
  const double timed_out = ended("cancelled", "timeout");
  const double sagas = MetricNow("relay_order_saga_seconds_count");

  auto a = manager_->Place(Request());
  auto b = manager_->Place(Request());
  auto c = manager_->Place(Request());
  auto d = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_THAT(c, IsOk());
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(MetricNow("relay_order_pending_orders"), 4);
  ASSERT_THAT(inventory_->Handle(Reserved(a->order.order_id()), {}), IsOk());
  ASSERT_THAT(payments_->Handle(Captured(a->order.order_id()), {}), IsOk());
  events::v1::PaymentDeclined no;
  no.set_order_id(b->order.order_id());
  no.set_reason("insufficient funds");
  ASSERT_THAT(payments_->Handle(MakeEvent("payment.declined", no, b->order.order_id()), {}),
              IsOk());
  ASSERT_THAT(manager_->Cancel(c->order.order_id(), "changed my mind"), IsOk());
  skew_ = absl::Minutes(6);
  ASSERT_THAT(manager_->CancelTimedOut(absl::Minutes(5)), IsOkAndHolds(1));

  EXPECT_EQ(MetricNow("relay_order_placed_total") - placed, 4);
  EXPECT_EQ(ended("confirmed", "none") - confirmed, 1);
  EXPECT_EQ(ended("cancelled", "payment_declined") - declined, 1);
  EXPECT_EQ(ended("cancelled", "customer") - by_customer, 1);
  EXPECT_EQ(ended("cancelled", "timeout") - timed_out, 1);
  EXPECT_EQ(MetricNow("relay_order_saga_seconds_count") - sagas, 4);
  EXPECT_EQ(MetricNow("relay_order_pending_orders"), 0);
  // A late outcome on an ended order counts nothing more.
  ASSERT_THAT(inventory_->Handle(Reserved(b->order.order_id()), {}), IsOk());
  EXPECT_EQ(MetricNow("relay_order_saga_seconds_count") - sagas, 4);
}

TEST_F(OrderManagerTest, PendingOrderPastTheTimeoutIsCancelledWithCompensation) {
  auto old = manager_->Place(Request());
  ASSERT_THAT(old, IsOk());
  ASSERT_THAT(payments_->Handle(Captured(old->order.order_id()), {}), IsOk());
  skew_ = absl::Minutes(4);
  auto young = manager_->Place(Request());
  ASSERT_THAT(young, IsOk());
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5)), IsOkAndHolds(0))
      << "nothing is 5 minutes old yet";

  skew_ = absl::Minutes(6);
  auto n = manager_->CancelTimedOut(absl::Minutes(5));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 1);
  auto o = manager_->Get(old->order.order_id());
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o->cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_THAT(o->cancel_reason(), HasSubstr("timeout: no outcome from inventory within 5m"));
  auto y = manager_->Get(young->order.order_id());
  ASSERT_THAT(y, IsOk());
  EXPECT_EQ(y->status(), v1::ORDER_STATUS_PENDING);

  // order.cancelled goes through the outbox, so inventory releases and
  // payment refunds.
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].second.type(), "order.cancelled");
  EXPECT_EQ(rows[2].second.key(), old->order.order_id());
  events::v1::OrderCancelled cancelled;
  ASSERT_TRUE(cancelled.ParseFromString(rows[2].second.data()));
  EXPECT_EQ(cancelled.cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_EQ(cancelled.lines_size(), 2);

  // Nothing more to do: a second pass cancels nothing and publishes nothing.
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5)), IsOkAndHolds(0));
  EXPECT_EQ(Outbox().size(), 3u);
}

TEST_F(OrderManagerTest, LateOutcomeAfterATimeoutIsRecordedAndPublishesNothing) {
  auto a = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  skew_ = absl::Minutes(10);
  ASSERT_THAT(manager_->CancelTimedOut(absl::Minutes(5)), IsOkAndHolds(1));
  ASSERT_THAT(payments_->Handle(Captured(a->order.order_id()), {}), IsOk());
  ASSERT_THAT(inventory_->Handle(Reserved(a->order.order_id()), {}), IsOk());
  auto o = manager_->Get(a->order.order_id());
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(o->cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_TRUE(o->payment_captured());
  EXPECT_TRUE(o->stock_reserved());
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 2u) << "order.created and order.cancelled only";
  EXPECT_EQ(rows[1].second.type(), "order.cancelled");
}

TEST_F(OrderManagerTest, ConfirmedOrdersNeverTimeOut) {
  auto a = manager_->Place(Request());
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(inventory_->Handle(Reserved(a->order.order_id()), {}), IsOk());
  ASSERT_THAT(payments_->Handle(Captured(a->order.order_id()), {}), IsOk());
  skew_ = absl::Hours(1);
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5)), IsOkAndHolds(0));
  auto o = manager_->Get(a->order.order_id());
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST_F(OrderManagerTest, TimeoutsAreCancelledInBatches) {
  for (int i = 0; i < 5; ++i) ASSERT_THAT(manager_->Place(Request()), IsOk());
  skew_ = absl::Minutes(10);
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5), 2), IsOkAndHolds(2));
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5), 2), IsOkAndHolds(2));
  EXPECT_THAT(manager_->CancelTimedOut(absl::Minutes(5), 2), IsOkAndHolds(1));
  v1::ListOrdersRequest pending;
  pending.set_status(v1::ORDER_STATUS_PENDING);
  auto list = manager_->List(pending);
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->orders_size(), 0);
}

}  // namespace
}  // namespace relay::order
