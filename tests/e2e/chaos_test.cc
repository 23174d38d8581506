// Chaos: the four binaries as real processes under a steady stream of
// orders, one of them (the broker too) killed with SIGKILL every few seconds
// and restarted. Then the load stops and the invariants of docs/INVARIANTS.md are checked
// over every order:
//   I1 every order is CONFIRMED or CANCELLED;
//   I2 every balance = initial - totals of the customer's CONFIRMED orders,
//      and no cancelled order keeps a capture;
//   I3 every on-hand = initial - quantities of CONFIRMED orders, and no
//      reservation is still held.
// Bounded: RELAY_CHAOS_SECONDS of chaos (default 60), then at most 120 s to
// settle.

#include <signal.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using std::chrono::system_clock;

struct Proc {
  std::string name;
  std::string binary;
  int port = 0;
  std::vector<std::string> extra;
  testing::Subprocess process;
};

class System {
 public:
  explicit System(const std::string& dir) : dir_(dir) {
    broker_port_ = testing::PickFreePort();
    Add("broker", RELAY_BROKER_BIN, broker_port_,
        {"--data_dir=" + dir + "/broker", "--checkpoint_interval=50ms"});
    Add("order", RELAY_ORDER_BIN, testing::PickFreePort(), {"--db=" + dir + "/order/orders.db"});
    Add("inventory", RELAY_INVENTORY_BIN, testing::PickFreePort(),
        {"--db=" + dir + "/inventory/inventory.db"});
    Add("payment", RELAY_PAYMENT_BIN, testing::PickFreePort(), {"--db=" + dir + "/payment/payment.db"});
  }

  void Add(const std::string& name, const std::string& binary, int port,
           std::vector<std::string> extra) {
    auto p = std::make_unique<Proc>();
    p->name = name;
    p->binary = binary;
    p->port = port;
    p->extra = std::move(extra);
    procs_.push_back(std::move(p));
  }

  bool Start(Proc& p) {
    std::vector<std::string> argv = {p.binary, absl::StrCat("--listen=127.0.0.1:", p.port)};
    if (p.name != "broker") argv.push_back(absl::StrCat("--broker=127.0.0.1:", broker_port_));
    for (const std::string& e : p.extra) argv.push_back(e);
    return p.process.Start(argv, dir_ + "/" + p.name + ".log");
  }

  bool StartAll() {
    for (auto& p : procs_) {
      if (!Start(*p)) return false;
    }
    return true;
  }

  // Waits until every process accepts connections.
  bool WaitReady(absl::Duration timeout) {
    for (auto& p : procs_) {
      auto ch = MakeChannel(absl::StrCat("127.0.0.1:", p->port));
      if (!ch->WaitForConnected(system_clock::now() +
                                std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)))) {
        ADD_FAILURE() << p->name << " did not come up; see " << dir_ << "/" << p->name << ".log";
        return false;
      }
    }
    return true;
  }

  std::vector<std::unique_ptr<Proc>>& procs() { return procs_; }
  std::string Target(const std::string& name) {
    for (auto& p : procs_) {
      if (p->name == name) return absl::StrCat("127.0.0.1:", p->port);
    }
    return "";
  }

 private:
  std::string dir_;
  int broker_port_ = 0;
  std::vector<std::unique_ptr<Proc>> procs_;
};

template <typename Fn>
grpc::Status Call(Fn fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(system_clock::now() + std::chrono::seconds(3));
  return fn(&ctx);
}

TEST(Chaos, KillNineAnyProcessKeepsTheInvariants) {
  const char* env = std::getenv("RELAY_CHAOS_SECONDS");
  const int chaos_seconds = env != nullptr ? std::atoi(env) : 60;
  testing::TempDir dir;
  System system(dir.path());
  ASSERT_TRUE(system.StartAll());
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  auto orders = order::v1::OrderService::NewStub(MakeChannel(system.Target("order")));
  auto inventory = inventory::v1::InventoryService::NewStub(MakeChannel(system.Target("inventory")));
  auto payments = payment::v1::PaymentService::NewStub(MakeChannel(system.Target("payment")));

  // The initial state, once seeded and the catalog reached order-service.
  inventory::v1::ListProductsResponse products;
  payment::v1::ListAccountsResponse accounts;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        products.Clear();
        accounts.Clear();
        return Call([&](grpc::ClientContext* c) {
                 return inventory->ListProducts(c, {}, &products);
               }).ok() &&
               Call([&](grpc::ClientContext* c) {
                 return payments->ListAccounts(c, {}, &accounts);
               }).ok() &&
               products.products_size() > 0 && accounts.accounts_size() > 0;
      },
      absl::Seconds(20)));
  // Enough money and stock that most orders confirm; GPU-1 keeps its single
  // unit (out-of-stock cancels), c-nobody has no account (declines), and
  // some orders are cancelled by the customer.
  for (const auto& a : accounts.accounts()) {
    payment::v1::DepositRequest dep;
    dep.set_customer_id(a.customer_id());
    dep.mutable_amount()->set_amount_minor(100000000);
    dep.mutable_amount()->set_currency(a.balance().currency());
    payment::v1::Account out;
    ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return payments->Deposit(c, dep, &out); }).ok());
  }
  for (const auto& p : products.products()) {
    if (p.sku() == "GPU-1") continue;
    inventory::v1::SetStockRequest set;
    set.set_sku(p.sku());
    set.set_on_hand(100000);
    inventory::v1::Product out;
    ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return inventory->SetStock(c, set, &out); }).ok());
  }
  products.Clear();
  accounts.Clear();
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return inventory->ListProducts(c, {}, &products); }).ok());
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return payments->ListAccounts(c, {}, &accounts); }).ok());
  std::map<std::string, int64_t> initial_stock, initial_balance;
  for (const auto& p : products.products()) initial_stock[p.sku()] = p.on_hand();
  for (const auto& a : accounts.accounts()) initial_balance[a.customer_id()] = a.balance().amount_minor();
  std::vector<std::string> skus, customers;
  for (const auto& [sku, n] : initial_stock) skus.push_back(sku);
  for (const auto& [c, b] : initial_balance) customers.push_back(c);
  customers.push_back("c-nobody");  // an unknown account: declined

  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0}, refused{0};
  std::thread load([&] {
    std::mt19937 rng(7);
    int n = 0;
    absl::Time next = absl::Now();
    while (!stop) {
      next += absl::Milliseconds(20);  // ~50 orders/s
      absl::SleepFor(next - absl::Now());
      order::v1::PlaceOrderRequest req;
      req.set_customer_id(customers[rng() % customers.size()]);
      req.set_idempotency_key(absl::StrCat("chaos-", n++));
      int lines = 1 + static_cast<int>(rng() % 2);
      std::vector<std::string> picked;
      for (int i = 0; i < lines; ++i) {
        const std::string& sku = skus[rng() % skus.size()];
        if (std::find(picked.begin(), picked.end(), sku) != picked.end()) continue;
        picked.push_back(sku);
        auto* item = req.add_items();
        item->set_sku(sku);
        item->set_quantity(1 + static_cast<int>(rng() % 2));
      }
      // Retry with the same idempotency key while order-service is down.
      bool ok = false;
      std::string placed_id;
      for (int attempt = 0; attempt < 20 && !stop && !ok; ++attempt) {
        order::v1::PlaceOrderResponse resp;
        grpc::Status s = Call([&](grpc::ClientContext* c) { return orders->PlaceOrder(c, req, &resp); });
        if (s.ok()) {
          ok = true;
          placed_id = resp.order().order_id();
        } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          absl::SleepFor(absl::Milliseconds(100));
        } else {
          break;
        }
      }
      (ok ? accepted : refused)++;
      if (ok && rng() % 20 == 0) {  // the customer changes their mind (may be too late)
        order::v1::CancelOrderRequest cancel;
        cancel.set_order_id(placed_id);
        order::v1::Order out;
        Call([&](grpc::ClientContext* c) { return orders->CancelOrder(c, cancel, &out); });
      }
    }
  });

  // Kill a random process every 3-6 s and restart it.
  std::mt19937 rng(42);
  std::map<std::string, int> kills;
  absl::Time chaos_end = absl::Now() + absl::Seconds(chaos_seconds);
  while (absl::Now() < chaos_end) {
    absl::SleepFor(absl::Milliseconds(3000 + rng() % 3000));
    Proc& victim = *system.procs()[rng() % system.procs().size()];
    victim.process.Stop(SIGKILL);
    ++kills[victim.name];
    ASSERT_TRUE(system.Start(victim)) << "restarting " << victim.name;
  }
  stop = true;
  load.join();
  ASSERT_TRUE(system.WaitReady(absl::Seconds(20)));

  // Settle: every order terminal.
  absl::Time settle_start = absl::Now();
  std::vector<order::v1::Order> all;
  auto list_all = [&]() -> bool {
    all.clear();
    order::v1::ListOrdersRequest req;
    req.set_page_size(1000);
    while (true) {
      order::v1::ListOrdersResponse resp;
      if (!Call([&](grpc::ClientContext* c) { return orders->ListOrders(c, req, &resp); }).ok()) {
        return false;
      }
      for (auto& o : *resp.mutable_orders()) all.push_back(std::move(o));
      if (resp.next_page_token().empty()) return true;
      req.set_page_token(resp.next_page_token());
    }
  };
  bool settled = testing::WaitFor(
      [&] {
        if (!list_all()) return false;
        for (const auto& o : all) {
          if (o.status() == order::v1::ORDER_STATUS_PENDING) return false;
        }
        return true;
      },
      absl::Seconds(120));
  absl::Duration settle_time = absl::Now() - settle_start;
  int confirmed = 0, cancelled = 0, pending = 0;
  for (const auto& o : all) {
    if (o.status() == order::v1::ORDER_STATUS_CONFIRMED) ++confirmed;
    else if (o.status() == order::v1::ORDER_STATUS_CANCELLED) ++cancelled;
    else ++pending;
  }
  std::string kill_summary;
  for (const auto& [name, n] : kills) absl::StrAppend(&kill_summary, name, "=", n, " ");
  std::printf("chaos: %zu orders (accepted %d, refused %d), kills: %s| confirmed %d, cancelled %d, "
              "pending %d, settled in %s\n",
              all.size(), accepted.load(), refused.load(), kill_summary.c_str(), confirmed,
              cancelled, pending, absl::FormatDuration(settle_time).c_str());
  EXPECT_TRUE(settled) << pending << " orders still PENDING (I1)";
  // The mix must exercise both paths, or the invariants prove little.
  EXPECT_GT(confirmed, static_cast<int>(all.size()) / 2);
  EXPECT_GT(cancelled, 0);

  // I2: balances.
  std::map<std::string, int64_t> expect_balance = initial_balance;
  std::map<std::string, int64_t> expect_stock = initial_stock;
  for (const auto& o : all) {
    if (o.status() != order::v1::ORDER_STATUS_CONFIRMED) continue;
    expect_balance[o.customer_id()] -= o.total().amount_minor();
    for (const auto& l : o.lines()) expect_stock[l.sku()] -= l.quantity();
  }
  // Compensation runs after the order turned terminal: wait for it too.
  bool money_ok = testing::WaitFor(
      [&] {
        payment::v1::ListAccountsResponse now;
        if (!Call([&](grpc::ClientContext* c) { return payments->ListAccounts(c, {}, &now); }).ok()) {
          return false;
        }
        for (const auto& a : now.accounts()) {
          if (a.balance().amount_minor() != expect_balance[a.customer_id()]) return false;
        }
        return true;
      },
      absl::Seconds(60));
  payment::v1::ListAccountsResponse final_accounts;
  Call([&](grpc::ClientContext* c) { return payments->ListAccounts(c, {}, &final_accounts); });
  for (const auto& a : final_accounts.accounts()) {
    EXPECT_EQ(a.balance().amount_minor(), expect_balance[a.customer_id()])
        << "I2: balance of " << a.customer_id();
  }
  EXPECT_TRUE(money_ok);
  for (const auto& o : all) {
    if (o.status() != order::v1::ORDER_STATUS_CANCELLED) continue;
    payment::v1::GetPaymentRequest req;
    req.set_order_id(o.order_id());
    payment::v1::Payment p;
    grpc::Status s = Call([&](grpc::ClientContext* c) { return payments->GetPayment(c, req, &p); });
    if (s.ok()) {
      EXPECT_NE(p.status(), payment::v1::PAYMENT_STATUS_CAPTURED)
          << "I2: cancelled order " << o.order_id() << " keeps its capture";
    }
  }

  // I3: stock and reservations.
  bool stock_ok = testing::WaitFor(
      [&] {
        inventory::v1::ListProductsResponse now;
        inventory::v1::ListReservationsRequest held;
        held.set_held_only(true);
        held.set_limit(1000);
        inventory::v1::ListReservationsResponse reservations;
        if (!Call([&](grpc::ClientContext* c) { return inventory->ListProducts(c, {}, &now); }).ok() ||
            !Call([&](grpc::ClientContext* c) {
               return inventory->ListReservations(c, held, &reservations);
             }).ok()) {
          return false;
        }
        for (const auto& p : now.products()) {
          if (p.on_hand() != expect_stock[p.sku()] || p.reserved() != 0) return false;
        }
        return reservations.reservations_size() == 0;
      },
      absl::Seconds(60));
  inventory::v1::ListProductsResponse final_products;
  Call([&](grpc::ClientContext* c) { return inventory->ListProducts(c, {}, &final_products); });
  for (const auto& p : final_products.products()) {
    EXPECT_EQ(p.on_hand(), expect_stock[p.sku()]) << "I3: on hand of " << p.sku();
    EXPECT_EQ(p.reserved(), 0) << "I3: reserved of " << p.sku();
  }
  EXPECT_TRUE(stock_ok);

  for (auto& p : system.procs()) {
    int status = p->process.Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << p->name << " did not exit 0 on SIGTERM (status " << status << ")";
  }
}

}  // namespace
}  // namespace relay
