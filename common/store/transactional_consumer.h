#ifndef RELAY_COMMON_STORE_TRANSACTIONAL_CONSUMER_H_
#define RELAY_COMMON_STORE_TRANSACTIONAL_CONSUMER_H_

// Exactly-once effects on at-least-once delivery (docs/DELIVERY.md#consumer-side): a Subscriber
// whose handlers run inside a SQLite transaction together with the event's
// inbox claim, so a redelivered event is acknowledged without a second
// effect, and the events a handler emits (Outbox::Add) commit with its state.
//
//   TransactionalConsumer::Options options;
//   options.subscriber.topic = "orders";
//   options.subscriber.group = "payment-service";
//   TransactionalConsumer consumer(db.get(), channel, options, &outbox_relay);
//   consumer.On<v1::OrderCreated>("order.created",
//       [&](Tx& tx, const v1::OrderCreated& m, const Event& e, const DeliveryInfo&) {
//         ... charge the account through tx ...
//         return Outbox::Add(tx, "payments", captured).status();
//       });
//   consumer.Start();

#include <grpcpp/channel.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/events/subscriber.h"
#include "common/metrics.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/event.pb.h"

namespace relay::store {

// Consumes one topic as a group member and handles each event in a
// transaction on `db`: Inbox::Claim, then the handler of its type, then
// COMMIT, and only then the ack. So:
//  - an event handled before (a redelivery) commits nothing and is acked;
//  - a handler error rolls back its changes and its inbox row, and nacks
//    the event with the error's message (the broker retries, then
//    dead-letters);
//  - a crash after COMMIT but before the ack leads to a redelivery, which
//    the inbox row absorbs.
// Events of a type without a handler are acked without an inbox row.
//
// In batch mode (the default) one received batch is one transaction, each
// event in its own SAVEPOINT: a failing event rolls back only itself and is
// nacked while the others commit, and the batch costs one fsync. After a
// commit that changed anything, the OutboxRelay (when given) is woken.
//
// Register handlers, then Start(). Thread-safe after Start(); handlers run
// on the subscriber's thread, one batch at a time.
class TransactionalConsumer {
 public:
  using Event = relay::events::v1::Event;
  using DeliveryInfo = relay::events::DeliveryInfo;
  using Delivery = relay::events::Subscriber::Delivery;
  // Applies `event` through `tx` (state changes, Outbox::Add). An error rolls
  // back whatever it did. REQUIRES: it does not commit or roll back `tx`
  // itself, and does not call the Database directly (it would deadlock).
  using Handler = std::function<absl::Status(Tx& tx, const Event& event, const DeliveryInfo& info)>;

  struct Options {
    relay::events::Subscriber::Options subscriber;
    // One transaction per received batch (true) or per event (false).
    bool batch = true;
    // Called for each event with a handler before its transaction begins,
    // outside the database lock (e.g. a fault-injection delay).
    std::function<void(const Event&)> before_handle;
    // Called for each event whose handler committed, after the COMMIT and
    // before the ack (e.g. the log line of what happened, or a crash for a
    // fault test: the effect is durable, the broker will redeliver).
    std::function<void(const Event&)> after_commit;
  };

  struct Stats {
    uint64_t handled = 0;     // events whose handler committed
    uint64_t duplicates = 0;  // events found in the inbox, acked without effect
    uint64_t failed = 0;      // events nacked (handler or SQL error)
    uint64_t commits = 0;     // transactions committed
  };

  // REQUIRES: `db` (and `relay`, when not null) outlive the consumer; the
  // database's schema includes Inbox::Migrations().
  TransactionalConsumer(Database* db, std::shared_ptr<ChannelSet> brokers, Options options,
                        OutboxRelay* relay = nullptr);
  TransactionalConsumer(Database* db, std::shared_ptr<grpc::Channel> channel, Options options,
                        OutboxRelay* relay = nullptr);
  ~TransactionalConsumer();  // Stop()

  TransactionalConsumer(const TransactionalConsumer&) = delete;
  TransactionalConsumer& operator=(const TransactionalConsumer&) = delete;

  // Handles events of `type`. REQUIRES: before Start().
  void On(const std::string& type, Handler handler);

  // Handles events of `type` whose data is a serialized `Message`; data that
  // does not parse is nacked (and so dead-lettered in the end).
  template <typename Message>
  void On(
      const std::string& type,
      std::function<absl::Status(Tx&, const Message&, const Event&, const DeliveryInfo&)> handler) {
    On(type, Handler([type, handler = std::move(handler)](Tx& tx, const Event& e,
                                                          const DeliveryInfo& info) {
         Message m;
         if (!m.ParseFromString(e.data())) {
           return absl::InvalidArgumentError(absl::StrCat("event ", e.id(), " of type ", type,
                                                          " has a payload that does not parse"));
         }
         return handler(tx, m, e, info);
       }));
  }

  // Starts consuming. Stop() closes the stream (unacked deliveries go back
  // to the group) and waits for the batch in hand. Stop() is idempotent.
  void Start();
  void Stop();
  bool WaitUntilOpen(absl::Duration timeout);

  // What the subscriber calls, public so tests and replay tools can drive the
  // consumer without a broker. Handle: one event in one transaction; returns
  // OK to ack (handled now or before), the error to nack.
  absl::Status Handle(const Event& event, const DeliveryInfo& info);
  // A batch in one transaction, each event in a savepoint; one status per
  // delivery, in order. When the transaction itself fails (BEGIN, COMMIT,
  // SQLite rolled it back) every delivery gets that error.
  std::vector<absl::Status> HandleBatch(absl::Span<const Delivery> deliveries);

  Stats stats() const;

 private:
  enum class Outcome { kSkipped, kDuplicate, kHandled };
  // Claim and handler inside `tx`; sets `outcome` for the stats.
  absl::Status Apply(Tx& tx, const Event& event, const DeliveryInfo& info, Outcome* outcome);
  void Record(const Event& event, const DeliveryInfo& info, const absl::Status& status,
              Outcome outcome);

  Database* const db_;
  OutboxRelay* const relay_;
  const bool batch_;
  const std::function<void(const Event&)> before_handle_;
  const std::function<void(const Event&)> after_commit_;
  std::map<std::string, Handler> handlers_;  // set before Start(), read-only after
  // In the process's metrics registry (docs/OBSERVABILITY.md#services), per
  // handled type; "other" for types without a handler. Like handlers_.
  struct TypeMetrics {
    metrics::Counter* handled;
    metrics::Counter* duplicate;
    metrics::Counter* failed;
    metrics::Counter* skipped;
    metrics::Histogram* seconds;
  };
  TypeMetrics MetricsFor(const std::string& type) const;
  const TypeMetrics& MetricsOf(const std::string& type) const;
  const std::string topic_;
  std::map<std::string, TypeMetrics> type_metrics_;
  TypeMetrics other_metrics_;
  relay::events::Subscriber subscriber_;

  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::store

#endif  // RELAY_COMMON_STORE_TRANSACTIONAL_CONSUMER_H_
