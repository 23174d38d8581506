#include "tests/e2e/relay_system.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"
#include "tests/testing/wait.h"

namespace relay::testing {

RelaySystem::RelaySystem(const std::string& dir, const RelayBinaries& binaries,
                         std::vector<std::string> broker_flags)
    : dir_(dir) {
  broker_flags.insert(broker_flags.begin(), "--data_dir=" + dir + "/broker");
  Add("broker", binaries.broker, PickFreePort(), std::move(broker_flags));
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

void RelaySystem::AddStandbyBroker() {
  const Proc& first = Get("broker");
  std::vector<std::string> flags = first.extra;
  flags[0] = "--data_dir=" + dir_ + "/broker-b";
  auto p = std::make_unique<Proc>();
  p->name = "broker-b";
  p->binary = first.binary;
  p->port = PickFreePort();
  p->extra = std::move(flags);
  procs_.insert(procs_.begin() + 1, std::move(p));
}

void RelaySystem::EnableTls(const std::string& pki_dir, const std::string& policy_file) {
  auto files = [&](const std::string& identity) {
    return std::vector<std::string>{"--tls_cert=" + pki_dir + "/" + identity + ".pem",
                                    "--tls_ca=" + pki_dir + "/ca.crt"};
  };
  for (auto& p : procs_) {
    const std::string identity =
        absl::StartsWith(p->name, "broker") ? "broker" : absl::StrCat(p->name, "-service");
    for (std::string& flag : files(identity)) p->extra.push_back(std::move(flag));
    if (identity == "broker") p->extra.push_back("--policy=" + policy_file);
  }
  client_tls_ = {pki_dir + "/relayctl.pem", "", pki_dir + "/ca.crt"};
}

std::shared_ptr<grpc::Channel> RelaySystem::Channel(const std::string& target) const {
  return MakeChannel(target, {}, client_tls_);
}

std::string RelaySystem::BrokerTargets() const {
  std::vector<std::string> targets;
  for (const auto& p : procs_) {
    if (absl::StartsWith(p->name, "broker")) targets.push_back(absl::StrCat("127.0.0.1:", p->port));
  }
  return absl::StrJoin(targets, ",");
}

bool RelaySystem::Start(Proc& p) {
  std::vector<std::string> argv = {p.binary, absl::StrCat("--listen=127.0.0.1:", p.port)};
  if (!absl::StartsWith(p.name, "broker")) argv.push_back("--broker=" + BrokerTargets());
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
  const absl::Time deadline = absl::Now() + timeout;
  if (!WaitFor([&] { return ActiveBroker() != nullptr; }, timeout)) {
    ADD_FAILURE() << "no broker came up; see " << dir_ << "/broker*.log";
    return false;
  }
  for (auto& p : procs_) {
    if (absl::StartsWith(p->name, "broker")) continue;
    auto ch = Channel(absl::StrCat("127.0.0.1:", p->port));
    if (!ch->WaitForConnected(absl::ToChronoTime(deadline))) {
      ADD_FAILURE() << p->name << " did not come up; see " << dir_ << "/" << p->name << ".log";
      return false;
    }
  }
  return true;
}

Proc* RelaySystem::ActiveBroker() {
  for (auto& p : procs_) {
    if (!absl::StartsWith(p->name, "broker") || !p->process.running()) continue;
    auto ch = Channel(absl::StrCat("127.0.0.1:", p->port));
    if (ch->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)))) {
      return p.get();
    }
  }
  return nullptr;
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
    : orders(order::v1::OrderService::NewStub(system.Channel(system.Target("order")))),
      inventory(
          inventory::v1::InventoryService::NewStub(system.Channel(system.Target("inventory")))),
      payments(payment::v1::PaymentService::NewStub(system.Channel(system.Target("payment")))) {}

bool SeedForLoad(RelayClients& clients, int64_t deposit_minor, int64_t on_hand, SeededState* out) {
  inventory::v1::ListProductsResponse products;
  payment::v1::ListAccountsResponse accounts;
  grpc::Status products_status, accounts_status;
  auto list = [&] {
    products.Clear();
    accounts.Clear();
    products_status = Call(
        [&](grpc::ClientContext* c) { return clients.inventory->ListProducts(c, {}, &products); });
    accounts_status = Call(
        [&](grpc::ClientContext* c) { return clients.payments->ListAccounts(c, {}, &accounts); });
    return products_status.ok() && accounts_status.ok();
  };
  // The initial state, once seeded. As long as the start may take on a
  // loaded machine (WaitReady's 60 s): once, a CI run's first 20 s were not
  // enough.
  if (!WaitFor(
          [&] { return list() && products.products_size() > 0 && accounts.accounts_size() > 0; },
          absl::Seconds(60))) {
    ADD_FAILURE() << "no seeded catalog and accounts: ListProducts "
                  << (products_status.ok() ? "OK" : products_status.error_message()) << ", "
                  << products.products_size() << " products; ListAccounts "
                  << (accounts_status.ok() ? "OK" : accounts_status.error_message()) << ", "
                  << accounts.accounts_size() << " accounts";
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

std::string PlaceWithRetry(order::v1::OrderService::Stub& orders,
                           const order::v1::PlaceOrderRequest& req, const std::atomic<bool>& stop,
                           absl::Duration give_up) {
  const absl::Time deadline = absl::Now() + give_up;
  while (!stop && absl::Now() < deadline) {
    order::v1::PlaceOrderResponse resp;
    grpc::Status s = Call([&](grpc::ClientContext* c) { return orders.PlaceOrder(c, req, &resp); });
    if (s.ok()) return resp.order().order_id();
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return "";
    }
    absl::SleepFor(absl::Milliseconds(100));  // the retry pace
  }
  return "";
}

void CancelQuietly(order::v1::OrderService::Stub& orders, const std::string& order_id) {
  order::v1::CancelOrderRequest cancel;
  cancel.set_order_id(order_id);
  order::v1::Order out;
  Call([&](grpc::ClientContext* c) { return orders.CancelOrder(c, cancel, &out); });
}

void ExpectSettledExactly(RelayClients& clients, const SeededState& initial,
                          const Settled& settled) {
  EXPECT_TRUE(settled.settled) << settled.pending << " orders still PENDING (I1)";
  // The mix must exercise both paths, or the invariants prove little.
  EXPECT_GT(settled.confirmed, static_cast<int>(settled.all.size()) / 2);
  EXPECT_GT(settled.cancelled, 0);
  ExpectMoneyAndStockInvariants(clients, initial, settled.all, settled.all.size(),
                                absl::Seconds(60));
}

void ExpectCleanStop(RelaySystem& system) {
  for (auto& p : system.procs()) {
    int status = p->process.Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << p->name << " did not exit 0 on SIGTERM (status " << status << ")";
  }
}

OrderLoad::OrderLoad(order::v1::OrderService::Stub* orders, const SeededState& state,
                     absl::Duration interval, uint32_t seed)
    : orders_(orders), state_(state), interval_(interval), seed_(seed), thread_([this] {
        Run();
      }) {}

OrderLoad::~OrderLoad() { Stop(); }

void OrderLoad::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string OrderLoad::FirstPlacedAfter(absl::Time t) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [at, id] : placed_) {
    if (at > t) return id;
  }
  return "";
}

void OrderLoad::Run() {
  std::mt19937 rng(seed_);
  const std::vector<std::string>& skus = state_.skus;
  const std::vector<std::string>& customers = state_.customers;
  int n = 0;
  absl::Time next = absl::Now();
  while (!stop_) {
    next += interval_;
    absl::SleepFor(next - absl::Now());  // the pace of the load
    order::v1::PlaceOrderRequest req;
    req.set_customer_id(customers[rng() % customers.size()]);
    req.set_idempotency_key(absl::StrCat("load-", seed_, "-", n++));
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
    const absl::Time sent = absl::Now();
    const std::string placed_id = PlaceWithRetry(*orders_, req, stop_, absl::Seconds(10));
    const bool ok = !placed_id.empty();
    (ok ? accepted_ : refused_)++;
    if (!ok) continue;
    {
      absl::MutexLock lock(&mu_);
      placed_.emplace_back(sent, placed_id);
    }
    if (rng() % 20 == 0) CancelQuietly(*orders_, placed_id);
  }
}

Settled Settle(order::v1::OrderService::Stub& orders, absl::Duration timeout) {
  Settled out;
  const absl::Time start = absl::Now();
  out.settled = WaitFor(
      [&] {
        if (!ListAllOrders(orders, &out.all)) return false;
        for (const auto& o : out.all) {
          if (o.status() == order::v1::ORDER_STATUS_PENDING) return false;
        }
        return true;
      },
      timeout);
  out.took = absl::Now() - start;
  for (const auto& o : out.all) {
    if (o.status() == order::v1::ORDER_STATUS_CONFIRMED) {
      ++out.confirmed;
    } else if (o.status() == order::v1::ORDER_STATUS_CANCELLED) {
      ++out.cancelled;
    } else {
      ++out.pending;
    }
  }
  return out;
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
