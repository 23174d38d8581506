// OrderApp's shutdown and its errors over a real gRPC client, with no
// broker: the database is prepared beforehand (a product and an order), so
// the API has something to serve.

#include "services/order/order_app.h"

#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_channel.h"
#include "common/ids.h"
#include "common/store/transactional_consumer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "services/order/order_manager.h"
#include "services/order/order_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::order {
namespace {

using ::relay::testing::IsOk;

class OrderAppTest : public ::testing::Test {
 protected:
  // A catalog of one product and one PENDING order, written as order-service
  // would (its handler, its manager), before the app starts on the file.
  void SetUp() override {
    auto db = store::Database::Open(db_path(), {});
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Migrate(OrderStore::Migrations()), IsOk());
    OrderManager manager(db->get(), nullptr, nullptr);
    store::TransactionalConsumer::Options o;
    o.subscriber.topic = "inventory";
    o.subscriber.group = "order-service";
    // Never started: Handle() is called directly.
    store::TransactionalConsumer inventory(db->get(), MakeChannel("127.0.0.1:1"), o);
    manager.RegisterInventoryHandlers(inventory);
    events::v1::ProductUpdated p;
    p.set_sku("KB-1");
    p.set_name("Keyboard");
    p.mutable_price()->set_amount_minor(8900);
    p.mutable_price()->set_currency("USD");
    events::v1::Event e;
    e.set_id(NewEventId());
    e.set_type("product.updated");
    e.set_key("KB-1");
    e.set_data(p.SerializeAsString());
    ASSERT_THAT(inventory.Handle(e, {}), IsOk());
    v1::PlaceOrderRequest r;
    r.set_customer_id("c-alice");
    r.add_items()->set_sku("KB-1");
    r.mutable_items(0)->set_quantity(1);
    auto placed = manager.Place(r);
    ASSERT_THAT(placed, IsOk());
    order_id_ = placed->order.order_id();
    // Without a broker the outbox relay would spend the whole grace trying
    // to publish order.created; these tests are about what else holds a
    // shutdown.
    ASSERT_THAT((*db)->Transaction([](store::Tx& tx) { return tx.Exec("DELETE FROM outbox"); }),
                IsOk());
  }

  std::string db_path() const { return dir_.Join("orders.db"); }

  OrderApp::Options AppOptions() const {
    OrderApp::Options o;
    o.broker_target = "127.0.0.1:1";  // nothing there: consumers keep retrying
    o.db_path = db_path();
    o.shutdown_grace = absl::Seconds(30);
    return o;
  }

  relay::testing::TempDir dir_;
  std::string order_id_;
};

// An open WatchOrder stream used to hold Shutdown() until the server's
// deadline: the watch hub stopped its thread but left the streams open.
TEST_F(OrderAppTest, AnOpenWatchOrderStreamDoesNotHoldShutdownForTheGrace) {
  auto app = OrderApp::Start(AppOptions());
  ASSERT_THAT(app, IsOk());
  auto stub = v1::OrderService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", (*app)->port())));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::WatchOrderRequest request;
  request.set_order_id(order_id_);
  std::unique_ptr<grpc::ClientReader<v1::Order>> watch = stub->WatchOrder(&context, request);
  v1::Order first;
  ASSERT_TRUE(watch->Read(&first));  // the current state: the stream is open
  EXPECT_EQ(first.status(), v1::ORDER_STATUS_PENDING);

  const absl::Time start = absl::Now();
  (*app)->Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  v1::Order next;
  while (watch->Read(&next)) {
  }
  grpc::Status status = watch->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(OrderAppTest, ANotFoundQuotesAtMost32BytesOfTheId) {
  auto app = OrderApp::Start(AppOptions());
  ASSERT_THAT(app, IsOk());
  auto stub = v1::OrderService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", (*app)->port())));
  const std::string id(100, 'x');
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::GetOrderRequest request;
  request.set_order_id(id);
  v1::Order response;
  grpc::Status status = stub->GetOrder(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), ::testing::Not(::testing::HasSubstr(id)));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr(std::string(32, 'x')));
  EXPECT_LT(status.error_message().size(), 80u) << status.error_message();
  (*app)->Shutdown();
}

TEST_F(OrderAppTest, BadOptionsAreRefused) {
  OrderApp::Options o = AppOptions();
  o.db_path.clear();
  EXPECT_THAT(OrderApp::Start(o), relay::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                           ::testing::HasSubstr("database")));
  o = AppOptions();
  o.handler_delay = absl::Seconds(-1);
  EXPECT_THAT(OrderApp::Start(o), relay::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                           ::testing::HasSubstr("handler_delay")));
  o = AppOptions();
  o.saga_timeout = absl::Minutes(-5);
  EXPECT_THAT(OrderApp::Start(o), relay::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                           ::testing::HasSubstr("saga_timeout")));
  o = AppOptions();
  o.saga_sweep_interval = absl::Seconds(-1);
  EXPECT_THAT(OrderApp::Start(o),
              relay::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("saga_sweep_interval")));
}

}  // namespace
}  // namespace relay::order
