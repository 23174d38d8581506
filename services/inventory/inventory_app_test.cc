// InventoryApp against a real in-process broker: the seed catalog reaches
// topic "inventory", order events from topic "orders" reserve and release
// stock, and an app started before its broker catches up once it appears.

#include "services/inventory/inventory_app.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "services/inventory/inventory_test_util.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::inventory {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::WaitFor;
using test_util::Cancelled;
using test_util::Created;
using test_util::Line;
using ::testing::Each;
using ::testing::SizeIs;
using Event = events::v1::Event;

constexpr absl::Duration kWait = absl::Seconds(20);

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

// A client of one broker: publish to a topic, read a topic back.
class BrokerClient {
 public:
  explicit BrokerClient(const std::string& target)
      : stub_(broker::v1::Broker::NewStub(MakeChannel(target))) {}

  absl::Status Publish(const std::string& topic, const Event& e) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    broker::v1::PublishRequest request;
    request.set_topic(topic);
    *request.add_events() = e;
    broker::v1::PublishResponse response;
    return FromGrpcStatus(stub_->Publish(&context, request, &response));
  }

  // Every event of `topic` (empty when the topic does not exist yet).
  std::vector<Event> Read(const std::string& topic) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    broker::v1::ReadRequest request;
    request.set_topic(topic);
    request.set_offset(0);
    request.set_max_events(10000);
    broker::v1::ReadResponse response;
    if (!stub_->Read(&context, request, &response).ok()) return {};
    return {response.events().begin(), response.events().end()};
  }

  // The events of `type` on `topic` keyed `key` (any key when empty).
  std::vector<Event> Find(const std::string& topic, const std::string& type,
                          const std::string& key = "") {
    std::vector<Event> out;
    for (Event& e : Read(topic)) {
      if (e.type() == type && (key.empty() || e.key() == key)) out.push_back(std::move(e));
    }
    return out;
  }

 private:
  std::unique_ptr<broker::v1::Broker::Stub> stub_;
};

// A client of the app's InventoryService.
class InventoryClient {
 public:
  explicit InventoryClient(int port)
      : stub_(v1::InventoryService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", port)))) {}

  absl::StatusOr<v1::Product> GetStock(const std::string& sku) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    v1::GetStockRequest request;
    request.set_sku(sku);
    v1::Product response;
    grpc::Status s = stub_->GetStock(&context, request, &response);
    if (!s.ok()) return FromGrpcStatus(s);
    return response;
  }

  std::vector<v1::Reservation> Reservations(const std::string& order_id) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    v1::ListReservationsRequest request;
    request.set_order_id(order_id);
    v1::ListReservationsResponse response;
    if (!stub_->ListReservations(&context, request, &response).ok()) return {};
    return {response.reservations().begin(), response.reservations().end()};
  }

 private:
  std::unique_ptr<v1::InventoryService::Stub> stub_;
};

class InventoryAppTest : public ::testing::Test {
 protected:
  InventoryApp::Options AppOptions(int broker_port) {
    InventoryApp::Options o;
    o.broker_target = absl::StrCat("127.0.0.1:", broker_port);
    o.db_path = dir_.Join("inventory.db");
    o.shutdown_grace = absl::Seconds(2);
    return o;
  }

  relay::testing::TempDir dir_;
};

TEST_F(InventoryAppTest, PublishesTheSeedCatalogAndReservesAndReleasesThroughTheBroker) {
  auto broker = relay::testing::StartBroker(dir_.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  BrokerClient bus(absl::StrCat("127.0.0.1:", (*broker)->port()));
  auto app = InventoryApp::Start(AppOptions((*broker)->port()));
  ASSERT_THAT(app, IsOk());
  InventoryClient api((*app)->port());

  // The seed's product.updated events reach topic "inventory".
  ASSERT_TRUE(WaitFor([&] { return bus.Find("inventory", "product.updated").size() == 10; }, kWait))
      << bus.Find("inventory", "product.updated").size() << " product.updated events";
  for (const Event& e : bus.Find("inventory", "product.updated")) {
    EXPECT_EQ(e.source(), "inventory-service");
    EXPECT_EQ(test_util::Payload<events::v1::ProductUpdated>(e).sku(), e.key());
  }

  // order.created on "orders" → stock.reserved on "inventory", held.
  Event created = Created("ord-1", {Line("KB-1", 2), Line("MS-1", 1)});
  ASSERT_THAT(bus.Publish("orders", created), IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return !bus.Find("inventory", "stock.reserved", "ord-1").empty(); }, kWait));
  Event reserved = bus.Find("inventory", "stock.reserved", "ord-1")[0];
  EXPECT_EQ(reserved.headers().at("correlation_id"), "ord-1");
  EXPECT_EQ(reserved.headers().at("causation_id"), created.id());
  std::vector<v1::Reservation> held = api.Reservations("ord-1");
  ASSERT_THAT(held, SizeIs(2));
  for (const v1::Reservation& r : held) EXPECT_EQ(r.state(), v1::RESERVATION_STATE_HELD);
  EXPECT_EQ(api.GetStock("KB-1")->available(), 48);

  // order.cancelled → stock.released, and the units are available again.
  ASSERT_THAT(bus.Publish("orders", Cancelled("ord-1", "cancelled by the customer")), IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return !bus.Find("inventory", "stock.released", "ord-1").empty(); }, kWait));
  EXPECT_EQ(api.GetStock("KB-1")->available(), 50);
  EXPECT_EQ(api.GetStock("MS-1")->available(), 100);
  for (const v1::Reservation& r : api.Reservations("ord-1")) {
    EXPECT_EQ(r.state(), v1::RESERVATION_STATE_RELEASED);
  }

  // The GPU-1 path: one unit, two wanted.
  ASSERT_THAT(bus.Publish("orders", Created("ord-2", {Line("GPU-1", 2)})), IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return !bus.Find("inventory", "stock.rejected", "ord-2").empty(); }, kWait));
  EXPECT_EQ(test_util::Payload<events::v1::StockRejected>(
                bus.Find("inventory", "stock.rejected", "ord-2")[0])
                .reason(),
            "out of stock: sku GPU-1 (wanted 2, 1 left)");

  (*app)->Shutdown();
  (*app)->Shutdown();  // idempotent
  (*broker)->Shutdown(absl::Seconds(1));
}

TEST_F(InventoryAppTest, ARestartKeepsTheStockAndDoesNotSeedAgain) {
  auto broker = relay::testing::StartBroker(dir_.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  BrokerClient bus(absl::StrCat("127.0.0.1:", (*broker)->port()));
  {
    auto app = InventoryApp::Start(AppOptions((*broker)->port()));
    ASSERT_THAT(app, IsOk());
    ASSERT_THAT(bus.Publish("orders", Created("ord-9", {Line("HD-1", 3)})), IsOk());
    ASSERT_TRUE(
        WaitFor([&] { return !bus.Find("inventory", "stock.reserved", "ord-9").empty(); }, kWait));
  }  // destroyed: shut down
  auto app = InventoryApp::Start(AppOptions((*broker)->port()));
  ASSERT_THAT(app, IsOk());
  InventoryClient api((*app)->port());
  EXPECT_EQ(api.GetStock("HD-1")->reserved(), 3);
  ASSERT_THAT((*app)->outbox_relay().Flush(kWait), IsOk());
  EXPECT_THAT(bus.Find("inventory", "product.updated"), SizeIs(10));
  EXPECT_THAT(bus.Find("inventory", "stock.reserved", "ord-9"), SizeIs(1));
  (*app)->Shutdown();
  (*broker)->Shutdown(absl::Seconds(1));
}

TEST_F(InventoryAppTest, StartedBeforeTheBrokerItCatchesUpWhenTheBrokerArrives) {
  // A free port for the broker: take one, then give it back.
  int port = 0;
  {
    auto probe = relay::testing::StartBroker(dir_.Join("probe"));
    ASSERT_THAT(probe, IsOk());
    port = (*probe)->port();
    (*probe)->Shutdown(absl::ZeroDuration());
  }
  auto app = InventoryApp::Start(AppOptions(port));
  ASSERT_THAT(app, IsOk());
  InventoryClient api((*app)->port());
  // Serving without a broker: the API answers, the outbox holds the seed.
  EXPECT_EQ(api.GetStock("GPU-1")->on_hand(), 1);
  EXPECT_FALSE((*app)->WaitUntilConsuming(absl::Milliseconds(200)));

  relay::testing::BrokerTestOptions options;
  options.listen_address = absl::StrCat("127.0.0.1:", port);
  auto broker = relay::testing::StartBroker(dir_.Join("broker"), options);
  ASSERT_THAT(broker, IsOk());
  BrokerClient bus(absl::StrCat("127.0.0.1:", port));

  ASSERT_TRUE(WaitFor([&] { return bus.Find("inventory", "product.updated").size() == 10; }, kWait))
      << bus.Find("inventory", "product.updated").size() << " product.updated events";
  ASSERT_TRUE((*app)->WaitUntilConsuming(kWait));
  ASSERT_THAT(bus.Publish("orders", Created("ord-late", {Line("SSD-1", 2)})), IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return !bus.Find("inventory", "stock.reserved", "ord-late").empty(); }, kWait));
  EXPECT_EQ(api.GetStock("SSD-1")->reserved(), 2);
  EXPECT_THAT(api.Reservations("ord-late"),
              Each(::testing::Property(&v1::Reservation::state, v1::RESERVATION_STATE_HELD)));

  (*app)->Shutdown();
  (*broker)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace relay::inventory
