#ifndef RELAY_BENCH_BENCH_PUBLISHER_H_
#define RELAY_BENCH_BENCH_PUBLISHER_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/bench_events.h"

namespace relay::bench {

// A publisher as the benchmark drives it: batches go out pipelined and are
// counted as the broker acknowledges them (durably). Two implementations:
// a raw PublishStream with a window of batches in flight ("stream") and the
// client library's relay::events::Publisher ("library").
//
// Send() is called from one thread; the counters may be read from any.
class BenchPublisher {
 public:
  virtual ~BenchPublisher() = default;

  // Sends `batch` (one PublishRequest for "stream"; queued event by event
  // for "library"). May block while the window is full, never past the
  // deadline given at construction. Fails once the stream broke or the
  // broker rejected a batch.
  virtual absl::Status Send(std::vector<Event> batch) = 0;

  // Half-closes and waits until every sent event is acknowledged, or
  // `deadline`. Returns the first error seen.
  virtual absl::Status Drain(absl::Time deadline) = 0;

  // Events acknowledged so far, and how many of them the broker reported as
  // duplicates (always 0 for "library", which does not expose it).
  virtual uint64_t acked() const = 0;
  virtual uint64_t duplicates() const = 0;
  // NowNanos() of the last acknowledgement (0 before the first).
  virtual int64_t last_ack_nanos() const = 0;
};

struct PublisherOptions {
  std::string client = "stream";  // "stream" or "library"
  std::string topic;
  int max_in_flight_batches = 32;
  size_t max_batch_events = 1000;                // "library" only: how it regroups events
  absl::Time deadline = absl::InfiniteFuture();  // hard end of every call
};

// Opens the publisher (for "stream", the PublishStream with `deadline`).
absl::StatusOr<std::unique_ptr<BenchPublisher>> NewPublisher(std::shared_ptr<grpc::Channel> channel,
                                                             const PublisherOptions& options);

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_PUBLISHER_H_
