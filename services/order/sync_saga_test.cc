// order-service --flow=sync against real inventory-service and
// payment-service apps in process, each a gRPC server on an ephemeral port
// with its own SQLite file. No broker runs: order-service's catalog is
// written beforehand through its product.updated handler, and the services
// need no broker to serve their RPCs (their consumers keep reconnecting).

#include "services/order/sync_saga.h"

#include <grpcpp/client_context.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_channel.h"
#include "common/grpc_status.h"
#include "common/ids.h"
#include "common/store/transactional_consumer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "services/inventory/inventory_app.h"
#include "services/inventory/inventory_store.h"
#include "services/order/order_app.h"
#include "services/order/order_manager.h"
#include "services/order/order_store.h"
#include "services/payment/payment_app.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::order {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;

// Nothing listens there: the services' consumers retry in the background.
constexpr char kNoBroker[] = "127.0.0.1:1";

class SyncSagaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    inventory::InventoryApp::Options io;
    io.broker_target = kNoBroker;
    io.db_path = dir_.Join("inventory.db");
    io.shutdown_grace = absl::Milliseconds(200);
    io.debug_delay = inventory_delay_;
    auto inv = inventory::InventoryApp::Start(io);
    ASSERT_THAT(inv, IsOk());
    inventory_ = std::move(*inv);
    ASSERT_NO_FATAL_FAILURE(StartPayment());
    ASSERT_NO_FATAL_FAILURE(WriteCatalog());

    OrderApp::Options oo;
    oo.broker_target = kNoBroker;
    oo.db_path = order_db();
    oo.flow = OrderApp::Options::Flow::kSync;
    oo.inventory_target = absl::StrCat("127.0.0.1:", inventory_->port());
    oo.payment_target = payment_target_;
    oo.call_timeout = absl::Seconds(2);
    oo.sync_workers = sync_workers_;
    oo.shutdown_grace = absl::Milliseconds(200);
    auto order = OrderApp::Start(oo);
    ASSERT_THAT(order, IsOk());
    order_ = std::move(*order);
    const std::string order_target = absl::StrCat("127.0.0.1:", order_->port());
    orders_ = v1::OrderService::NewStub(MakeChannel(order_target));
    stock_ = inventory::v1::InventoryService::NewStub(
        MakeChannel(absl::StrCat("127.0.0.1:", inventory_->port())));
    payments_ = payment::v1::PaymentService::NewStub(MakeChannel(payment_target_));
  }

  void TearDown() override {
    if (order_) order_->Shutdown();
    if (payment_) payment_->Shutdown();
    if (inventory_) inventory_->Shutdown();
  }

  void StartPayment() {
    payment::PaymentApp::Options po;
    po.broker_target = kNoBroker;
    po.db_path = dir_.Join("payment.db");
    po.shutdown_grace = absl::Milliseconds(200);
    if (!payment_target_.empty()) po.listen = payment_target_;
    auto pay = payment::PaymentApp::Start(po);
    ASSERT_THAT(pay, IsOk());
    payment_ = std::move(*pay);
    payment_target_ = absl::StrCat("127.0.0.1:", payment_->port());
  }

  std::string order_db() const { return dir_.Join("orders.db"); }

  // order-service's catalog, as its product.updated handler builds it from
  // the seed catalog inventory-service announces.
  void WriteCatalog() {
    auto db = store::Database::Open(order_db(), {});
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Migrate(OrderStore::Migrations()), IsOk());
    OrderManager manager(db->get(), nullptr, nullptr);
    store::TransactionalConsumer::Options o;
    o.subscriber.topic = "inventory";
    o.subscriber.group = "order-service-sync";
    // Never started: Handle() is called directly.
    store::TransactionalConsumer consumer(db->get(), MakeChannel(kNoBroker), o);
    manager.RegisterCatalogHandler(consumer);
    for (const inventory::v1::Product& p : inventory::InventoryStore::SeedCatalog()) {
      events::v1::Event e = inventory::ProductUpdatedEvent(p);
      e.set_id(NewEventId());  // the outbox gives one when it stores the event
      ASSERT_THAT(consumer.Handle(e, {}), IsOk());
    }
  }

  absl::StatusOr<v1::Order> Place(const std::string& customer, const std::string& sku, int quantity,
                                  absl::Duration timeout = absl::Seconds(20)) {
    v1::PlaceOrderRequest r;
    r.set_customer_id(customer);
    r.set_idempotency_key(NewId("key"));
    v1::PlaceOrderRequest::Item* item = r.add_items();
    item->set_sku(sku);
    item->set_quantity(quantity);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    v1::PlaceOrderResponse response;
    grpc::Status s = orders_->PlaceOrder(&context, r, &response);
    if (!s.ok()) return FromGrpcStatus(s);
    return response.order();
  }

  v1::Order Get(const std::string& order_id) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetOrderRequest r;
    r.set_order_id(order_id);
    v1::Order order;
    EXPECT_TRUE(orders_->GetOrder(&context, r, &order).ok());
    return order;
  }

  // The reservation state of (order, sku); UNSPECIFIED when there is none.
  inventory::v1::ReservationState Reservation(const std::string& order_id) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    inventory::v1::ListReservationsRequest r;
    r.set_order_id(order_id);
    inventory::v1::ListReservationsResponse response;
    EXPECT_TRUE(stock_->ListReservations(&context, r, &response).ok());
    return response.reservations_size() == 0 ? inventory::v1::RESERVATION_STATE_UNSPECIFIED
                                             : response.reservations(0).state();
  }

  payment::v1::PaymentStatus Payment(const std::string& order_id) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    payment::v1::GetPaymentRequest r;
    r.set_order_id(order_id);
    payment::v1::Payment p;
    grpc::Status s = payments_->GetPayment(&context, r, &p);
    return s.ok() ? p.status() : payment::v1::PAYMENT_STATUS_UNSPECIFIED;
  }

  // The orders of `customer`, newest first.
  std::vector<v1::Order> OrdersOf(const std::string& customer) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ListOrdersRequest r;
    r.set_customer_id(customer);
    v1::ListOrdersResponse response;
    EXPECT_TRUE(orders_->ListOrders(&context, r, &response).ok());
    return {response.orders().begin(), response.orders().end()};
  }

  // The one order of `customer`, once it is no longer PENDING (within 20 s);
  // nullopt (and a failure) otherwise.
  std::optional<v1::Order> TheOnlyOrderOnceEnded(const std::string& customer) {
    std::vector<v1::Order> orders;
    if (!relay::testing::WaitFor(
            [&] {
              orders = OrdersOf(customer);
              return orders.size() == 1 && orders[0].status() != v1::ORDER_STATUS_PENDING;
            },
            absl::Seconds(20))) {
      ADD_FAILURE() << customer << " has " << orders.size() << " orders, none ended";
      return std::nullopt;
    }
    return orders[0];
  }

  // Set by fixtures before SetUp.
  int sync_workers_ = 4;
  absl::Duration inventory_delay_;  // inventory-service --debug_delay

  relay::testing::TempDir dir_;
  std::unique_ptr<inventory::InventoryApp> inventory_;
  std::unique_ptr<payment::PaymentApp> payment_;
  std::string payment_target_;
  std::unique_ptr<OrderApp> order_;
  std::unique_ptr<v1::OrderService::Stub> orders_;
  std::unique_ptr<inventory::v1::InventoryService::Stub> stock_;
  std::unique_ptr<payment::v1::PaymentService::Stub> payments_;
};

TEST_F(SyncSagaTest, PlaceOrderAnswersTheConfirmedOrderAndInventoryCommitsTheSale) {
  absl::StatusOr<v1::Order> order = Place("c-alice", "KB-1", 2);
  ASSERT_THAT(order, IsOk());
  EXPECT_EQ(order->status(), v1::ORDER_STATUS_CONFIRMED);
  EXPECT_TRUE(order->stock_reserved());
  EXPECT_TRUE(order->payment_captured());
  EXPECT_EQ(Payment(order->order_id()), payment::v1::PAYMENT_STATUS_CAPTURED);
  // The commit follows the answer.
  EXPECT_TRUE(relay::testing::WaitFor([&] {
    return Reservation(order->order_id()) == inventory::v1::RESERVATION_STATE_COMMITTED;
  }));
  // Stored like any order: GetOrder tells the same.
  EXPECT_EQ(Get(order->order_id()).status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST_F(SyncSagaTest, OutOfStockCancelsTheOrderAndRefundsTheCharge) {
  absl::StatusOr<v1::Order> order = Place("c-alice", "GPU-1", 2);
  ASSERT_THAT(order, IsOk());
  EXPECT_EQ(order->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(order->cancel_cause(), events::v1::CANCEL_CAUSE_OUT_OF_STOCK);
  EXPECT_THAT(order->cancel_reason(), HasSubstr("out of stock: sku GPU-1"));
  // Refunded before PlaceOrder answered.
  EXPECT_EQ(Payment(order->order_id()), payment::v1::PAYMENT_STATUS_REFUNDED);
  EXPECT_EQ(Reservation(order->order_id()), inventory::v1::RESERVATION_STATE_UNSPECIFIED);
}

TEST_F(SyncSagaTest, ADeclinedPaymentCancelsTheOrderAndReleasesTheStock) {
  absl::StatusOr<v1::Order> order = Place("c-dave", "KB-1", 1);
  ASSERT_THAT(order, IsOk());
  EXPECT_EQ(order->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(order->cancel_cause(), events::v1::CANCEL_CAUSE_PAYMENT_DECLINED);
  EXPECT_THAT(order->cancel_reason(), HasSubstr("insufficient funds"));
  EXPECT_EQ(Reservation(order->order_id()), inventory::v1::RESERVATION_STATE_RELEASED);
  EXPECT_EQ(Payment(order->order_id()), payment::v1::PAYMENT_STATUS_DECLINED);
}

TEST_F(SyncSagaTest, PaymentDownFailsPlaceOrderUnavailableCancelsAndReleases) {
  payment_->Shutdown();
  absl::StatusOr<v1::Order> order = Place("c-alice", "KB-1", 1);
  ASSERT_THAT(order, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cancelled")));
  // The message names the order, which is stored CANCELLED after the
  // reservation went back.
  const std::string message(order.status().message());
  const size_t at = message.find("ord-");
  ASSERT_NE(at, std::string::npos) << message;
  const std::string order_id = message.substr(at, message.find(' ', at) - at);
  v1::Order stored = Get(order_id);
  EXPECT_EQ(stored.status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(stored.cancel_cause(), events::v1::CANCEL_CAUSE_DEPENDENCY_UNAVAILABLE);
  EXPECT_THAT(stored.cancel_reason(), HasSubstr("payment-service"));
  EXPECT_EQ(Reservation(order_id), inventory::v1::RESERVATION_STATE_RELEASED);

  // Back on the same address: orders go through again, without a restart
  // of order-service (the channel reconnects within its 1 s backoff).
  payment_.reset();
  ASSERT_NO_FATAL_FAILURE(StartPayment());
  absl::StatusOr<v1::Order> later;
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] {
        later = Place("c-alice", "KB-1", 1);
        return later.ok();
      },
      absl::Seconds(15)));
  ASSERT_THAT(later, IsOk());
  EXPECT_EQ(later->status(), v1::ORDER_STATUS_CONFIRMED);
}

// One worker, held for 1.5 s by every inventory call.
class SyncSagaOneSlowWorkerTest : public SyncSagaTest {
 protected:
  SyncSagaOneSlowWorkerTest() {
    sync_workers_ = 1;
    inventory_delay_ = absl::Milliseconds(1500);
  }
};

// The queue of sagas ignored its callers' deadlines: an order whose caller
// had been told DEADLINE_EXCEEDED (and so never learned its id) was
// reserved, charged and confirmed once a worker got to it.
TEST_F(SyncSagaOneSlowWorkerTest, AnOrderWhoseDeadlinePassedInTheQueueCallsNoService) {
  absl::StatusOr<v1::Order> first;
  std::thread holder([&] { first = Place("c-alice", "KB-1", 1); });
  // The first order is stored, and its saga holds the only worker.
  ASSERT_TRUE(
      relay::testing::WaitFor([&] { return OrdersOf("c-alice").size() == 1; }, absl::Seconds(10)));
  EXPECT_THAT(Place("c-bob", "KB-1", 1, absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  holder.join();
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->status(), v1::ORDER_STATUS_CONFIRMED);

  std::optional<v1::Order> late = TheOnlyOrderOnceEnded("c-bob");
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(late->cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_THAT(late->cancel_reason(), HasSubstr("deadline passed before a worker took its saga"));
  EXPECT_EQ(Payment(late->order_id()), payment::v1::PAYMENT_STATUS_UNSPECIFIED);
  EXPECT_EQ(Reservation(late->order_id()), inventory::v1::RESERVATION_STATE_UNSPECIFIED);
}

// The calls waited call_timeout (2 s) whatever the caller's deadline: a
// caller that gave up after 500 ms (never learning the order id) had its
// order reserved, charged and confirmed at 1.5 s.
TEST_F(SyncSagaOneSlowWorkerTest, ACallerDeadlineThatPassesDuringTheCallsUndoesThem) {
  EXPECT_THAT(Place("c-bob", "KB-1", 1, absl::Milliseconds(500)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  std::optional<v1::Order> order = TheOnlyOrderOnceEnded("c-bob");
  ASSERT_TRUE(order.has_value());
  EXPECT_EQ(order->status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_THAT(order->cancel_reason(), HasSubstr("no answer within the deadline"));
  // The charge answered in time and was refunded; the reservation, cut
  // short, was released (or, landing after the release, held nothing).
  EXPECT_NE(Payment(order->order_id()), payment::v1::PAYMENT_STATUS_CAPTURED);
  EXPECT_NE(Reservation(order->order_id()), inventory::v1::RESERVATION_STATE_HELD);
  EXPECT_NE(Reservation(order->order_id()), inventory::v1::RESERVATION_STATE_COMMITTED);
}

TEST(SyncSagaOptions, SyncFlowWithoutTheTwoAddressesIsInvalidArgument) {
  relay::testing::TempDir dir;
  OrderApp::Options o;
  o.broker_target = kNoBroker;
  o.db_path = dir.Join("orders.db");
  o.flow = OrderApp::Options::Flow::kSync;
  o.inventory_target = "127.0.0.1:1";
  EXPECT_THAT(OrderApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--payment")));
  o.payment_target = "127.0.0.1:1";
  o.call_timeout = absl::ZeroDuration();
  EXPECT_THAT(OrderApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("call_timeout")));
  // The saga timeout is what compensates an order a crash left PENDING.
  o.call_timeout = absl::Seconds(2);
  o.saga_timeout = absl::ZeroDuration();
  EXPECT_THAT(OrderApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--saga_timeout")));
}

}  // namespace
}  // namespace relay::order
