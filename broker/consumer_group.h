#ifndef RELAY_BROKER_CONSUMER_GROUP_H_
#define RELAY_BROKER_CONSUMER_GROUP_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/broker_metrics.h"
#include "broker/delivery/scheduler.h"
#include "broker/delivery/slot_map.h"
#include "broker/group_store.h"
#include "broker/storage/event_log.h"
#include "relay/broker/v1/broker.pb.h"

namespace relay::broker {

using Clock = std::function<absl::Time()>;

// An event handed to a member: its stored bytes (shared with the log's
// cache and the group's window, not copied) and which attempt this is.
struct OutgoingDelivery {
  StoredEvent event;
  uint32_t attempt = 0;
};

// The outbound side of one member's Subscribe stream.
class MemberSink {
 public:
  virtual ~MemberSink() = default;
  // Hands deliveries of `topic` to the member's stream, from the dispatcher
  // thread, in order, and returns Backlogged() after it. Must not block and
  // must not call back into the group (it runs under the group's sink lock,
  // which Leave() waits for).
  virtual bool Deliver(absl::string_view topic, std::vector<OutgoingDelivery> deliveries) = 0;
  // Whether the stream holds more deliveries not yet written than the
  // group's window (the member takes them in slower than they expire and
  // go out again): the group then gives the member nothing new until the
  // sink calls ConsumerGroup::Drained(). Called with the group's locks held:
  // must only read the sink's own state.
  virtual bool Backlogged() const = 0;
};

// One consumer group of one topic: the Scheduler's rules applied to the
// events of an EventLog and to the members' streams, plus the dead-letter
// topic and the group's checkpoint.
//
// Thread-safe. Pump() is called by one thread at a time (GroupManager holds
// its pump_mu_: the dispatcher, or the log's completer delivering new
// events); the other methods from any thread (the members' reactors).
class ConsumerGroup {
 public:
  struct Options {
    Scheduler::Options scheduler;
    // Most bytes of events held in the window (besides Scheduler's count
    // bound); one event larger than this still goes through, alone.
    size_t max_window_bytes = size_t{64} << 20;
  };

  // Starts the group from `checkpoint` (for a new group, one that holds its
  // start offset). `wake` asks the dispatcher for a Pump() soon; it must not
  // block. `log` must outlive the group.
  ConsumerGroup(const GroupCheckpoint& checkpoint, Options options, EventLog* log, Clock clock,
                std::function<void()> wake);

  const std::string& topic() const { return topic_; }
  const std::string& name() const { return group_; }

  // Adds a member whose stream is `sink`. When the open asks for another
  // type filter than the group's: with no member connected, the group takes
  // the new filter (a new version of the owning service); buffered events
  // it excludes are dropped, events the old filter skipped stay skipped.
  // With members connected under the old filter: FAILED_PRECONDITION.
  // `sink` must stay valid until Leave() returns.
  absl::StatusOr<Scheduler::MemberId> Join(MemberSink* sink, const v1::SubscribeRequest::Open& open,
                                           std::string peer);

  // Removes the member; its deliveries go back to the group at once. After
  // it returns the group never touches the member's sink again.
  void Leave(Scheduler::MemberId member);

  // The member's sink is no longer Backlogged(): it gets deliveries again.
  // From the sink's thread, without its own lock held.
  void Drained(Scheduler::MemberId member);

  // The most bytes of events the window holds (Options::max_window_bytes).
  size_t max_window_bytes() const { return max_window_bytes_; }

  // Applies the acks and nacks of `request` from `member`. An ack or nack of
  // an offset the group never delivered is FAILED_PRECONDITION and nothing
  // of the request is applied.
  absl::Status Settle(Scheduler::MemberId member, const v1::SubscribeRequest& request);

  // Moves events along: reads newly durable events into the window (skipping
  // offsets the log no longer has, and, after repeated read errors, an
  // unreadable event), expires ack deadlines, hands events to members,
  // dead-letters exhausted ones. Never blocks on another group. Returns when
  // it next needs to run (InfiniteFuture: on wake only).
  absl::Time Pump();

  // Fills `out` with the group's progress when it changed since the last
  // call; returns whether it did.
  bool TakeCheckpoint(GroupCheckpoint* out);

  // The checkpoint TakeCheckpoint() gave could not be saved: the next call
  // gives one again.
  void CheckpointFailed();

  // Every offset below is acknowledged.
  uint64_t committed() const;
  // The next offset the window reads from the log.
  uint64_t next_to_buffer() const;

  v1::GroupInfo Describe() const;

 private:
  struct Member {
    std::string name;
    std::string peer;
    absl::Time connected_at;
    uint32_t max_in_flight = 0;
  };

  // A dead letter whose append failed, to try again at `due`; `trim`: in
  // the trimmed form (DeadLetter.event_trimmed), the log having refused the
  // whole one as too large.
  struct DeadLetterRetry {
    absl::Time due;
    Scheduler::DeadLetter letter;
    bool trim = false;
  };

  // A dead letter built under mu_, appended by SendDeadLetters() after.
  struct PendingDeadLetter {
    Event event;
    Scheduler::DeadLetter letter;
    bool trimmed = false;
  };

  // Builds the dead-letter events of `dead` into dead_out_.
  void StartDeadLetters(std::vector<Scheduler::DeadLetter> dead) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartDeadLetter(Scheduler::DeadLetter d, bool trim) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends what StartDeadLetters() built. Call without mu_ held.
  void SendDeadLetters() ABSL_LOCKS_EXCLUDED(mu_);
  void DropBelowCommitted() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds read events to the window. REQUIRES: ascending offsets.
  void Buffer(std::vector<StoredEvent>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the window past offsets the log does not have, [next, to).
  void SkipGap(uint64_t to, absl::string_view why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads events into the window; returns when to try again after a read
  // error (InfiniteFuture when none). Dispatcher thread only.
  absl::Time Fill();
  bool Wanted(const StoredEvent& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops `it` from the window (its bytes to `freed`, if given); returns the
  // entry after it.
  SlotMap<StoredEvent>::iterator Unbuffer(SlotMap<StoredEvent>::iterator it,
                                          std::vector<StoredEvent>* freed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string topic_;
  const std::string group_;
  const int64_t created_unix_micros_;
  const size_t max_window_bytes_;
  EventLog* const log_;
  const Clock clock_;
  const std::function<void()> wake_;

  // Held while handing deliveries to sinks, outside mu_ (serializing a
  // delivery message must not block acks): Leave() takes it after removing
  // the member, so once Leave() returns no Deliver() to it runs or starts.
  absl::Mutex sinks_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::flat_hash_map<Scheduler::MemberId, MemberSink*> sinks_ ABSL_GUARDED_BY(sinks_mu_);

  mutable absl::Mutex mu_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  // Buffered events not yet acknowledged, by offset.
  SlotMap<StoredEvent> buffer_ ABSL_GUARDED_BY(mu_);
  size_t buffer_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // the sum of buffer_'s sizes
  absl::flat_hash_map<Scheduler::MemberId, Member> members_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> types_ ABSL_GUARDED_BY(mu_);  // sorted; empty: all
  uint64_t dead_lettered_ ABSL_GUARDED_BY(mu_) = 0;
  // Offsets skipped because the log no longer had them (damage, retention)
  // or could not read them, since the group was created.
  uint64_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
  // In the process's metrics registry; atomic, so no lock.
  const GroupCounters counters_;
  std::vector<DeadLetterRetry> dead_retries_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingDeadLetter> dead_out_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;

  // Read errors at one offset, retried before that event is skipped.
  // Pump() only (one thread at a time, see the class comment).
  uint64_t read_error_offset_ = 0;
  int read_errors_ = 0;
  int damaged_reads_ = 0;  // of read_errors_, those that found the event damaged
  absl::Time read_retry_at_ = absl::InfinitePast();
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_CONSUMER_GROUP_H_
