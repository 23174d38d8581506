#ifndef RELAY_BROKER_STORAGE_EVENT_LOG_H_
#define RELAY_BROKER_STORAGE_EVENT_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/storage/stored_event.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {

using Event = ::relay::events::v1::Event;

// What happened to one appended event.
struct AppendResult {
  uint64_t offset = 0;
  bool duplicate = false;  // id already in the dedupe window: nothing appended
};

// A topic's size and range, for ListTopics.
struct TopicStats {
  std::string name;
  uint64_t events = 0;
  uint64_t bytes = 0;
  uint64_t first_offset = 0;  // oldest retained offset
  uint64_t end_offset = 0;    // offset the next event gets
  absl::Time first_time = absl::InfinitePast();
  absl::Time last_time = absl::InfinitePast();
  uint32_t segments = 0;
  uint64_t forced_deleted_events = 0;  // deleted by the hard cap below a floor
  uint64_t dedupe_ids = 0;             // ids in the dedupe window
  uint64_t dedupe_bytes = 0;           // memory of the dedupe window, approximately
  uint64_t dedupe_evicted = 0;         // ids forgotten early to fit the memory budget
};

// Where appended batches come from, when their order matters beyond one
// batch: one PublishStream, whose client sends batch N+1 before N is
// answered and, when N fails with UNAVAILABLE, sends N and everything after
// it again, in order, on a new stream. A log that can store a later batch
// after an earlier one failed (JetStreamEventLog: its publishes are
// pipelined and each may fail alone) marks the origin failed at the first
// such failure and refuses the origin's later batches, so that none of them
// is stored before the failed one is sent again. Thread-safe.
class AppendOrigin {
 public:
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  void MarkFailed() { failed_.store(true, std::memory_order_release); }

 private:
  std::atomic<bool> failed_{false};
};

// EventLog is the broker's storage of topics: an append-only, durable,
// offset-addressed log per topic. The gRPC face only talks to this
// interface, so a backend on another engine (NATS JetStream) can replace the
// embedded file log.
//
// Thread-safe: every method may be called from any thread.
class EventLog {
 public:
  using AppendDone = absl::AnyInvocable<void(absl::StatusOr<std::vector<AppendResult>>)>;
  using DurabilityListener = std::function<void(const std::string& topic, uint64_t durable_end)>;

  virtual ~EventLog() = default;

  // Appends `events` to `topic` (created on first use), in order. Sets each
  // event's `offset`, `publish_time` and clears `topic` before storing.
  // An event whose id is already in the topic's dedupe window is not
  // appended; its result carries the original offset and duplicate=true
  // (also for a repeated id within one batch or within one group commit).
  // Calls `done` exactly once, from a log thread, when every event of the
  // batch is durable per the fsync policy, or with an error. `done` must not
  // block.
  // REQUIRES: `topic` and `events` already validated by the caller.
  virtual void Append(const std::string& topic, std::vector<Event> events, AppendDone done) = 0;

  // Append() of a batch from `origin` (may be null: no order beyond the
  // batch). A log that fails a batch of the origin with UNAVAILABLE fails
  // its later batches too (AppendOrigin). The default ignores the origin:
  // FileEventLog stores each batch whole in one commit, and a failed commit
  // fails the log and every later batch with it.
  virtual void Append(const std::string& topic, std::vector<Event> events, AppendDone done,
                      const std::shared_ptr<AppendOrigin>& origin) {
    (void)origin;
    Append(topic, std::move(events), std::move(done));
  }

  // Append() of `events` that stay the caller's: the log may change them
  // (it clears the fields it assigns) and is done with them when this
  // returns, so a caller can parse its next request into the same messages
  // and keep their memory. The default moves them into Append().
  virtual void AppendFrom(const std::string& topic,
                          google::protobuf::RepeatedPtrField<Event>* events, AppendDone done,
                          const std::shared_ptr<AppendOrigin>& origin) {
    std::vector<Event> batch;
    batch.reserve(static_cast<size_t>(events->size()));
    for (Event& e : *events) batch.push_back(std::move(e));
    Append(topic, std::move(batch), std::move(done), origin);
  }

  // Offset one past the last durable event of `topic` (0 for an unknown
  // topic). Events below it are readable and never lost.
  virtual uint64_t DurableEnd(absl::string_view topic) const = 0;

  // Oldest retained offset of `topic` (0 for an unknown topic).
  virtual uint64_t FirstOffset(absl::string_view topic) const = 0;

  // Reads durable events of `topic` with offset >= `from` (from below the
  // oldest retained offset starts at the oldest), at most `max_events` and
  // about `max_bytes` (always at least one event when any is there). Events
  // come back with topic, offset and publish_time set. An unknown topic reads
  // as empty.
  virtual absl::StatusOr<std::vector<Event>> Read(absl::string_view topic, uint64_t from,
                                                  size_t max_events, size_t max_bytes) const = 0;

  // Read(), as the stored bytes (stored_event.h): what delivery needs,
  // without building an Event per event and group. The default converts
  // Read()'s events; FileEventLog serves its recent tail from memory.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadStored(absl::string_view topic,
                                                              uint64_t from, size_t max_events,
                                                              size_t max_bytes) const;

  // Whether ReadStored() of events just made durable is served from memory
  // rather than a network (FileEventLog with a tail cache: a topic nobody
  // read in the last 5 s is read back once from the file, most likely from
  // the page cache).
  virtual bool ServesTailFromMemory() const { return false; }

  // The first retained offset whose publish_time is >= `t`, or DurableEnd.
  virtual uint64_t OffsetForTime(absl::string_view topic, absl::Time t) const = 0;

  // Every topic, sorted by name.
  virtual std::vector<TopicStats> ListTopics() const = 0;

  // Registers the function called (from a log thread, before or after the
  // append callbacks of that commit: FileEventLog calls it first, so that
  // delivery starts first) each time events of a topic become durable.
  // Must not block for long. Set once, before the first Append.
  virtual void SetDurabilityListener(DurabilityListener listener) = 0;

  using FailureListener = std::function<void(const absl::Status& cause)>;
  // Registers the function called once, from a log thread, when the log
  // stops taking appends for good: every later Append() fails until the
  // process starts again and recovers the log from its files (FileEventLog
  // after a failed write or fsync: docs/STORAGE.md#a-storage-failure). Must
  // not block. Set once, before the first Append. The default never calls
  // it: a log whose failures pass (JetStream's) has none such.
  virtual void SetFailureListener(FailureListener listener) { (void)listener; }

  // Retention never deletes events at or after `offset` of `topic` (the
  // lowest committed offset of its groups) unless the hard size cap forces
  // it, which it then logs and counts in TopicStats::forced_deleted_events.
  virtual void SetRetentionFloor(const std::string& topic, uint64_t offset) = 0;

  // Makes everything appended so far durable and stops the log's threads;
  // pending appends complete first. Later Appends fail with UNAVAILABLE;
  // whether later reads work depends on the backend (JetStreamEventLog's
  // fail), so callers stop reading before they close.
  virtual absl::Status Close() = 0;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_EVENT_LOG_H_
