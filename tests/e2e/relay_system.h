#ifndef RELAY_TESTS_E2E_RELAY_SYSTEM_H_
#define RELAY_TESTS_E2E_RELAY_SYSTEM_H_

// The four Relay binaries as real processes, and the checks of the money and
// stock invariants (docs/INVARIANTS.md) over every order, for the process-level tests
// (chaos_test, soak_test). Failures are reported with GoogleTest's
// ADD_FAILURE/EXPECT, so these helpers are for test bodies only.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tls.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace relay::testing {

// Paths of the binaries under test (each test target gets them from CMake).
struct RelayBinaries {
  std::string broker;
  std::string order;
  std::string inventory;
  std::string payment;
};

#ifdef RELAY_BROKER_BIN
// The binaries of this build, from the test target's compile definitions
// (tests/e2e/CMakeLists.txt: relay_e2e_binaries).
inline RelayBinaries BuiltBinaries() {
  return {RELAY_BROKER_BIN, RELAY_ORDER_BIN, RELAY_INVENTORY_BIN, RELAY_PAYMENT_BIN};
}
#endif

// One process of the system: its name ("broker", "order", "inventory",
// "payment"), binary, fixed port (kept across restarts) and extra flags.
struct Proc {
  std::string name;
  std::string binary;
  int port = 0;
  std::vector<std::string> extra;
  Subprocess process;
};

// The broker and the three services on 127.0.0.1, each with its data under
// `dir`/<name> and its log in `dir`/<name>.log. Not thread-safe.
class RelaySystem {
 public:
  // `broker_flags` are added to the broker's command line.
  RelaySystem(const std::string& dir, const RelayBinaries& binaries,
              std::vector<std::string> broker_flags = {});

  // Adds a second broker, "broker-b" (same flags, its own port and data),
  // a standby of "broker" on JetStream storage; the services are then given
  // both addresses. REQUIRES: before StartAll().
  void AddStandbyBroker();

  // Mutual TLS everywhere, with the certificates scripts/dev-pki made in
  // `pki_dir`: each process presents its identity's (broker, order-service,
  // inventory-service, payment-service), the broker enforces `policy_file`,
  // and the test's clients speak as relayctl. REQUIRES: before StartAll().
  void EnableTls(const std::string& pki_dir, const std::string& policy_file);
  // The test clients' TLS (empty: plaintext).
  const TlsFiles& client_tls() const { return client_tls_; }
  // A channel to `target` with client_tls().
  std::shared_ptr<grpc::Channel> Channel(const std::string& target) const;

  // Starts (or restarts) `p` with its flags. Returns false when fork/exec failed.
  bool Start(Proc& p);
  bool StartAll();
  // Waits until every process accepts connections (of the brokers, one:
  // a standby does not listen); ADD_FAILUREs and returns false when one did
  // not within `timeout`.
  bool WaitReady(absl::Duration timeout);
  // The broker that accepts connections now, or nullptr.
  Proc* ActiveBroker();

  std::vector<std::unique_ptr<Proc>>& procs() { return procs_; }
  // The process called `name`. REQUIRES: one of the four names above.
  Proc& Get(const std::string& name);
  // "127.0.0.1:<port>" of the process called `name`.
  std::string Target(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  void Add(const std::string& name, const std::string& binary, int port,
           std::vector<std::string> extra);

  // "127.0.0.1:<port>[,127.0.0.1:<port>]" of the brokers.
  std::string BrokerTargets() const;

  std::string dir_;
  std::vector<std::unique_ptr<Proc>> procs_;
  TlsFiles client_tls_;
};

// Runs one unary call with a `timeout` deadline: fn(grpc::ClientContext*).
template <typename Fn>
grpc::Status Call(Fn fn, absl::Duration timeout = absl::Seconds(3)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
  return fn(&ctx);
}

// The clients of the three services, one channel each.
struct RelayClients {
  explicit RelayClients(RelaySystem& system);
  std::unique_ptr<order::v1::OrderService::Stub> orders;
  std::unique_ptr<inventory::v1::InventoryService::Stub> inventory;
  std::unique_ptr<payment::v1::PaymentService::Stub> payments;
};

// The state the load starts from, once seeded.
struct SeededState {
  std::map<std::string, int64_t> stock;    // sku -> on hand
  std::map<std::string, int64_t> balance;  // customer -> minor units
  // Every sku, and every customer plus "c-nobody" (no account: declined).
  std::vector<std::string> skus;
  std::vector<std::string> customers;
};

// Waits for the seeded catalog and accounts, then deposits `deposit_minor`
// into every account and sets every sku but GPU-1 (which keeps its single
// unit, so that out-of-stock cancels happen) to `on_hand`. Returns false
// (after ADD_FAILURE) when a call failed.
bool SeedForLoad(RelayClients& clients, int64_t deposit_minor, int64_t on_hand, SeededState* out);

// PlaceOrder, retried with the same idempotency key while order-service is
// unreachable or slow (UNAVAILABLE, DEADLINE_EXCEEDED) until `give_up` has
// passed or `stop` is set. The order's id, or "" when it was not accepted.
std::string PlaceWithRetry(order::v1::OrderService::Stub& orders,
                           const order::v1::PlaceOrderRequest& req, const std::atomic<bool>& stop,
                           absl::Duration give_up);

// The customer changes their mind: CancelOrder, whatever it answers (it may
// be too late).
void CancelQuietly(order::v1::OrderService::Stub& orders, const std::string& order_id);

// The load of the process-level tests: orders placed from their own thread
// every `interval`, each for a random customer (c-nobody included) and one
// or two random skus; a placement is retried with its idempotency key while
// order-service is unreachable; one in 20 accepted orders is then cancelled
// by the customer (which may be too late).
class OrderLoad {
 public:
  OrderLoad(order::v1::OrderService::Stub* orders, const SeededState& state,
            absl::Duration interval, uint32_t seed = 7);
  ~OrderLoad();  // Stop()
  void Stop();
  int accepted() const { return accepted_.load(); }
  int refused() const { return refused_.load(); }
  // The first order accepted after `t` was placed: its id, or "" if none yet.
  std::string FirstPlacedAfter(absl::Time t) const;

 private:
  void Run();

  order::v1::OrderService::Stub* const orders_;
  const SeededState state_;
  const absl::Duration interval_;
  const uint32_t seed_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> refused_{0};
  mutable absl::Mutex mu_;
  // (time the placement was sent, order id) of accepted orders, in order.
  std::vector<std::pair<absl::Time, std::string>> placed_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Every order once none is PENDING any more (I1), or as they are when
// `timeout` passed (settled false).
struct Settled {
  bool settled = false;
  std::vector<order::v1::Order> all;
  int confirmed = 0;
  int cancelled = 0;
  int pending = 0;
  absl::Duration took;
};
Settled Settle(order::v1::OrderService::Stub& orders, absl::Duration timeout);

// The checks after chaos or a failover: I1 (settled), a mix that exercises
// both paths (more than half CONFIRMED, some CANCELLED), then I2 and I3 over
// every order.
void ExpectSettledExactly(RelayClients& clients, const SeededState& initial,
                          const Settled& settled);

// SIGTERMs every process of `system`; each must exit 0.
void ExpectCleanStop(RelaySystem& system);

// Every order, through ListOrders pages. False when a call failed.
bool ListAllOrders(order::v1::OrderService::Stub& orders, std::vector<order::v1::Order>* out);

// Orders still PENDING (counts at most one page of 1000), or -1 when the
// call failed.
int CountPending(order::v1::OrderService::Stub& orders);

// Checks I2 and I3 over `all` (every order, each terminal):
//   I2 every balance = initial - totals of the customer's CONFIRMED orders,
//      and no cancelled order keeps a capture (checked for at most
//      `max_cancelled_checked` cancelled orders, one GetPayment each);
//   I3 every on-hand = initial - quantities of CONFIRMED orders, and no
//      reservation is still held.
// Compensation may still be running: each waits up to `timeout` to hold.
void ExpectMoneyAndStockInvariants(RelayClients& clients, const SeededState& initial,
                                   const std::vector<order::v1::Order>& all,
                                   size_t max_cancelled_checked, absl::Duration timeout);

}  // namespace relay::testing

#endif  // RELAY_TESTS_E2E_RELAY_SYSTEM_H_
