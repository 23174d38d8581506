#ifndef RELAY_BENCH_BENCH_EVENTS_H_
#define RELAY_BENCH_BENCH_EVENTS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "relay/events/v1/event.pb.h"

namespace relay::bench {

using Event = ::relay::events::v1::Event;

// Nanoseconds on the monotonic clock: publisher and consumers share the
// process, so send and receive stamps are directly comparable.
int64_t NowNanos();

// Shape of the events a workload publishes.
struct EventShape {
  std::string id_prefix;    // ids are <id_prefix><seq>
  int keys = 1000;          // distinct keys, key = "k<seq % keys>"
  int payload_bytes = 256;  // size of `data`; at least 16
  // The events' source. Under mutual TLS the broker accepts only its
  // publisher's identity (or empty), so it is the bench clients' identity,
  // relay-bench (bench_tls.h), in plaintext runs too: the same bytes on the
  // wire and on disk either way.
  std::string source = "relay-bench";
};

// Event number `seq`: its data starts with `seq` and `scheduled_ns` (8 bytes
// each, host order) and is padded to the payload size.
Event MakeEvent(const EventShape& shape, uint64_t seq, int64_t scheduled_ns);

// The scheduled send time stamped into `event` by MakeEvent (0 if absent).
int64_t ScheduledNanos(const Event& event);

// Counts the deliveries of events 0..expected-1 of one shape across any
// number of consumers: distinct, duplicates (a delivery of an event already
// seen), foreign (ids that are not ours). Signals once every event was seen.
//
// Thread-safe.
class Tally {
 public:
  Tally(std::string id_prefix, uint64_t expected);

  // Records one delivery. Returns true for the one delivery that completed
  // the set (every expected id seen at least once).
  bool Record(const Event& event);

  // Marks the set complete at `nanos` (the consumer calls it once its acks
  // for the completing batch are written) and wakes WaitUntilComplete.
  void MarkComplete(int64_t nanos);
  bool WaitUntilComplete(absl::Time deadline);
  int64_t complete_nanos() const { return complete_nanos_.load(); }

  uint64_t expected() const { return expected_; }
  uint64_t distinct() const { return distinct_.load(); }
  uint64_t duplicates() const { return duplicates_.load(); }
  uint64_t foreign() const { return foreign_.load(); }

 private:
  const std::string id_prefix_;
  const uint64_t expected_;
  std::unique_ptr<std::atomic<uint8_t>[]> seen_;
  std::atomic<uint64_t> distinct_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::atomic<uint64_t> foreign_{0};
  std::atomic<int64_t> complete_nanos_{0};
  absl::Notification complete_;
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_EVENTS_H_
