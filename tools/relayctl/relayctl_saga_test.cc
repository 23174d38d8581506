// relayctl's order, stock, account, trace, health and load verbs against the
// real saga, in process: a broker and the three services on ephemeral
// ports, each with its own SQLite file and the seed data (c-alice has
// 1000.00 USD, c-dave 5.00; GPU-1 has one unit).

#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "services/inventory/inventory_app.h"
#include "services/order/order_app.h"
#include "services/payment/payment_app.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"
#include "tools/relayctl/cli.h"
#include "tools/relayctl/money.h"

namespace relay::ctl {
namespace {

using ::relay::testing::IsOk;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

// The order id in relayctl's human output of one order.
std::string OrderIdIn(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("ORDER +(\\S+)"))) return "";
  return m[1];
}

class RelayctlSagaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = relay::testing::StartBroker(dir_.Join("broker"));
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    inventory::InventoryApp::Options io;
    io.broker_target = broker_->target();
    io.db_path = dir_.Join("inventory.db");
    auto inventory = inventory::InventoryApp::Start(io);
    ASSERT_THAT(inventory, IsOk());
    inventory_ = std::move(*inventory);
    StartPayment();
    order::OrderApp::Options oo;
    oo.broker_target = broker_->target();
    oo.db_path = dir_.Join("orders.db");
    auto order = order::OrderApp::Start(oo);
    ASSERT_THAT(order, IsOk());
    order_ = std::move(*order);
    // order-service takes orders once product.updated filled its catalog:
    // until then an unknown sku is UNAVAILABLE (exit 4), after it INVALID_ARGUMENT.
    ASSERT_TRUE(relay::testing::WaitFor(
        [&] {
          return Relayctl({"order", "place", "--customer", "c-alice", "--item", "NO-SUCH:1"})
                     .code == kExitError;
        },
        absl::Seconds(20)))
        << "the catalog never reached order-service";
  }

  void StartPayment() {
    payment::PaymentApp::Options po;
    po.broker_target = broker_->target();
    po.db_path = dir_.Join("payment.db");
    auto payment = payment::PaymentApp::Start(po);
    ASSERT_THAT(payment, IsOk());
    payment_ = std::move(*payment);
  }

  Outcome Relayctl(std::vector<std::string> argv) {
    for (const std::string& flag :
         {std::string("--broker"), broker_->target(), std::string("--order"),
          absl::StrCat("127.0.0.1:", order_ ? order_->port() : 1), std::string("--inventory"),
          absl::StrCat("127.0.0.1:", inventory_->port()), std::string("--payment"),
          absl::StrCat("127.0.0.1:", payment_ ? payment_->port() : 1)}) {
      argv.push_back(flag);
    }
    std::ostringstream out, err;
    Io io;
    io.out = &out;
    io.err = &err;
    int code = ::relay::ctl::Run(argv, io);
    return {code, out.str(), err.str()};
  }

  int64_t Balance(const std::string& customer) {
    auto stub = relay::payment::v1::PaymentService::NewStub(
        relay::testing::Channel(absl::StrCat("127.0.0.1:", payment_->port())));
    grpc::ClientContext call;
    relay::payment::v1::GetAccountRequest request;
    request.set_customer_id(customer);
    relay::payment::v1::Account account;
    EXPECT_TRUE(stub->GetAccount(&call, request, &account).ok());
    return account.balance().amount_minor();
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<broker::BrokerServer> broker_;
  std::unique_ptr<inventory::InventoryApp> inventory_;
  std::unique_ptr<payment::PaymentApp> payment_;
  std::unique_ptr<order::OrderApp> order_;
};

TEST_F(RelayctlSagaTest, PlaceWaitPrintsTheConfirmedOrderAndTraceShowsItsSaga) {
  Outcome o = Relayctl({"order", "place", "--customer", "c-alice", "--item", "KB-1:2", "--wait"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nstatus +CONFIRMED\n"));
  EXPECT_THAT(o.out, ContainsRegex("\ntotal +178.00 USD\n"));
  EXPECT_THAT(o.out, ContainsRegex("\nKB-1 +Mechanical keyboard +2 +89.00 USD +178.00 USD\n"));
  const std::string id = OrderIdIn(o.out);
  ASSERT_FALSE(id.empty()) << o.out;

  o = Relayctl({"order", "get", id, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"status\": \"ORDER_STATUS_CONFIRMED\""));
  EXPECT_THAT(o.out, HasSubstr("\"payment_captured\": true"));

  // order.confirmed reaches the broker through order-service's outbox,
  // shortly after the order is CONFIRMED.
  EXPECT_TRUE(relay::testing::WaitFor([&] {
    o = Relayctl({"trace", id});
    return o.code == 0 && o.out.find("order.confirmed") != std::string::npos;
  })) << o.out
      << o.err;
  EXPECT_THAT(o.out, StartsWith(absl::StrCat("trace ", id, ": ")));
  for (const char* type :
       {"order.created", "stock.reserved", "payment.captured", "order.confirmed"}) {
    EXPECT_THAT(o.out, HasSubstr(type));
  }
  EXPECT_THAT(o.out, ContainsRegex("order.created +order-service +[a-z,-]*payment-service"));

  // The order's trace id (every event's traceparent, the logs' trace=)
  // names the same timeline.
  std::optional<std::string> trace_id = IdBitsHex(id);
  ASSERT_TRUE(trace_id.has_value()) << id;
  Outcome by_trace = Relayctl({"trace", *trace_id});
  ASSERT_EQ(by_trace.code, 0) << by_trace.err;
  EXPECT_EQ(by_trace.out.substr(0, by_trace.out.find('\n')), o.out.substr(0, o.out.find('\n')));
}

TEST_F(RelayctlSagaTest, PlaceWaitExitsFiveWhenTheOrderIsCancelled) {
  // Affordable but out of stock, so only inventory says no.
  ASSERT_EQ(Relayctl({"stock", "set", "LP-1", "0"}).code, 0);
  Outcome o = Relayctl({"order", "place", "--customer", "c-alice", "--item", "LP-1:1", "--wait"});
  EXPECT_EQ(o.code, 5) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nstatus +CANCELLED \\(out_of_stock: [^\n]*LP-1"));
  EXPECT_EQ(o.err, "");

  o = Relayctl({"order", "place", "--customer", "c-dave", "--item", "KB-1:1", "--wait", "--json"});
  EXPECT_EQ(o.code, 5) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"cancel_cause\": \"CANCEL_CAUSE_PAYMENT_DECLINED\""));
  EXPECT_THAT(o.out, HasSubstr("insufficient funds"));
}

TEST_F(RelayctlSagaTest, WatchFollowsAPlacedOrderToItsEnd) {
  Outcome o = Relayctl({"order", "place", "--customer", "c-alice", "--item", "MS-1:1"});
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string id = OrderIdIn(o.out);
  o = Relayctl({"order", "watch", id});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out,
              ContainsRegex(absl::StrCat(id, "  CONFIRMED  stock=reserved  payment=captured\n$")));
}

TEST_F(RelayctlSagaTest, QuietPlacePrintsOnlyTheOrderId) {
  Outcome o = Relayctl({"order", "place", "-q", "--customer", "c-alice", "--item", "MS-1:1"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("^ord-[0-9a-z]+\n$"));
  o = Relayctl({"order", "place", "--quiet", "--customer", "c-dave", "--item", "KB-1:1", "--wait"});
  EXPECT_EQ(o.code, 5) << o.err;  // the exit code still tells the outcome
  EXPECT_THAT(o.out, ContainsRegex("^ord-[0-9a-z]+\n$"));
}

TEST_F(RelayctlSagaTest, CancelWhilePendingThenWatchExitsFive) {
  payment_->Shutdown();  // The order stays PENDING without a payment outcome.
  Outcome o = Relayctl({"order", "place", "--customer", "c-bob", "--item", "MS-1:1"});
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string id = OrderIdIn(o.out);
  o = Relayctl({"order", "watch", id, "--wait-timeout", "300ms"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, absl::StrCat("relayctl: watch order ", id, ": still PENDING after 300ms\n"));
  EXPECT_THAT(o.out, HasSubstr("PENDING"));
  o = Relayctl({"order", "cancel", id, "--reason", "changed my mind"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nstatus +CANCELLED \\(customer: [^\n]*changed my mind"));
  o = Relayctl({"order", "watch", id});
  EXPECT_EQ(o.code, 5);
  EXPECT_THAT(o.out, HasSubstr("CANCELLED"));
}

TEST_F(RelayctlSagaTest, ErrorsMapToExitCodes) {
  Outcome o = Relayctl({"order", "get", "ord-missing"});
  EXPECT_EQ(o.code, 3);
  EXPECT_THAT(o.err, StartsWith("relayctl: get order 'ord-missing': "));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1);

  o = Relayctl({"order", "place", "--customer", "c-alice", "--item", "NO-SUCH:1"});
  EXPECT_EQ(o.code, 1);
  EXPECT_THAT(o.err, StartsWith("relayctl: place order: "));
  EXPECT_THAT(o.err, HasSubstr("NO-SUCH"));

  o = Relayctl({"order", "place", "--customer", "c-alice", "--item", "CB-USB:1", "--wait"});
  ASSERT_EQ(o.code, 0) << o.err;
  o = Relayctl({"order", "cancel", OrderIdIn(o.out)});  // Already CONFIRMED.
  EXPECT_EQ(o.code, 1);
  EXPECT_THAT(o.err, StartsWith("relayctl: cancel order "));

  order_->Shutdown();
  o = Relayctl({"order", "list", "--timeout", "2s"});
  EXPECT_EQ(o.code, 4);
  EXPECT_THAT(o.err, StartsWith("relayctl: list orders: cannot reach 127.0.0.1:"));
}

TEST_F(RelayctlSagaTest, ListFiltersAndTheIdempotencyKeyReplays) {
  Outcome first = Relayctl({"order", "place", "--customer", "c-carol", "--item", "CB-USB:1",
                            "--key", "carol-1", "--wait"});
  ASSERT_EQ(first.code, 0) << first.err;
  Outcome again = Relayctl(
      {"order", "place", "--customer", "c-carol", "--item", "CB-USB:1", "--key", "carol-1"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.out, StartsWith("(replayed: "));
  EXPECT_EQ(OrderIdIn(again.out), OrderIdIn(first.out));
  ASSERT_EQ(
      Relayctl({"order", "place", "--customer", "c-carol", "--item", "GPU-1:5", "--wait"}).code, 5);

  Outcome o = Relayctl({"order", "list", "--customer", "c-carol"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, StartsWith("ORDER "));
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 3) << o.out;
  EXPECT_THAT(o.out, ContainsRegex("c-carol +CANCELLED +1495.00 USD +GPU-1x5 +[0-9TZ:.-]+ "
                                   "+(out_of_stock|payment_declined): "));
  o = Relayctl({"order", "list", "--customer", "c-carol", "--status", "confirmed", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("\"idempotency_key\": \"carol-1\""));
  EXPECT_THAT(o.out, Not(HasSubstr("GPU-1")));
  o = Relayctl({"order", "list", "--limit", "1"});
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 3) << o.out;  // Header, row, "(more".
  EXPECT_THAT(o.out, HasSubstr("(more: --page-token "));
}

TEST_F(RelayctlSagaTest, StockListAndSet) {
  Outcome o = Relayctl({"stock", "list"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, StartsWith("SKU "));
  EXPECT_THAT(o.out, ContainsRegex("\nGPU-1 +Graphics card +299.00 USD +1 +0 +1\n"));
  o = Relayctl({"stock", "set", "GPU-1", "3"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nGPU-1 +Graphics card +299.00 USD +3 +0 +3\n"));
  o = Relayctl({"stock", "set", "NEW-1", "4", "--name", "New thing", "--price", "9.99"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nNEW-1 +New thing +9.99 USD +4 +0 +4\n"));
  o = Relayctl({"stock", "set", "NOPE-1", "4"});
  EXPECT_EQ(o.code, 3) << o.err;
  EXPECT_THAT(o.err, StartsWith("relayctl: set stock of 'NOPE-1': "));
}

TEST_F(RelayctlSagaTest, AccountListAndExactDeposit) {
  Outcome o = Relayctl({"account", "list"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nc-dave +Dave +5.00 USD\n"));
  const int64_t before = Balance("c-alice");
  o = Relayctl({"account", "deposit", "c-alice", "12.5"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(Balance("c-alice"), before + 1250);
  EXPECT_THAT(o.out, HasSubstr(absl::StrCat(FormatMinorUnits(before + 1250, "USD"), " USD")));
  o = Relayctl({"account", "deposit", "c-erin", "0.05", "--name", "Erin"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ContainsRegex("\nc-erin +Erin +0.05 USD\n"));
  o = Relayctl({"account", "deposit", "c-ghost", "1"});
  EXPECT_EQ(o.code, 3) << o.err;
}

TEST_F(RelayctlSagaTest, HealthOfEveryServiceIsServing) {
  Outcome o = Relayctl({"health"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 5) << o.out;
  for (const char* service : {"broker", "order", "inventory", "payment"}) {
    EXPECT_THAT(o.out, ContainsRegex(absl::StrCat("\n", service, " +127.0.0.1:[0-9]+ +SERVING ")));
  }
}

TEST_F(RelayctlSagaTest, LoadPlacesOrdersAtTheRateAndFollowsEachToItsEnd) {
  Outcome o = Relayctl({"load", "--rate", "20", "--duration", "1s", "--customers", "c-alice,c-dave",
                        "--skus", "CB-USB", "--seed", "7", "--json"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_THAT(o.out, HasSubstr("\"sent\": 20"));
  EXPECT_THAT(o.out, HasSubstr("\"accepted\": 20"));
  EXPECT_THAT(o.out, HasSubstr("\"not_terminal\": 0"));
  EXPECT_THAT(o.out, HasSubstr("\"errors\": {}"));
  EXPECT_THAT(o.out, HasSubstr("\"payment_declined\": "));  // c-dave cannot pay 9.50.
  EXPECT_THAT(o.out, HasSubstr("\"count\": 20"));

  // Blanks around list items are no part of them: " c-alice" was taken as
  // an unknown account, and every order of it declined.
  o = Relayctl({"load", "--rate", "20", "--duration", "500ms", "--customers", "c-alice, c-alice ",
                "--skus", " CB-USB", "--json"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_THAT(o.out, HasSubstr("\"not_terminal\": 0"));
  EXPECT_THAT(o.out, Not(HasSubstr("payment_declined")));

  // Without --customers/--skus it orders what the services have.
  o = Relayctl({"load", "--rate", "10", "--duration", "500ms", "--max-orders", "3"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_THAT(o.out, StartsWith("load: 3 orders sent at 10/s for 500ms"));
  EXPECT_THAT(o.out, ContainsRegex("latency placed -> CONFIRMED/CANCELLED \\(3 orders\\): p50 "));
}

}  // namespace
}  // namespace relay::ctl
