#ifndef RELAY_BENCH_BENCH_CONSUMER_H_
#define RELAY_BENCH_BENCH_CONSUMER_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/bench_events.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::bench {

// One member of a consumer group on a raw Subscribe stream: a thread reads
// each batch of deliveries, records every event in the shared Tally (and,
// when asked, its latency: receive time minus the scheduled send time
// stamped in the event), then acks the whole batch in one request.
//
// Thread-safe; Start() once, Stop() any number of times.
class BenchConsumer {
 public:
  struct Options {
    std::string topic;
    std::string group = "bench";
    std::string member_name;
    uint32_t max_in_flight = 10000;
    bool record_latency = false;
    absl::Time deadline = absl::InfiniteFuture();  // the stream's deadline
  };

  // `tally` must outlive the consumer.
  BenchConsumer(std::shared_ptr<grpc::Channel> channel, Options options, Tally* tally);
  ~BenchConsumer();  // Stop()

  // Opens the stream and waits until the broker answered `opened`, or
  // `open_deadline`.
  absl::Status Start(absl::Time open_deadline);
  // Cancels the stream (unacked deliveries go back to the group) and joins.
  void Stop();

  // Latencies in ns, in receive order. REQUIRES: Stop() returned.
  const std::vector<int64_t>& latencies() const { return latencies_; }
  // The same split at the broker's publish_time (its commit time, before
  // the write and fsync): scheduled send -> publish_time, and publish_time
  // -> receive. Wall-clock publish_time is mapped to the monotonic clock
  // once, at Start().
  const std::vector<int64_t>& to_append() const { return to_append_; }
  const std::vector<int64_t>& append_to_receive() const { return append_to_receive_; }
  uint64_t received() const;
  // Delivery messages received (received() / messages() = events per message).
  uint64_t messages() const;
  // Why the stream ended, when it did so on its own (empty otherwise).
  std::string error() const;

 private:
  void Run();

  const std::unique_ptr<relay::broker::v1::Broker::Stub> stub_;
  const Options options_;
  Tally* const tally_;
  grpc::ClientContext context_;
  std::thread thread_;
  // Consumer thread only until joined.
  std::vector<int64_t> latencies_;
  std::vector<int64_t> to_append_;
  std::vector<int64_t> append_to_receive_;
  int64_t wall_minus_monotonic_ = 0;  // set before the thread starts

  mutable absl::Mutex mu_;
  bool opened_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t messages_ ABSL_GUARDED_BY(mu_) = 0;
  std::string error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_CONSUMER_H_
