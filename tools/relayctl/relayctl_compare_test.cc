// relayctl compare against a real stack in process: a broker, inventory
// and payment, and two order-services on ephemeral ports, one with
// --flow=events and one with --flow=sync, each with its own SQLite file
// (the seed data: c-alice has 1000.00 USD, c-dave 5.00).

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/inventory/inventory_app.h"
#include "services/order/order_app.h"
#include "services/payment/payment_app.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"
#include "tools/relayctl/cli.h"

namespace relay::ctl {
namespace {

using ::relay::testing::IsOk;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

std::string Local(int port) { return absl::StrCat("127.0.0.1:", port); }

class RelayctlCompareTest : public ::testing::Test {
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
    payment::PaymentApp::Options po;
    po.broker_target = broker_->target();
    po.db_path = dir_.Join("payment.db");
    auto payment = payment::PaymentApp::Start(po);
    ASSERT_THAT(payment, IsOk());
    payment_ = std::move(*payment);

    order::OrderApp::Options events;
    events.broker_target = broker_->target();
    events.db_path = dir_.Join("orders.db");
    auto order = order::OrderApp::Start(events);
    ASSERT_THAT(order, IsOk());
    events_ = std::move(*order);
    // The same broker, inventory and payment; its own database, and the
    // catalog in its own consumer group.
    order::OrderApp::Options sync = events;
    sync.db_path = dir_.Join("orders-sync.db");
    sync.flow = order::OrderApp::Options::Flow::kSync;
    sync.inventory_target = Local(inventory_->port());
    sync.payment_target = Local(payment_->port());
    order = order::OrderApp::Start(sync);
    ASSERT_THAT(order, IsOk());
    sync_ = std::move(*order);

    // Each order-service takes orders once product.updated filled its
    // catalog: until then an unknown sku is UNAVAILABLE (exit 4), after it
    // INVALID_ARGUMENT (exit 1).
    for (int port : {events_->port(), sync_->port()}) {
      ASSERT_TRUE(relay::testing::WaitFor(
          [&] {
            return Relayctl({"order", "place", "--customer", "c-alice", "--item", "NO-SUCH:1",
                             "--order", Local(port)})
                       .code == kExitError;
          },
          absl::Seconds(20)))
          << "the catalog never reached the order-service on port " << port;
    }
  }

  Outcome Relayctl(std::vector<std::string> argv) {
    for (const std::string& flag :
         {std::string("--broker"), broker_->target(), std::string("--inventory"),
          Local(inventory_->port()), std::string("--payment"), Local(payment_->port())}) {
      argv.push_back(flag);
    }
    std::ostringstream out, err;
    Io io;
    io.out = &out;
    io.err = &err;
    int code = ::relay::ctl::Run(argv, io);
    return {code, out.str(), err.str()};
  }

  Outcome Compare(std::vector<std::string> argv) {
    for (const std::string& flag : {std::string("--order"), Local(events_->port()),
                                    std::string("--sync-order"), Local(sync_->port())}) {
      argv.push_back(flag);
    }
    return Relayctl(std::move(argv));
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<broker::BrokerServer> broker_;
  std::unique_ptr<inventory::InventoryApp> inventory_;
  std::unique_ptr<payment::PaymentApp> payment_;
  std::unique_ptr<order::OrderApp> events_;
  std::unique_ptr<order::OrderApp> sync_;
};

TEST_F(RelayctlCompareTest, BothFlowsConfirmTheSameOrders) {
  Outcome o = Compare({"compare", "--rate", "10", "--duration", "1s", "--customers",
                       "c-alice,c-dave", "--skus", "CB-USB", "--seed", "7", "--json"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  google::protobuf::Value doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(o.out, &doc).ok()) << o.out;
  const auto& flows = doc.struct_value().fields().at("flows").struct_value().fields();
  ASSERT_EQ(flows.size(), 2u) << o.out;
  for (const char* flow : {"events", "sync"}) {
    SCOPED_TRACE(flow);
    const auto& f = flows.at(flow).struct_value().fields();
    EXPECT_EQ(f.at("sent").number_value(), 10);
    EXPECT_EQ(f.at("accepted").number_value(), 10);
    EXPECT_GT(f.at("confirmed").number_value(), 0);  // c-alice's.
    EXPECT_EQ(f.at("not_terminal").number_value(), 0);
    EXPECT_TRUE(f.at("errors").struct_value().fields().empty());
    EXPECT_GT(f.at("ended_per_s").number_value(), 0);
  }
  // One seed: the same orders, so the same customers confirm and decline.
  EXPECT_EQ(flows.at("events").struct_value().fields().at("confirmed").number_value(),
            flows.at("sync").struct_value().fields().at("confirmed").number_value());
  EXPECT_EQ(flows.at("sync").struct_value().fields().at("address").string_value(),
            Local(sync_->port()));

  o = Compare({"compare", "--rate", "10", "--duration", "300ms", "--customers", "c-alice", "--skus",
               "CB-USB"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_THAT(o.out, StartsWith("compare: orders at 10/s for 300ms through each flow"));
  EXPECT_THAT(o.out, ContainsRegex("\n +events +sync\n"));
  EXPECT_THAT(o.out, ContainsRegex("\nconfirmed +3 +3\n"));
  EXPECT_THAT(o.out, ContainsRegex("\nplaced -> end p99 +[0-9.]+m?s +[0-9.]+m?s\n"));
  EXPECT_THAT(o.out, HasSubstr("bench/flow_compare"));
}

TEST_F(RelayctlCompareTest, AStoppedSyncOrderServiceFailsBeforeAnyOrder) {
  const int port = sync_->port();
  sync_->Shutdown();
  Outcome o = Relayctl({"compare", "--order", Local(events_->port()), "--sync-order", Local(port),
                        "--timeout", "2s"});
  EXPECT_EQ(o.code, kExitUnavailable);
  EXPECT_EQ(o.out, "");
  EXPECT_THAT(o.err, HasSubstr("scripts/compose --profile compare up -d order-service-sync"));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

}  // namespace
}  // namespace relay::ctl
