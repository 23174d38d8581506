#ifndef RELAY_COMMON_EVENTS_PUBLISHER_H_
#define RELAY_COMMON_EVENTS_PUBLISHER_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_channel.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::events {

// Publishes events to the broker over one PublishStream, batching what is
// queued and pipelining batches. Each Publish() returns a future that
// resolves to the event's durable offset. While the broker is away the
// publisher keeps the events and retries with exponential backoff; the
// broker's dedupe by event id makes a resend after a lost answer harmless.
// So does an answer UNAVAILABLE or INTERNAL (the broker's storage failed:
// docs/STORAGE.md#a-storage-failure) or a stream that ends with any status:
// those batches are sent again, on a new stream, for as long as it lasts.
// A batch the broker rejects as invalid resolves its futures with that
// error and is not retried. Batches are cut to fit max_message_bytes; an
// event that cannot fit in a request on its own fails at once with
// INVALID_ARGUMENT instead of being resent forever.
//
// Thread-safe.
//
//   Publisher publisher(channel, {});
//   auto offset = publisher.Publish("orders", event);
//   absl::StatusOr<uint64_t> r = offset.get();
class Publisher {
 public:
  struct Options {
    size_t max_batch_events = 1000;
    // Events' bytes per batch (a single larger event goes alone).
    size_t max_batch_bytes = 4 << 20;
    // The largest request the broker receives (BrokerServer's
    // max_receive_bytes): no request is ever larger.
    size_t max_message_bytes = kMaxMessageBytes;
    // Batches sent but not yet answered.
    int max_in_flight_batches = 32;
    // Events queued or in flight; Publish() beyond it fails with
    // RESOURCE_EXHAUSTED.
    size_t max_pending_events = 1 << 20;
    absl::Duration min_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
  };

  // Publishes to the broker at `brokers` (the active one of several:
  // each stream opens on brokers->Pick()).
  Publisher(std::shared_ptr<ChannelSet> brokers, Options options);
  Publisher(std::shared_ptr<grpc::Channel> channel, Options options);
  ~Publisher();  // Close()

  // Queues `event` for `topic`. The future resolves with the offset once the
  // event is durable, or with an error: INVALID_ARGUMENT (from the broker,
  // or at once when a request of this event alone would exceed
  // max_message_bytes), RESOURCE_EXHAUSTED (too much pending), UNAVAILABLE
  // (closed first). Events of several Publish() calls share a request; the
  // broker refuses a request whole for one bad event, so a request of more
  // than one refused with INVALID_ARGUMENT or PERMISSION_DENIED is sent
  // again one event per request, and each future gets its own event's
  // answer (those events may then be stored after events published later).
  std::future<absl::StatusOr<uint64_t>> Publish(const std::string& topic,
                                                relay::events::v1::Event event);

  // Publishes `events` to `topic` in one request of their own, in order:
  // the broker stores all of them or none (it refuses a request with one
  // invalid event whole), so no later event of them can be stored while an
  // earlier one was refused. For a caller whose order must hold (the outbox
  // relay). max_batch_events and max_batch_bytes do not apply; when the
  // request would exceed max_message_bytes, or the events max_pending_events,
  // every future fails at once (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) and
  // none is sent. The futures are in the events' order.
  std::vector<std::future<absl::StatusOr<uint64_t>>> PublishBatch(
      const std::string& topic, std::vector<relay::events::v1::Event> events);

  // Waits until everything published so far is resolved, or `timeout`.
  // Returns DEADLINE_EXCEEDED when it was not.
  absl::Status Flush(absl::Duration timeout);

  // Stops sending; what is still pending resolves with UNAVAILABLE.
  void Close();

  // Events resolved with an offset so far.
  uint64_t acked() const;

  const Options& options() const { return options_; }

 private:
  struct Pending {
    std::string topic;
    relay::events::v1::Event event;
    std::promise<absl::StatusOr<uint64_t>> promise;
    // Set on the first of a PublishBatch(): it and the next request_events - 1
    // go in one request of their own.
    size_t request_events = 0;
  };
  // A request on the wire, kept until answered so it can be resent.
  struct Batch {
    relay::broker::v1::PublishRequest request;
    std::vector<std::promise<absl::StatusOr<uint64_t>>> promises;
    // Answered as one, never split: a PublishBatch(), or one event.
    bool whole = false;
  };

  // Queues `p` (its event serializes to `event_bytes`), or resolves its
  // promise with why it cannot be.
  void EnqueueLocked(Pending p, size_t event_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why `events` making a request of `request_bytes` cannot be queued (OK
  // when they can); `request` names them in the message.
  absl::Status RefusalLocked(size_t request_bytes, size_t events, absl::string_view request) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void Run();
  // One stream's life: send and receive until it breaks or Close().
  // Returns true when anything was acked (the backoff resets).
  bool RunStream();
  // Next batch to send: a resend first, else the queue's head (one topic).
  std::shared_ptr<Batch> TakeBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The broker's answer to `batch`.
  // Queues each event of `batch` to go again in a request of its own, before
  // anything not sent yet.
  void SplitLocked(Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResolveLocked(Batch& batch, const relay::broker::v1::PublishResponse& response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<ChannelSet> brokers_;
  const Options options_;

  absl::Mutex close_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one Close() at a time
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  // Batches are shared with the writer while it writes them.
  std::deque<std::shared_ptr<Batch>> resend_ ABSL_GUARDED_BY(mu_);     // unanswered, stream lost
  std::deque<std::shared_ptr<Batch>> in_flight_ ABSL_GUARDED_BY(mu_);  // on the current stream
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;  // queued + in flight
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace relay::events

#endif  // RELAY_COMMON_EVENTS_PUBLISHER_H_
