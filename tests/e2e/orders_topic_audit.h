#ifndef RELAY_TESTS_E2E_ORDERS_TOPIC_AUDIT_H_
#define RELAY_TESTS_E2E_ORDERS_TOPIC_AUDIT_H_

// Tails topic "orders" through Broker.Read (as `relayctl events tail` does)
// while a long run goes on, and remembers, per order, which of
// order.created / order.confirmed / order.cancelled it saw and in what
// order. Reading as the run goes keeps ahead of retention, which deletes
// old segments once every group is past them. For soak_test's I4 and I5.

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/order/v1/order.pb.h"

namespace relay::testing {

// Thread-safe; owns one reader thread, from construction to Stop().
class OrdersTopicAudit {
 public:
  explicit OrdersTopicAudit(std::shared_ptr<grpc::Channel> broker);
  ~OrdersTopicAudit();
  OrdersTopicAudit(const OrdersTopicAudit&) = delete;
  OrdersTopicAudit& operator=(const OrdersTopicAudit&) = delete;

  // Stops reading and waits for the thread. Idempotent.
  void Stop();
  // One past the last offset read (gaps included).
  uint64_t cursor() const;

  // What the topic says about the orders, against `all` (every order, as
  // order-service lists them, each terminal).
  struct Report {
    uint64_t events_read = 0;
    uint64_t gap_events = 0;           // offsets deleted before they were read
    uint64_t redelivered_same_id = 0;  // an event id seen twice (not a fault)
    // I4: orders whose order.created is not in the topic.
    int missing_created = 0;
    // I5: two distinct order.created for one order; a terminal event before
    // order.created; both order.confirmed and order.cancelled; no terminal
    // event, or one that disagrees with the order's final status.
    int created_twice = 0;
    int terminal_before_created = 0;
    int confirmed_and_cancelled = 0;
    int terminal_missing_or_wrong = 0;
    // Events about orders order-service does not list.
    int unknown_orders = 0;
    std::vector<std::string> examples;  // a few offending order ids, with why
    std::string ToString() const;
  };
  // REQUIRES: the reader has caught up (cursor() reached the end offset).
  Report Check(const std::vector<order::v1::Order>& all) const;

 private:
  struct Seen {
    size_t created_id = 0;  // hash of the order.created event id, 0: none
    size_t terminal_id = 0;
    uint8_t terminal = 0;  // 1 confirmed, 2 cancelled, 3 both
    bool created_twice = false;
    bool terminal_before_created = false;
  };

  void Run();
  void Take(const events::v1::Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<broker::v1::Broker::Stub> stub_;
  absl::Notification stop_;
  mutable absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t events_read_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t gap_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t redelivered_same_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Seen> orders_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace relay::testing

#endif  // RELAY_TESTS_E2E_ORDERS_TOPIC_AUDIT_H_
