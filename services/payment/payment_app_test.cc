// PaymentApp against a real in-process broker: events in on topic "orders",
// events out on topic "payments", state over the gRPC API.

#include "services/payment/payment_app.h"

#include <grpcpp/client_context.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/events/subscriber.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/events/v1/payment_events.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::payment {
namespace {

namespace ev = relay::events::v1;
using relay::testing::IsOk;
using relay::testing::StatusIs;
using relay::testing::WaitFor;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

ev::Money Usd(int64_t minor) {
  ev::Money m;
  m.set_amount_minor(minor);
  m.set_currency("USD");
  return m;
}

ev::Event Created(const std::string& order_id, const std::string& customer, int64_t total) {
  ev::OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  *m.mutable_total() = Usd(total);
  ev::Event e;
  e.set_id(absl::StrCat(order_id, "-created"));
  e.set_type("order.created");
  e.set_key(order_id);
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = order_id;
  m.SerializeToString(e.mutable_data());
  return e;
}

ev::Event Cancelled(const std::string& order_id, const std::string& customer) {
  ev::OrderCancelled m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  m.set_cause(ev::CANCEL_CAUSE_CUSTOMER);
  m.set_reason("cancelled by the customer");
  ev::Event e;
  e.set_id(absl::StrCat(order_id, "-cancelled"));
  e.set_type("order.cancelled");
  e.set_key(order_id);
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = order_id;
  m.SerializeToString(e.mutable_data());
  return e;
}

// A client of the broker and of the app, every call with a deadline.
class Clients {
 public:
  Clients(const std::string& broker_target, int app_port)
      : broker_(relay::broker::v1::Broker::NewStub(relay::MakeChannel(broker_target))),
        payments_(
            v1::PaymentService::NewStub(relay::MakeChannel(absl::StrCat("127.0.0.1:", app_port)))),
        publisher_(relay::MakeChannel(broker_target), {}) {}

  // Publishes to "orders" and waits until the broker holds it.
  void Publish(const ev::Event& e) {
    std::future<absl::StatusOr<uint64_t>> offset = publisher_.Publish("orders", e);
    ASSERT_EQ(offset.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    ASSERT_THAT(offset.get(), IsOk());
  }

  // The events on topic "payments" with key `order_id`.
  std::vector<ev::Event> Payments(const std::string& order_id) {
    relay::broker::v1::ReadRequest request;
    request.set_topic("payments");
    request.set_offset(0);
    request.set_key(order_id);
    request.set_max_events(1000);
    relay::broker::v1::ReadResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (!broker_->Read(&context, request, &response).ok()) return {};
    return {response.events().begin(), response.events().end()};
  }

  // The types of Payments(order_id), in order.
  std::vector<std::string> PaymentTypes(const std::string& order_id) {
    std::vector<std::string> types;
    for (const ev::Event& e : Payments(order_id)) types.push_back(e.type());
    return types;
  }

  absl::StatusOr<v1::Payment> GetPayment(const std::string& order_id) {
    v1::GetPaymentRequest request;
    request.set_order_id(order_id);
    v1::Payment payment;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status s = payments_->GetPayment(&context, request, &payment);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return payment;
  }

  int64_t Balance(const std::string& customer) {
    v1::GetAccountRequest request;
    request.set_customer_id(customer);
    v1::Account account;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (!payments_->GetAccount(&context, request, &account).ok()) return -1;
    return account.balance().amount_minor();
  }

 private:
  std::unique_ptr<relay::broker::v1::Broker::Stub> broker_;
  std::unique_ptr<v1::PaymentService::Stub> payments_;
  relay::events::Publisher publisher_;
};

PaymentApp::Options AppOptions(const std::string& broker, const std::string& db_path) {
  PaymentApp::Options o;
  o.broker_target = broker;
  o.db_path = db_path;
  o.shutdown_grace = absl::Seconds(2);
  return o;
}

TEST(PaymentApp, CapturesAndRefundsAnOrderThroughTheBroker) {
  relay::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
      relay::testing::StartBroker(dir.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  absl::StatusOr<std::unique_ptr<PaymentApp>> app =
      PaymentApp::Start(AppOptions((*broker)->target(), dir.Join("payment/payment.db")));
  ASSERT_THAT(app, IsOk());
  Clients clients((*broker)->target(), (*app)->port());

  ev::Event created = Created("ord-1", "c-alice", 1250);
  ASSERT_NO_FATAL_FAILURE(clients.Publish(created));
  ASSERT_TRUE(WaitFor([&] { return !clients.Payments("ord-1").empty(); }, kWait));
  std::vector<ev::Event> out = clients.Payments("ord-1");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type(), "payment.captured");
  EXPECT_EQ(out[0].source(), "payment-service");
  EXPECT_EQ(out[0].headers().at("correlation_id"), "ord-1");
  EXPECT_EQ(out[0].headers().at("causation_id"), created.id());
  ev::PaymentCaptured captured;
  ASSERT_TRUE(captured.ParseFromString(out[0].data()));
  EXPECT_EQ(captured.amount().amount_minor(), 1250);

  absl::StatusOr<v1::Payment> payment = clients.GetPayment("ord-1");
  ASSERT_THAT(payment, IsOk());
  EXPECT_EQ(payment->status(), v1::PAYMENT_STATUS_CAPTURED);
  EXPECT_EQ(payment->payment_id(), captured.payment_id());
  EXPECT_EQ(clients.Balance("c-alice"), 100000 - 1250);

  ASSERT_NO_FATAL_FAILURE(clients.Publish(Cancelled("ord-1", "c-alice")));
  ASSERT_TRUE(WaitFor([&] { return clients.Payments("ord-1").size() >= 2; }, kWait));
  EXPECT_THAT(clients.PaymentTypes("ord-1"),
              ::testing::ElementsAre("payment.captured", "payment.refunded"));
  EXPECT_EQ(clients.Balance("c-alice"), 100000);
  EXPECT_EQ(clients.GetPayment("ord-1")->status(), v1::PAYMENT_STATUS_REFUNDED);

  (*app)->Shutdown();
  (*app)->Shutdown();  // idempotent
}

TEST(PaymentApp, DeclinesAnOrderItCannotAfford) {
  relay::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
      relay::testing::StartBroker(dir.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  absl::StatusOr<std::unique_ptr<PaymentApp>> app =
      PaymentApp::Start(AppOptions((*broker)->target(), dir.Join("payment.db")));
  ASSERT_THAT(app, IsOk());
  Clients clients((*broker)->target(), (*app)->port());

  ASSERT_NO_FATAL_FAILURE(clients.Publish(Created("ord-2", "c-dave", 1250)));
  ASSERT_TRUE(WaitFor([&] { return !clients.Payments("ord-2").empty(); }, kWait));
  std::vector<ev::Event> out = clients.Payments("ord-2");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type(), "payment.declined");
  ev::PaymentDeclined declined;
  ASSERT_TRUE(declined.ParseFromString(out[0].data()));
  EXPECT_EQ(declined.reason(), "insufficient funds: balance 5.00 USD, order 12.50 USD");
  EXPECT_EQ(clients.Balance("c-dave"), 500);
  (*app)->Shutdown();
}

TEST(PaymentApp, StartedBeforeTheBrokerCatchesUpWhenItArrives) {
  relay::testing::TempDir dir;
  const int port = relay::testing::PickFreePort();
  ASSERT_GT(port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", port);

  absl::StatusOr<std::unique_ptr<PaymentApp>> app =
      PaymentApp::Start(AppOptions(target, dir.Join("payment.db")));
  ASSERT_THAT(app, IsOk());
  // The API answers without a broker.
  Clients clients(target, (*app)->port());
  EXPECT_EQ(clients.Balance("c-bob"), 50000);

  relay::testing::BrokerTestOptions broker_options;
  broker_options.listen_address = target;
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
      relay::testing::StartBroker(dir.Join("broker"), broker_options);
  ASSERT_THAT(broker, IsOk());

  ASSERT_NO_FATAL_FAILURE(clients.Publish(Created("ord-3", "c-bob", 2500)));
  ASSERT_TRUE(WaitFor([&] { return !clients.Payments("ord-3").empty(); }, kWait));
  EXPECT_THAT(clients.PaymentTypes("ord-3"), ::testing::ElementsAre("payment.captured"));
  EXPECT_EQ(clients.Balance("c-bob"), 50000 - 2500);
  (*app)->Shutdown();
}

TEST(PaymentApp, ARestartKeepsTheLedgerAndChargesNothingTwice) {
  relay::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<relay::broker::BrokerServer>> broker =
      relay::testing::StartBroker(dir.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  const std::string db_path = dir.Join("payment.db");
  {
    absl::StatusOr<std::unique_ptr<PaymentApp>> app =
        PaymentApp::Start(AppOptions((*broker)->target(), db_path));
    ASSERT_THAT(app, IsOk());
    Clients clients((*broker)->target(), (*app)->port());
    ASSERT_NO_FATAL_FAILURE(clients.Publish(Created("ord-4", "c-carol", 5000)));
    ASSERT_TRUE(WaitFor([&] { return !clients.Payments("ord-4").empty(); }, kWait));
    (*app)->Shutdown();
  }
  absl::StatusOr<std::unique_ptr<PaymentApp>> app =
      PaymentApp::Start(AppOptions((*broker)->target(), db_path));
  ASSERT_THAT(app, IsOk());
  Clients clients((*broker)->target(), (*app)->port());
  EXPECT_EQ(clients.Balance("c-carol"), 20000 - 5000);  // not seeded again

  // The same order.created again (a re-publish the broker dedupes) and the cancel.
  ASSERT_NO_FATAL_FAILURE(clients.Publish(Created("ord-4", "c-carol", 5000)));
  ASSERT_NO_FATAL_FAILURE(clients.Publish(Cancelled("ord-4", "c-carol")));
  ASSERT_TRUE(WaitFor([&] { return clients.Payments("ord-4").size() >= 2; }, kWait));
  EXPECT_THAT(clients.PaymentTypes("ord-4"),
              ::testing::ElementsAre("payment.captured", "payment.refunded"));
  EXPECT_EQ(clients.Balance("c-carol"), 20000);
  (*app)->Shutdown();
}

TEST(PaymentApp, BadOptionsAreRefused) {
  relay::testing::TempDir dir;
  PaymentApp::Options o = AppOptions("", dir.Join("payment.db"));
  EXPECT_THAT(PaymentApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("broker")));
  o = AppOptions("127.0.0.1:1", "");
  EXPECT_THAT(PaymentApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("database")));
  o = AppOptions("127.0.0.1:1", dir.Join("payment.db"));
  o.decline_rate = 1.5;
  EXPECT_THAT(PaymentApp::Start(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decline_rate")));
}

TEST(PaymentApp, ADatabaseItCannotOpenFailsTheStart) {
  relay::testing::TempDir dir;
  // A file where the database's directory should be.
  std::ofstream(dir.Join("file")) << "not a directory";
  PaymentApp::Options o = AppOptions("127.0.0.1:1", dir.Join("file/payment.db"));
  absl::StatusOr<std::unique_ptr<PaymentApp>> app = PaymentApp::Start(o);
  EXPECT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr(dir.Join("file")));
}

}  // namespace

// The overall grpc.health.v1 status of the server at `target`.
grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& target) {
  auto stub = grpc::health::v1::Health::NewStub(relay::MakeChannel(target));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  if (!stub->Check(&context, request, &response).ok()) {
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

// Issue 7, item 5: a service whose subscription the broker refuses never
// consumes again, yet its health said SERVING. The broker refuses another
// type filter while a member of the group's filter is connected (an older
// version still running), and gives the group the new filter once none is.
TEST(PaymentAppHealth, NotServingWhileTheBrokerRefusesItsSubscription) {
  relay::testing::TempDir dir;
  auto broker = relay::testing::StartBroker(dir.Join("broker"));
  ASSERT_THAT(broker, relay::testing::IsOk());
  // The group exists, with another type filter, and its member is connected.
  relay::events::Subscriber::Options o;
  o.topic = "orders";
  o.group = "payment-service";
  relay::events::Subscriber older(relay::MakeChannel((*broker)->target()), o);
  older.On("order.archived", [](const relay::events::v1::Event&,
                                const relay::events::DeliveryInfo&) { return absl::OkStatus(); });
  older.Start();
  ASSERT_TRUE(older.WaitUntilOpen(absl::Seconds(20)));

  PaymentApp::Options options;
  options.broker_target = (*broker)->target();
  options.db_path = dir.Join("payment.db");
  auto app = PaymentApp::Start(options);
  ASSERT_THAT(app, relay::testing::IsOk());
  const std::string target = absl::StrCat("127.0.0.1:", (*app)->port());
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] { return Health(target) == grpc::health::v1::HealthCheckResponse::NOT_SERVING; },
      absl::Seconds(20)));
  // The older version stops: the service's retry takes the group over.
  older.Stop();
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] { return Health(target) == grpc::health::v1::HealthCheckResponse::SERVING; },
      absl::Seconds(20)));
  (*app)->Shutdown();
}

}  // namespace relay::payment
