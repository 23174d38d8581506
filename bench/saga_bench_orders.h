#ifndef RELAY_BENCH_SAGA_BENCH_ORDERS_H_
#define RELAY_BENCH_SAGA_BENCH_ORDERS_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/events/subscriber.h"
#include "relay/order/v1/order.grpc.pb.h"

namespace relay::bench {

// Which part of a run an order belongs to.
enum class Phase { kWarmup = 0, kMeasured = 1 };

// What the bench knows about each order it placed: when it was due, when
// PlaceOrder answered, and when its terminal event (order.confirmed or
// order.cancelled on topic `orders`) was delivered to the bench and
// published by the broker. All times are wall-clock (absl::Now()), so the
// broker's publish_time compares with them on this one machine.
//
// Thread-safe: PlaceOrder callbacks and the consumer thread report here.
class OrderTracker {
 public:
  enum class End { kNone, kConfirmed, kCancelled };
  struct Order {
    Phase phase = Phase::kWarmup;
    absl::Time scheduled;  // when the bench meant to send PlaceOrder
    absl::Time answered;   // when PlaceOrder's response arrived
    End end = End::kNone;
    absl::Time delivered;  // terminal event received by the bench
    absl::Time published;  // terminal event's broker publish_time
  };
  struct Counts {
    uint64_t placed = 0;    // PlaceOrder answered OK
    uint64_t terminal = 0;  // of those, with a terminal event
    uint64_t confirmed = 0;
    uint64_t cancelled = 0;
  };

  // An accepted order. Its terminal event may already have come (it is kept
  // until its order is known).
  void Placed(const std::string& order_id, Phase phase, absl::Time scheduled, absl::Time answered);
  // A terminal event (a redelivery of one already seen is only counted).
  void Terminal(absl::string_view order_id, bool confirmed, absl::Time delivered,
                absl::Time published);

  Counts counts(Phase phase) const;
  // Terminal events whose order was not (yet) placed through this tracker.
  uint64_t unmatched() const;
  uint64_t duplicates() const;
  // Waits until every placed order of `phase` is terminal, or `deadline`.
  bool AwaitAllTerminal(Phase phase, absl::Time deadline) const;
  // Every order of `phase` (copies).
  std::vector<Order> Orders(Phase phase) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Order> orders_ ABSL_GUARDED_BY(mu_);
  // Terminal events that came before their PlaceOrder answer.
  absl::flat_hash_map<std::string, Order> early_ ABSL_GUARDED_BY(mu_);
  Counts counts_[2] ABSL_GUARDED_BY(mu_);
  uint64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
};

// The bench's consumer of topic `orders` (group "saga-bench", types
// order.confirmed and order.cancelled) through the client library's
// Subscriber; reports every delivery to the tracker. The event key is the
// order id (docs/EVENTS.md#ordering).
class TerminalConsumer {
 public:
  TerminalConsumer(std::shared_ptr<grpc::Channel> broker, OrderTracker* tracker);
  ~TerminalConsumer();  // Stop()
  absl::Status Start(absl::Duration open_timeout);
  void Stop();
  // Delivery messages received and events in them (events per message tells
  // how well the broker batches).
  uint64_t messages() const;
  uint64_t events() const;

 private:
  OrderTracker* const tracker_;
  events::Subscriber subscriber_;
  mutable absl::Mutex mu_;
  uint64_t messages_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t events_ ABSL_GUARDED_BY(mu_) = 0;
};

// Places orders with gRPC's async (callback) API, one random customer and
// sku per order, quantity 1, a unique idempotency key each. Answers go to the
// tracker; failures are counted by status code.
//
// Place() from one thread only; the rest is thread-safe. The destructor
// cancels what is still outstanding and waits for it.
class OrderPlacer {
 public:
  OrderPlacer(std::shared_ptr<grpc::Channel> order_service, OrderTracker* tracker,
              std::vector<std::string> customers, std::vector<std::string> skus,
              std::string key_prefix, uint64_t seed, absl::Duration rpc_timeout);
  ~OrderPlacer();

  // Starts one PlaceOrder (does not block). `sku_index` < 0 picks at random.
  void Place(Phase phase, absl::Time scheduled, int sku_index = -1);

  int64_t outstanding() const;
  uint64_t failed() const;
  // "CODE: message" of the failures, by code, with counts.
  std::map<std::string, uint64_t> failures() const;
  // The calls of `phase` that failed: (scheduled, failed at).
  std::vector<std::pair<absl::Time, absl::Time>> FailedCalls(Phase phase) const;
  // Waits until fewer than `limit` calls are outstanding, or `deadline`.
  bool AwaitOutstandingBelow(int64_t limit, absl::Time deadline) const;
  // Frees finished calls (call now and then from the placing thread).
  void Reap();

 private:
  struct Call;
  void Done(Call* call, const grpc::Status& status);

  const std::unique_ptr<order::v1::OrderService::Stub> stub_;
  OrderTracker* const tracker_;
  const std::vector<std::string> customers_;
  const std::vector<std::string> skus_;
  const std::string key_prefix_;
  const absl::Duration rpc_timeout_;
  std::mt19937_64 rng_;  // the placing thread only
  uint64_t next_ = 0;    // the placing thread only

  mutable absl::Mutex mu_;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<absl::Time, absl::Time>> failed_calls_[2] ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Call*> live_ ABSL_GUARDED_BY(mu_);  // to cancel at the end
  std::vector<Call*> done_ ABSL_GUARDED_BY(mu_);          // finished, to delete
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_SAGA_BENCH_ORDERS_H_
