// The order saga end to end, in process: a real broker and the three
// services on ephemeral ports, each with its own SQLite file.

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "services/inventory/inventory_app.h"
#include "services/order/order_app.h"
#include "services/payment/payment_app.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using ::testing::HasSubstr;
using std::chrono::system_clock;

template <typename Fn>
grpc::Status Call(Fn fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(system_clock::now() + std::chrono::seconds(5));
  return fn(&ctx);
}

class SagaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_port_ = testing::PickFreePort();
    StartBroker();
    StartInventory();
    StartPayment();
    StartOrder();
    WaitForCatalog();
  }

  void StartBroker() {
    testing::BrokerTestOptions o;
    o.listen_address = absl::StrCat("127.0.0.1:", broker_port_);
    auto b = testing::StartBroker(dir_.Join("broker"), o);
    ASSERT_TRUE(b.ok()) << b.status();
    broker_ = std::move(*b);
  }
  std::string BrokerTarget() const { return absl::StrCat("127.0.0.1:", broker_port_); }

  void StartInventory() {
    inventory::InventoryApp::Options o;
    o.broker_target = BrokerTarget();
    o.db_path = dir_.Join("inventory.db");
    auto app = inventory::InventoryApp::Start(o);
    ASSERT_TRUE(app.ok()) << app.status();
    inventory_ = std::move(*app);
    inventory_stub_ = inventory::v1::InventoryService::NewStub(
        MakeChannel(absl::StrCat("127.0.0.1:", inventory_->port())));
  }
  void StartPayment(absl::Duration handler_delay = absl::ZeroDuration()) {
    payment::PaymentApp::Options o;
    o.broker_target = BrokerTarget();
    o.db_path = dir_.Join("payment.db");
    o.handler_delay = handler_delay;
    auto app = payment::PaymentApp::Start(o);
    ASSERT_TRUE(app.ok()) << app.status();
    payment_ = std::move(*app);
    payment_stub_ = payment::v1::PaymentService::NewStub(
        MakeChannel(absl::StrCat("127.0.0.1:", payment_->port())));
  }
  void StartOrder() {
    order::OrderApp::Options o;
    o.broker_target = BrokerTarget();
    o.db_path = dir_.Join("orders.db");
    // The saga's clock runs `skew_` ahead of the real one: a test moves it
    // past the saga timeout instead of waiting for it.
    o.clock = [this] { return absl::Now() + absl::Microseconds(skew_us_.load()); };
    o.saga_sweep_interval = absl::Milliseconds(20);
    auto app = order::OrderApp::Start(o);
    ASSERT_TRUE(app.ok()) << app.status();
    order_ = std::move(*app);
    order_stub_ = order::v1::OrderService::NewStub(
        MakeChannel(absl::StrCat("127.0.0.1:", order_->port())));
  }

  // order-service accepts orders once product.updated reached its catalog.
  void WaitForCatalog() {
    ASSERT_TRUE(testing::WaitFor(
        [&] {
          order::v1::PlaceOrderRequest probe;  // invalid on purpose: nothing is stored
          probe.set_customer_id("c-alice");
          probe.add_items()->set_sku("NO-SUCH-SKU");
          probe.mutable_items(0)->set_quantity(1);
          order::v1::PlaceOrderResponse r;
          grpc::Status s =
              Call([&](grpc::ClientContext* c) { return order_stub_->PlaceOrder(c, probe, &r); });
          return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT;  // not UNAVAILABLE
        },
        absl::Seconds(20)))
        << "the catalog never reached order-service";
  }

  order::v1::Order Place(const std::string& customer, const std::string& sku, int qty,
                         const std::string& key = "") {
    order::v1::PlaceOrderRequest req;
    req.set_customer_id(customer);
    auto* item = req.add_items();
    item->set_sku(sku);
    item->set_quantity(qty);
    req.set_idempotency_key(key);
    order::v1::PlaceOrderResponse resp;
    grpc::Status s = Call([&](grpc::ClientContext* c) { return order_stub_->PlaceOrder(c, req, &resp); });
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.order();
  }

  // Follows WatchOrder to the terminal state.
  order::v1::Order WaitTerminal(const std::string& order_id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(system_clock::now() + std::chrono::seconds(20));
    order::v1::WatchOrderRequest req;
    req.set_order_id(order_id);
    auto reader = order_stub_->WatchOrder(&ctx, req);
    order::v1::Order last, o;
    while (reader->Read(&o)) last = o;
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return last;
  }

  int64_t Balance(const std::string& customer) {
    payment::v1::GetAccountRequest req;
    req.set_customer_id(customer);
    payment::v1::Account a;
    EXPECT_TRUE(Call([&](grpc::ClientContext* c) { return payment_stub_->GetAccount(c, req, &a); }).ok());
    return a.balance().amount_minor();
  }

  inventory::v1::Product Stock(const std::string& sku) {
    inventory::v1::GetStockRequest req;
    req.set_sku(sku);
    inventory::v1::Product p;
    EXPECT_TRUE(Call([&](grpc::ClientContext* c) { return inventory_stub_->GetStock(c, req, &p); }).ok());
    return p;
  }

  testing::TempDir dir_;
  std::atomic<int64_t> skew_us_{0};
  int broker_port_ = 0;
  std::unique_ptr<broker::BrokerServer> broker_;
  std::unique_ptr<inventory::InventoryApp> inventory_;
  std::unique_ptr<payment::PaymentApp> payment_;
  std::unique_ptr<order::OrderApp> order_;
  std::unique_ptr<order::v1::OrderService::Stub> order_stub_;
  std::unique_ptr<inventory::v1::InventoryService::Stub> inventory_stub_;
  std::unique_ptr<payment::v1::PaymentService::Stub> payment_stub_;
};

TEST_F(SagaTest, HappyPathConfirmsChargesAndSells) {
  int64_t balance = Balance("c-alice");
  int64_t on_hand = Stock("KB-1").on_hand();
  order::v1::Order placed = Place("c-alice", "KB-1", 2);
  EXPECT_EQ(placed.status(), order::v1::ORDER_STATUS_PENDING);
  order::v1::Order done = WaitTerminal(placed.order_id());
  EXPECT_EQ(done.status(), order::v1::ORDER_STATUS_CONFIRMED);
  EXPECT_EQ(Balance("c-alice"), balance - placed.total().amount_minor());
  // The sale is committed when inventory handles order.confirmed.
  EXPECT_TRUE(testing::WaitFor([&] {
    auto p = Stock("KB-1");
    return p.on_hand() == on_hand - 2 && p.reserved() == 0;
  }));
}

TEST_F(SagaTest, OutOfStockCancelsAndRefundsTheCapture) {
  // A cheap product with one unit left, so payment captures and stock is short.
  inventory::v1::SetStockRequest set;
  set.set_sku("CB-USB");
  set.set_on_hand(1);
  inventory::v1::Product product;
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) {
                return inventory_stub_->SetStock(c, set, &product);
              }).ok());
  int64_t balance = Balance("c-alice");
  order::v1::Order placed = Place("c-alice", "CB-USB", 2);
  order::v1::Order done = WaitTerminal(placed.order_id());
  EXPECT_EQ(done.status(), order::v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(done.cancel_cause(), events::v1::CANCEL_CAUSE_OUT_OF_STOCK);
  EXPECT_THAT(done.cancel_reason(), HasSubstr("CB-USB"));
  // payment captured (it decides independently) and refunds on order.cancelled.
  EXPECT_TRUE(testing::WaitFor([&] {
    payment::v1::GetPaymentRequest req;
    req.set_order_id(placed.order_id());
    payment::v1::Payment p;
    return Call([&](grpc::ClientContext* c) { return payment_stub_->GetPayment(c, req, &p); }).ok() &&
           p.status() == payment::v1::PAYMENT_STATUS_REFUNDED;
  })) << "the capture was not refunded";
  EXPECT_EQ(Balance("c-alice"), balance);
  EXPECT_EQ(Stock("CB-USB").available(), 1);
}

TEST_F(SagaTest, DeclinedPaymentCancelsAndReleasesTheReservation) {
  int64_t available = Stock("KB-1").available();
  order::v1::Order placed = Place("c-dave", "KB-1", 1);  // Dave cannot afford it
  order::v1::Order done = WaitTerminal(placed.order_id());
  EXPECT_EQ(done.status(), order::v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(done.cancel_cause(), events::v1::CANCEL_CAUSE_PAYMENT_DECLINED);
  EXPECT_THAT(done.cancel_reason(), HasSubstr("insufficient funds"));
  EXPECT_TRUE(testing::WaitFor([&] { return Stock("KB-1").available() == available; }))
      << "the reservation was not released";
}

TEST_F(SagaTest, CustomerCancelWhilePaymentIsDownRefundsTheLateCapture) {
  payment_->Shutdown();
  int64_t available = Stock("MS-1").available();
  order::v1::Order placed = Place("c-bob", "MS-1", 1);
  order::v1::CancelOrderRequest cancel;
  cancel.set_order_id(placed.order_id());
  order::v1::Order cancelled;
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) {
                return order_stub_->CancelOrder(c, cancel, &cancelled);
              }).ok());
  EXPECT_EQ(cancelled.status(), order::v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(cancelled.cancel_cause(), events::v1::CANCEL_CAUSE_CUSTOMER);
  payment_.reset();
  StartPayment();
  int64_t balance_before_capture = 50000;  // Bob's seed balance, 500.00 USD
  // payment sees order.created (captures) then order.cancelled (refunds).
  EXPECT_TRUE(testing::WaitFor([&] {
    payment::v1::GetPaymentRequest req;
    req.set_order_id(placed.order_id());
    payment::v1::Payment p;
    return Call([&](grpc::ClientContext* c) { return payment_stub_->GetPayment(c, req, &p); }).ok() &&
           p.status() == payment::v1::PAYMENT_STATUS_REFUNDED;
  })) << "the late capture was not refunded";
  EXPECT_EQ(Balance("c-bob"), balance_before_capture);
  EXPECT_TRUE(testing::WaitFor([&] { return Stock("MS-1").available() == available; }));
}

TEST_F(SagaTest, PendingOrderTimesOutAndALateCaptureIsRefunded) {
  payment_->Shutdown();  // no payment outcome will come in time
  payment_.reset();
  const int64_t available = Stock("MS-1").available();
  order::v1::Order placed = Place("c-bob", "MS-1", 1);
  // Wait until order-service recorded the reservation, so only payment's
  // outcome is missing when the clock moves.
  ASSERT_TRUE(testing::WaitFor([&] {
    order::v1::GetOrderRequest get;
    get.set_order_id(placed.order_id());
    order::v1::Order o;
    return Call([&](grpc::ClientContext* c) { return order_stub_->GetOrder(c, get, &o); }).ok() &&
           o.stock_reserved();
  })) << "the reservation never reached order-service";
  EXPECT_EQ(Stock("MS-1").available(), available - 1);
  skew_us_ = absl::ToInt64Microseconds(absl::Minutes(6));  // past the 5m default

  order::v1::Order done = WaitTerminal(placed.order_id());
  EXPECT_EQ(done.status(), order::v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(done.cancel_cause(), events::v1::CANCEL_CAUSE_TIMEOUT);
  EXPECT_THAT(done.cancel_reason(), HasSubstr("timeout: no outcome from payment within 5m"));
  EXPECT_TRUE(testing::WaitFor([&] { return Stock("MS-1").available() == available; }))
      << "the reservation was not released";

  // payment-service comes back: it handles order.created (captures, late)
  // then order.cancelled (refunds); order-service records the late capture.
  StartPayment();
  EXPECT_TRUE(testing::WaitFor([&] {
    payment::v1::GetPaymentRequest req;
    req.set_order_id(placed.order_id());
    payment::v1::Payment p;
    return Call([&](grpc::ClientContext* c) { return payment_stub_->GetPayment(c, req, &p); }).ok() &&
           p.status() == payment::v1::PAYMENT_STATUS_REFUNDED;
  })) << "the late capture was not refunded";
  EXPECT_EQ(Balance("c-bob"), 50000);  // Bob's seed balance, 500.00 USD
  EXPECT_TRUE(testing::WaitFor([&] {
    order::v1::GetOrderRequest get;
    get.set_order_id(placed.order_id());
    order::v1::Order o;
    return Call([&](grpc::ClientContext* c) { return order_stub_->GetOrder(c, get, &o); }).ok() &&
           o.payment_captured() && o.status() == order::v1::ORDER_STATUS_CANCELLED;
  })) << "the late capture was not recorded, or it changed the order's state";
}

TEST_F(SagaTest, SameIdempotencyKeyPlacesOneOrder) {
  order::v1::Order a = Place("c-carol", "CB-USB", 1, "carol-1");
  order::v1::Order b = Place("c-carol", "CB-USB", 1, "carol-1");
  EXPECT_EQ(a.order_id(), b.order_id());
  order::v1::ListOrdersRequest req;
  req.set_customer_id("c-carol");
  order::v1::ListOrdersResponse resp;
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return order_stub_->ListOrders(c, req, &resp); }).ok());
  EXPECT_EQ(resp.orders_size(), 1);
}

TEST_F(SagaTest, BadRequestsGetClearErrors) {
  order::v1::PlaceOrderRequest req;
  req.set_customer_id("c-alice");
  req.add_items()->set_sku("KB-1");
  order::v1::PlaceOrderResponse resp;
  grpc::Status s = Call([&](grpc::ClientContext* c) { return order_stub_->PlaceOrder(c, req, &resp); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("quantity"));
  order::v1::GetOrderRequest get;
  get.set_order_id("ord-missing");
  order::v1::Order o;
  s = Call([&](grpc::ClientContext* c) { return order_stub_->GetOrder(c, get, &o); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SagaTest, OrdersPlacedWhileTheBrokerIsDownCompleteWhenItReturns) {
  broker_->Shutdown(absl::Seconds(1));
  broker_.reset();
  order::v1::Order placed = Place("c-alice", "HD-1", 1);  // accepted: the outbox holds it
  EXPECT_EQ(placed.status(), order::v1::ORDER_STATUS_PENDING);
  StartBroker();
  order::v1::Order done = WaitTerminal(placed.order_id());
  EXPECT_EQ(done.status(), order::v1::ORDER_STATUS_CONFIRMED);
}

TEST(SagaStartup, ServicesStartedBeforeTheBrokerCatchUp) {
  testing::TempDir dir;
  int port = testing::PickFreePort();
  std::string target = absl::StrCat("127.0.0.1:", port);
  inventory::InventoryApp::Options io;
  io.broker_target = target;
  io.db_path = dir.Join("inventory.db");
  auto inv = inventory::InventoryApp::Start(io);
  ASSERT_TRUE(inv.ok()) << inv.status();
  order::OrderApp::Options oo;
  oo.broker_target = target;
  oo.db_path = dir.Join("orders.db");
  auto ord = order::OrderApp::Start(oo);
  ASSERT_TRUE(ord.ok()) << ord.status();
  auto stub = order::v1::OrderService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", (*ord)->port())));
  order::v1::PlaceOrderRequest req;
  req.set_customer_id("c-alice");
  req.add_items()->set_sku("KB-1");
  req.mutable_items(0)->set_quantity(1);
  order::v1::PlaceOrderResponse resp;
  grpc::Status s = Call([&](grpc::ClientContext* c) { return stub->PlaceOrder(c, req, &resp); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << "no catalog without a broker";

  testing::BrokerTestOptions bo;
  bo.listen_address = target;
  auto broker = testing::StartBroker(dir.Join("broker"), bo);
  ASSERT_TRUE(broker.ok()) << broker.status();
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        order::v1::PlaceOrderResponse r;
        return Call([&](grpc::ClientContext* c) { return stub->PlaceOrder(c, req, &r); }).ok();
      },
      absl::Seconds(20)))
      << "order-service never received the catalog";
}

}  // namespace
}  // namespace relay
