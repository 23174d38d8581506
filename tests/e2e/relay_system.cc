#include "tests/e2e/relay_system.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"
#include "tests/testing/wait.h"

namespace relay::testing {

RelaySystem::RelaySystem(const std::string& dir, const RelayBinaries& binaries,
                         std::vector<std::string> broker_flags)
    : dir_(dir) {
  broker_port_ = PickFreePort();
  broker_flags.insert(broker_flags.begin(), "--data_dir=" + dir + "/broker");
  Add("broker", binaries.broker, broker_port_, std::move(broker_flags));
  Add("order", binaries.order, PickFreePort(), {"--db=" + dir + "/order/orders.db"});
  Add("inventory", binaries.inventory, PickFreePort(), {"--db=" + dir + "/inventory/inventory.db"});
  Add("payment", binaries.payment, PickFreePort(), {"--db=" + dir + "/payment/payment.db"});
}

void RelaySystem::Add(const std::string& name, const std::string& binary, int port,
                      std::vector<std::string> extra) {
  auto p = std::make_unique<Proc>();
  p->name = name;
  p->binary = binary;
  p->port = port;
  p->extra = std::move(extra);
  procs_.push_back(std::move(p));
}

bool RelaySystem::Start(Proc& p) {
  std::vector<std::string> argv = {p.binary, absl::StrCat("--listen=127.0.0.1:", p.port)};
  if (p.name != "broker") argv.push_back(absl::StrCat("--broker=127.0.0.1:", broker_port_));
  for (const std::string& e : p.extra) argv.push_back(e);
  return p.process.Start(argv, dir_ + "/" + p.name + ".log");
}

bool RelaySystem::StartAll() {
  for (auto& p : procs_) {
    if (!Start(*p)) return false;
  }
  return true;
}

bool RelaySystem::WaitReady(absl::Duration timeout) {
  for (auto& p : procs_) {
    auto ch = MakeChannel(absl::StrCat("127.0.0.1:", p->port));
    if (!ch->WaitForConnected(std::chrono::system_clock::now() +
                              std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)))) {
      ADD_FAILURE() << p->name << " did not come up; see " << dir_ << "/" << p->name << ".log";
      return false;
    }
  }
  return true;
}

Proc& RelaySystem::Get(const std::string& name) {
  for (auto& p : procs_) {
    if (p->name == name) return *p;
  }
  ADD_FAILURE() << "no process " << name;
  return *procs_.front();
}

std::string RelaySystem::Target(const std::string& name) const {
  for (const auto& p : procs_) {
    if (p->name == name) return absl::StrCat("127.0.0.1:", p->port);
  }
  return "";
}

RelayClients::RelayClients(RelaySystem& system)
    : orders(order::v1::OrderService::NewStub(MakeChannel(system.Target("order")))),
      inventory(inventory::v1::InventoryService::NewStub(MakeChannel(system.Target("inventory")))),
      payments(payment::v1::PaymentService::NewStub(MakeChannel(system.Target("payment")))) {}

bool SeedForLoad(RelayClients& clients, int64_t deposit_minor, int64_t on_hand, SeededState* out) {
  inventory::v1::ListProductsResponse products;
  payment::v1::ListAccountsResponse accounts;
  auto list = [&] {
    products.Clear();
    accounts.Clear();
    return Call([&](grpc::ClientContext* c) {
             return clients.inventory->ListProducts(c, {}, &products);
           }).ok() &&
           Call([&](grpc::ClientContext* c) {
             return clients.payments->ListAccounts(c, {}, &accounts);
           }).ok();
  };
  // The initial state, once seeded and the catalog reached order-service.
  if (!WaitFor(
          [&] { return list() && products.products_size() > 0 && accounts.accounts_size() > 0; },
          absl::Seconds(20))) {
    ADD_FAILURE() << "no seeded catalog and accounts";
    return false;
  }
  for (const auto& a : accounts.accounts()) {
    payment::v1::DepositRequest dep;
    dep.set_customer_id(a.customer_id());
    dep.mutable_amount()->set_amount_minor(deposit_minor);
    dep.mutable_amount()->set_currency(a.balance().currency());
    payment::v1::Account account;
    grpc::Status s =
        Call([&](grpc::ClientContext* c) { return clients.payments->Deposit(c, dep, &account); });
    if (!s.ok()) {
      ADD_FAILURE() << "Deposit " << a.customer_id() << ": " << s.error_message();
      return false;
    }
  }
  for (const auto& p : products.products()) {
    if (p.sku() == "GPU-1") continue;
    inventory::v1::SetStockRequest set;
    set.set_sku(p.sku());
    set.set_on_hand(on_hand);
    inventory::v1::Product product;
    grpc::Status s =
        Call([&](grpc::ClientContext* c) { return clients.inventory->SetStock(c, set, &product); });
    if (!s.ok()) {
      ADD_FAILURE() << "SetStock " << p.sku() << ": " << s.error_message();
      return false;
    }
  }
  if (!list()) {
    ADD_FAILURE() << "listing the seeded state failed";
    return false;
  }
  *out = SeededState{};
  for (const auto& p : products.products()) out->stock[p.sku()] = p.on_hand();
  for (const auto& a : accounts.accounts())
    out->balance[a.customer_id()] = a.balance().amount_minor();
  for (const auto& [sku, n] : out->stock) out->skus.push_back(sku);
  for (const auto& [c, b] : out->balance) out->customers.push_back(c);
  out->customers.push_back("c-nobody");  // an unknown account: declined
  return true;
}

bool ListAllOrders(order::v1::OrderService::Stub& orders, std::vector<order::v1::Order>* out) {
  out->clear();
  order::v1::ListOrdersRequest req;
  req.set_page_size(1000);
  while (true) {
    order::v1::ListOrdersResponse resp;
    if (!Call([&](grpc::ClientContext* c) { return orders.ListOrders(c, req, &resp); },
              absl::Seconds(30))
             .ok()) {
      return false;
    }
    for (auto& o : *resp.mutable_orders()) out->push_back(std::move(o));
    if (resp.next_page_token().empty()) return true;
    req.set_page_token(resp.next_page_token());
  }
}

int CountPending(order::v1::OrderService::Stub& orders) {
  order::v1::ListOrdersRequest req;
  req.set_page_size(1000);
  req.set_status(order::v1::ORDER_STATUS_PENDING);
  order::v1::ListOrdersResponse resp;
  if (!Call([&](grpc::ClientContext* c) { return orders.ListOrders(c, req, &resp); },
            absl::Seconds(30))
           .ok()) {
    return -1;
  }
  return resp.orders_size();
}

void ExpectMoneyAndStockInvariants(RelayClients& clients, const SeededState& initial,
                                   const std::vector<order::v1::Order>& all,
                                   size_t max_cancelled_checked, absl::Duration timeout) {
  std::map<std::string, int64_t> expect_balance = initial.balance;
  std::map<std::string, int64_t> expect_stock = initial.stock;
  for (const auto& o : all) {
    if (o.status() != order::v1::ORDER_STATUS_CONFIRMED) continue;
    expect_balance[o.customer_id()] -= o.total().amount_minor();
    for (const auto& l : o.lines()) expect_stock[l.sku()] -= l.quantity();
  }

  // I2: balances. Compensation runs after the order turned terminal: wait.
  bool money_ok = WaitFor(
      [&] {
        payment::v1::ListAccountsResponse now;
        if (!Call([&](grpc::ClientContext* c) {
               return clients.payments->ListAccounts(c, {}, &now);
             }).ok()) {
          return false;
        }
        for (const auto& a : now.accounts()) {
          if (a.balance().amount_minor() != expect_balance[a.customer_id()]) return false;
        }
        return true;
      },
      timeout);
  payment::v1::ListAccountsResponse final_accounts;
  Call([&](grpc::ClientContext* c) {
    return clients.payments->ListAccounts(c, {}, &final_accounts);
  });
  for (const auto& a : final_accounts.accounts()) {
    EXPECT_EQ(a.balance().amount_minor(), expect_balance[a.customer_id()])
        << "I2: balance of " << a.customer_id();
  }
  EXPECT_TRUE(money_ok);
  size_t checked = 0;
  for (const auto& o : all) {
    if (o.status() != order::v1::ORDER_STATUS_CANCELLED) continue;
    if (checked++ >= max_cancelled_checked) break;
    payment::v1::GetPaymentRequest req;
    req.set_order_id(o.order_id());
    payment::v1::Payment p;
    grpc::Status s =
        Call([&](grpc::ClientContext* c) { return clients.payments->GetPayment(c, req, &p); });
    if (s.ok()) {
      EXPECT_NE(p.status(), payment::v1::PAYMENT_STATUS_CAPTURED)
          << "I2: cancelled order " << o.order_id() << " keeps its capture";
    }
  }

  // I3: stock and reservations.
  bool stock_ok = WaitFor(
      [&] {
        inventory::v1::ListProductsResponse now;
        inventory::v1::ListReservationsRequest held;
        held.set_held_only(true);
        held.set_limit(1000);
        inventory::v1::ListReservationsResponse reservations;
        if (!Call([&](grpc::ClientContext* c) {
               return clients.inventory->ListProducts(c, {}, &now);
             }).ok() ||
            !Call([&](grpc::ClientContext* c) {
               return clients.inventory->ListReservations(c, held, &reservations);
             }).ok()) {
          return false;
        }
        for (const auto& p : now.products()) {
          if (p.on_hand() != expect_stock[p.sku()] || p.reserved() != 0) return false;
        }
        return reservations.reservations_size() == 0;
      },
      timeout);
  inventory::v1::ListProductsResponse final_products;
  Call([&](grpc::ClientContext* c) {
    return clients.inventory->ListProducts(c, {}, &final_products);
  });
  for (const auto& p : final_products.products()) {
    EXPECT_EQ(p.on_hand(), expect_stock[p.sku()]) << "I3: on hand of " << p.sku();
    EXPECT_EQ(p.reserved(), 0) << "I3: reserved of " << p.sku();
  }
  EXPECT_TRUE(stock_ok);
}

}  // namespace relay::testing
