#ifndef RELAY_COMMON_EVENTS_SUBSCRIBER_H_
#define RELAY_COMMON_EVENTS_SUBSCRIBER_H_

#include <grpcpp/channel.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/grpc_channel.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::events {

// What a handler is told besides the event.
struct DeliveryInfo {
  uint32_t attempt = 1;  // 1 for the first delivery
};

// Consumes one topic as a member of a consumer group. Runs handlers by event
// type on its own thread, one delivery at a time in the order received (the
// broker already keeps one key's events in order and never two at a time);
// a handler that returns OK acks the event, an error nacks it with the
// error's message (the broker retries with backoff, then dead-letters).
// Reconnects with backoff when the stream breaks; deliveries in hand when it
// breaks are redelivered by the broker.
//
// Two threads per stream: one reads the broker's messages into a queue, the
// other handles what is queued. A batch is everything received since the
// previous batch began (not one broker message), and its acks go back in one
// message: a consumer that fell behind catches up in large batches even when
// the broker refills its slots one ack at a time.
//
// Register handlers, then Start(). Thread-safe after Start().
//
//   Subscriber sub(channel, {.topic = "orders", .group = "payment-service"});
//   sub.On<v1::OrderCreated>("order.created", [&](const v1::OrderCreated& m,
//                                                 const v1::Event& e, const DeliveryInfo&) {
//     return Charge(m);
//   });
//   sub.Start();
class Subscriber {
 public:
  using Event = relay::events::v1::Event;
  using Handler = std::function<absl::Status(const Event&, const DeliveryInfo&)>;

  struct Options {
    std::string topic;
    std::string group;
    // Where a new group starts (default earliest).
    relay::broker::v1::SubscribeRequest::StartPosition start;
    uint32_t max_in_flight = 1000;
    absl::Duration ack_deadline = absl::Seconds(30);
    std::string member_name;
    // Subscribe only to the types with a handler (the default), or to all
    // (events without a handler are then acked unhandled).
    bool filter_types = true;
    absl::Duration min_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    // How long Stop() waits for the batch in hand, its acks and the broker's
    // end of the stream before it cancels the stream.
    absl::Duration stop_timeout = absl::Seconds(5);
    // Called on the subscriber's thread whenever refusal() changes (e.g. to
    // report NOT_SERVING in the service's health). Must not block long nor
    // call Stop().
    std::function<void(const absl::Status& refusal)> on_refusal_change;
  };

  // One delivery of a received batch, for OnBatch(). `event` points into the
  // received message and is valid only during the BatchHandler call.
  struct Delivery {
    const Event* event;
    DeliveryInfo info;
  };
  // Returns one status per delivery, in the same order.
  using BatchHandler = std::function<std::vector<absl::Status>(absl::Span<const Delivery>)>;

  // Consumes from the broker at `brokers` (the active one of several: each
  // stream opens on brokers->Pick()).
  Subscriber(std::shared_ptr<ChannelSet> brokers, Options options);
  Subscriber(std::shared_ptr<grpc::Channel> channel, Options options);
  ~Subscriber();  // Stop()

  // Handles events of `type`. REQUIRES: before Start().
  void On(const std::string& type, Handler handler);

  // Handles events of `type` whose data is a serialized `Message`; data that
  // does not parse is nacked (and so dead-lettered in the end).
  template <typename Message>
  void On(const std::string& type,
          std::function<absl::Status(const Message&, const Event&, const DeliveryInfo&)> handler) {
    On(type, [type, handler = std::move(handler)](const Event& e, const DeliveryInfo& info) {
      Message m;
      if (!m.ParseFromString(e.data())) {
        return absl::InvalidArgumentError(absl::StrCat("event ", e.id(), " of type ", type,
                                                       " has a payload that does not parse"));
      }
      return handler(m, e, info);
    });
  }

  // Hands each batch (every delivery received and not yet handled, in the
  // order received) to `handler` in one call instead of calling the On()
  // handlers event by event (e.g. to handle the whole batch in one database
  // transaction). Its statuses settle the
  // deliveries: OK acks, an error nacks with the error's message; a missing
  // status nacks. The batch holds every delivery received, whatever its type;
  // the On() handlers still choose the types subscribed to (filter_types)
  // but are no longer called. REQUIRES: before Start().
  void OnBatch(BatchHandler handler);

  void Start();
  // Stops consuming, gracefully: no new batch is handled; the batch in hand
  // (if any) is finished and its acks and nacks are sent; then the stream is
  // half-closed and the broker ends it, after reading every ack sent before.
  // Deliveries received but not handled go back to the group. If that takes
  // longer than Options::stop_timeout the stream is cancelled (acks not yet
  // sent are lost and those events are redelivered). Returns once the
  // subscriber's thread has ended, so also after the batch handler in hand
  // returned. Idempotent. REQUIRES: not called from a handler.
  void Stop();

  // True once Stop() has begun: a long handler may cut its work short.
  bool stopping() const;

  // Waits until a stream is open (the broker answered `opened`).
  bool WaitUntilOpen(absl::Duration timeout);

  // Why the broker refuses this subscription: the FAILED_PRECONDITION or
  // INVALID_ARGUMENT with which it ended the last attempt to open (e.g. the
  // group exists with another type filter); OK once a stream opens again,
  // and while the broker merely cannot be reached. The subscriber keeps
  // retrying with backoff either way.
  absl::Status refusal() const;

  uint64_t handled() const;
  // Deliveries received and waiting for the handler (the next batch).
  uint64_t queued() const;
  // The stream's last error, for logs and tests.
  std::string last_error() const;

 private:
  void Run();
  // One stream's life. Returns true when it got as far as `opened`.
  bool RunStream();
  // The handling thread of one stream: takes what RunStream() queued, hands
  // it to the handlers and writes the acks, until the stream's reads end or
  // Stop() begins.
  void HandleQueued(grpc::ClientContext* context,
                    grpc::ClientReaderWriter<relay::broker::v1::SubscribeRequest,
                                             relay::broker::v1::SubscribeResponse>* stream);
  // Handles `batch` and returns the acks and nacks for it.
  relay::broker::v1::SubscribeRequest Handle(
      const std::vector<relay::broker::v1::SubscribeResponse>& batch);
  // Half-closes the stream unless a batch is being handled (the stream
  // thread half-closes after its settle then) or it already was.
  void HalfCloseIfIdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<ChannelSet> brokers_;
  const Options options_;
  std::map<std::string, Handler> handlers_;
  BatchHandler batch_handler_;  // when set, replaces handlers_ for delivery

  absl::Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one Stop() at a time
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Run() is going (from Start() until its thread is about to end).
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t handled_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  // The last attempt could not open a stream (the outage is logged once).
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The open stream. Reads come from the stream thread (RunStream()); writes
  // from one thread at a time: the handling thread while `handling_` (a
  // batch and its settle), otherwise whoever half-closes it first (Stop() or
  // the handling thread) under mu_.
  grpc::ClientReaderWriter<relay::broker::v1::SubscribeRequest,
                           relay::broker::v1::SubscribeResponse>* stream_ ABSL_GUARDED_BY(mu_) =
      nullptr;
  bool handling_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;
  // Received messages with deliveries, not yet handled; and whether the
  // stream may still add to them.
  std::vector<relay::broker::v1::SubscribeResponse> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // deliveries in queue_
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace relay::events

#endif  // RELAY_COMMON_EVENTS_SUBSCRIBER_H_
