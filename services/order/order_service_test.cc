// OrderService over real gRPC on port 0 and a real SQLite file, without a
// broker (the outbox is not relayed): idempotency keys and bad input.

#include "services/order/order_service.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "services/order/order_manager.h"
#include "services/order/order_store.h"
#include "services/order/watch_hub.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::order {
namespace {

using ::relay::testing::IsOk;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kTwoMegabytes = 2 << 20;

class OrderServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Serve(dir_.Join("orders.db")); }
  void TearDown() override { StopServing(); }

  // Serves the database at `path`, migrating it first.
  void Serve(const std::string& path) {
    auto db = store::Database::Open(path, {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(OrderStore::Migrations()), IsOk());
    ASSERT_THAT(db_->Transaction([](store::Tx& tx) -> absl::Status {
      for (auto [sku, price] : {std::pair<const char*, int64_t>{"KB-1", 8900}, {"MS-1", 2500}}) {
        events::v1::ProductUpdated p;
        p.set_sku(sku);
        p.set_name(sku);
        p.mutable_price()->set_amount_minor(price);
        p.mutable_price()->set_currency("USD");
        if (absl::Status s = OrderStore::UpsertProduct(tx, p, absl::Now()); !s.ok()) return s;
      }
      return absl::OkStatus();
    }),
                IsOk());
    hub_ = std::make_unique<WatchHub>(db_.get());
    manager_ = std::make_unique<OrderManager>(db_.get(), nullptr, hub_.get());
    service_ = std::make_unique<OrderServiceImpl>(manager_.get(), hub_.get());
    auto server = StartGrpcServer("127.0.0.1:0", {service_.get()});
    ASSERT_THAT(server, IsOk());
    server_ = std::move(server->server);
    // A default client: no raised metadata or message limits.
    stub_ = v1::OrderService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port),
                                                          grpc::InsecureChannelCredentials()));
  }

  void StopServing() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
    if (manager_ != nullptr) manager_->Stop();
    if (hub_ != nullptr) hub_->Stop();
    service_.reset();
    manager_.reset();
    hub_.reset();
    db_.reset();
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  static v1::PlaceOrderRequest Request(const std::string& customer, const std::string& key) {
    v1::PlaceOrderRequest r;
    r.set_customer_id(customer);
    r.set_idempotency_key(key);
    auto* i = r.add_items();
    i->set_sku("KB-1");
    i->set_quantity(2);
    i = r.add_items();
    i->set_sku("MS-1");
    i->set_quantity(1);
    return r;
  }

  grpc::Status Place(const v1::PlaceOrderRequest& r, v1::PlaceOrderResponse* response) {
    grpc::ClientContext context;
    Deadline(&context);
    return stub_->PlaceOrder(&context, r, response);
  }

  int CountOrders(const std::string& customer) {
    v1::ListOrdersRequest r;
    r.set_customer_id(customer);
    v1::ListOrdersResponse response;
    grpc::ClientContext context;
    Deadline(&context);
    grpc::Status s = stub_->ListOrders(&context, r, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.orders_size();
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<WatchHub> hub_;
  std::unique_ptr<OrderManager> manager_;
  std::unique_ptr<OrderServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::OrderService::Stub> stub_;
};

// ------------------------------------------------------------ idempotency

TEST_F(OrderServiceTest, AnotherCustomersKeyPlacesANewIndependentOrder) {
  v1::PlaceOrderResponse a, b;
  ASSERT_TRUE(Place(Request("c-alice", "retry-1"), &a).ok());
  grpc::Status s = Place(Request("c-bob", "retry-1"), &b);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(b.replayed());
  EXPECT_NE(b.order().order_id(), a.order().order_id());
  EXPECT_EQ(b.order().customer_id(), "c-bob");
  EXPECT_EQ(CountOrders("c-alice"), 1);
  EXPECT_EQ(CountOrders("c-bob"), 1);
}

TEST_F(OrderServiceTest, SameCustomerKeyAndRequestReplaysTheOriginalOrder) {
  v1::PlaceOrderResponse a, b;
  ASSERT_TRUE(Place(Request("c-alice", "retry-1"), &a).ok());
  // The same request with its items listed in another order.
  v1::PlaceOrderRequest again = Request("c-alice", "retry-1");
  again.mutable_items()->SwapElements(0, 1);
  grpc::Status s = Place(again, &b);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(b.replayed());
  EXPECT_EQ(b.order().order_id(), a.order().order_id());
  EXPECT_EQ(CountOrders("c-alice"), 1);
}

TEST_F(OrderServiceTest, SameKeyWithADifferentRequestIsFailedPrecondition) {
  v1::PlaceOrderResponse a, b;
  ASSERT_TRUE(Place(Request("c-alice", "retry-1"), &a).ok());
  v1::PlaceOrderRequest changed = Request("c-alice", "retry-1");
  changed.mutable_items(0)->set_quantity(3);
  grpc::Status s = Place(changed, &b);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("idempotency_key"), HasSubstr("different request"),
                                       HasSubstr(a.order().order_id())));
  EXPECT_EQ(CountOrders("c-alice"), 1);
}

// A database written before keys were scoped: its keys stay with the
// customer that used them, and their orders' lines stand in for the
// fingerprint they never had.
TEST_F(OrderServiceTest, KeysStoredBeforeTheMigrationKeepWorking) {
  StopServing();
  const std::string path = dir_.Join("legacy.db");
  {
    auto db = store::Database::Open(path, {});
    ASSERT_THAT(db, IsOk());
    // The schema before order_idempotency: outbox, inbox, orders + catalog.
    std::vector<std::string> old_steps = OrderStore::Migrations();
    old_steps.resize(3);
    ASSERT_THAT((*db)->Migrate(old_steps), IsOk());
    v1::Order legacy;
    legacy.set_order_id("ord-legacy");
    legacy.set_customer_id("c-alice");
    legacy.set_status(v1::ORDER_STATUS_PENDING);
    legacy.set_idempotency_key("retry-1");
    for (auto [sku, qty] : {std::pair<const char*, int>{"MS-1", 1}, {"KB-1", 2}}) {
      auto* line = legacy.add_lines();
      line->set_sku(sku);
      line->set_quantity(qty);
    }
    ASSERT_THAT((*db)->Transaction([&](store::Tx& tx) -> absl::Status {
      // Written as the binary before this migration wrote it.
      auto st = tx.Prepare(
          "INSERT INTO orders(order_id, customer_id, status, idempotency_key, created_us, "
          "updated_us, data) VALUES ('ord-legacy', 'c-alice', 1, 'retry-1', 1, 1, ?)");
      if (!st.ok()) return st.status();
      if (absl::Status s = st->BindBlob(1, legacy.SerializeAsString()); !s.ok()) return s;
      return st->Run();
    }),
                IsOk());
  }
  Serve(path);

  v1::PlaceOrderResponse same, other, changed_response;
  ASSERT_TRUE(Place(Request("c-alice", "retry-1"), &same).ok());
  EXPECT_TRUE(same.replayed());
  EXPECT_EQ(same.order().order_id(), "ord-legacy");

  grpc::Status s = Place(Request("c-bob", "retry-1"), &other);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(other.replayed());
  EXPECT_EQ(other.order().customer_id(), "c-bob");

  v1::PlaceOrderRequest changed = Request("c-alice", "retry-1");
  changed.mutable_items(1)->set_quantity(5);
  s = Place(changed, &changed_response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
}

// -------------------------------------------------------------- bad input

// A status a default client received: the code, and a message short enough
// that it never echoed the input.
MATCHER_P2(RefusedFor, field, bound, "") {
  const grpc::Status& s = arg;
  *result_listener << "code " << s.error_code() << ", " << s.error_message().size()
                   << "-byte message: " << s.error_message().substr(0, 200);
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
         s.error_message().find(field) != std::string::npos &&
         s.error_message().find(absl::StrCat("limit is ", bound)) != std::string::npos &&
         s.error_message().size() < 200;
}

TEST_F(OrderServiceTest, TwoMegabyteFieldsAreInvalidArgumentForADefaultClient) {
  const std::string huge(kTwoMegabytes, 'x');
  v1::PlaceOrderResponse placed;

  v1::PlaceOrderRequest r = Request(huge, "");
  EXPECT_THAT(Place(r, &placed), RefusedFor("customer_id", 128));
  r = Request("c-alice", huge);
  EXPECT_THAT(Place(r, &placed), RefusedFor("idempotency_key", 128));
  r = Request("c-alice", "");
  r.mutable_items(1)->set_sku(huge);
  EXPECT_THAT(Place(r, &placed), RefusedFor("items[1].sku", 64));

  v1::Order order;
  {
    v1::GetOrderRequest get;
    get.set_order_id(huge);
    grpc::ClientContext c;
    Deadline(&c);
    EXPECT_THAT(stub_->GetOrder(&c, get, &order), RefusedFor("order_id", 128));
  }
  {
    v1::CancelOrderRequest cancel;
    cancel.set_order_id(huge);
    grpc::ClientContext c;
    Deadline(&c);
    EXPECT_THAT(stub_->CancelOrder(&c, cancel, &order), RefusedFor("order_id", 128));
  }
  {
    v1::CancelOrderRequest cancel;
    cancel.set_order_id("ord-x");
    cancel.set_reason(huge);
    grpc::ClientContext c;
    Deadline(&c);
    EXPECT_THAT(stub_->CancelOrder(&c, cancel, &order), RefusedFor("reason", 500));
  }
  v1::ListOrdersResponse list;
  {
    v1::ListOrdersRequest l;
    l.set_page_token(huge);
    grpc::ClientContext c;
    Deadline(&c);
    EXPECT_THAT(stub_->ListOrders(&c, l, &list), RefusedFor("page_token", 256));
  }
  {
    v1::ListOrdersRequest l;
    l.set_customer_id(huge);
    grpc::ClientContext c;
    Deadline(&c);
    EXPECT_THAT(stub_->ListOrders(&c, l, &list), RefusedFor("customer_id", 128));
  }
  {
    v1::WatchOrderRequest w;
    w.set_order_id(huge);
    grpc::ClientContext c;
    Deadline(&c);
    auto reader = stub_->WatchOrder(&c, w);
    v1::Order ignored;
    while (reader->Read(&ignored)) {
    }
    EXPECT_THAT(reader->Finish(), RefusedFor("order_id", 128));
  }
  EXPECT_EQ(CountOrders(""), 0);
}

TEST_F(OrderServiceTest, ErrorsEchoOnlyAShortPrefixOfTheInput) {
  v1::GetOrderRequest get;
  get.set_order_id(std::string(200, 'y'));
  v1::Order order;
  grpc::ClientContext c;
  Deadline(&c);
  grpc::Status s = stub_->GetOrder(&c, get, &order);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("'" + std::string(32, 'y') + "'\xE2\x80\xA6(200 bytes)"),
                    Not(HasSubstr(std::string(33, 'y')))));
}

// An id with ESC or CR would rewrite the terminal of whoever lists it
// (relayctl order list): refused, and nothing stored.
TEST_F(OrderServiceTest, IdsWithControlCharactersAreInvalidArgument) {
  v1::PlaceOrderResponse placed;
  grpc::Status s = Place(Request("c\x1b[2J\x1b]0;x\x07", ""), &placed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("customer_id holds a control character"), Not(HasSubstr("\x1b"))));
  s = Place(Request("c-alice", "key\r1"), &placed);
  EXPECT_THAT(s.error_message(), HasSubstr("idempotency_key holds a control character"));
  EXPECT_EQ(CountOrders(""), 0);
}

TEST_F(OrderServiceTest, UnknownOrderStatusFilterIsInvalidArgument) {
  v1::ListOrdersRequest l;
  l.set_status(static_cast<v1::OrderStatus>(99));
  v1::ListOrdersResponse list;
  grpc::ClientContext c;
  Deadline(&c);
  grpc::Status s = stub_->ListOrders(&c, l, &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("status has unknown value 99"));
}

TEST_F(OrderServiceTest, FieldsAtTheirBoundsAreAccepted) {
  v1::PlaceOrderResponse placed;
  grpc::Status s = Place(Request(std::string(128, 'c'), std::string(128, 'k')), &placed);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::CancelOrderRequest cancel;
  cancel.set_order_id(placed.order().order_id());
  cancel.set_reason(std::string(500, 'r'));
  v1::Order order;
  grpc::ClientContext c;
  Deadline(&c);
  s = stub_->CancelOrder(&c, cancel, &order);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace relay::order
