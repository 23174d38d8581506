#ifndef RELAY_BROKER_DELIVERY_SCHEDULER_H_
#define RELAY_BROKER_DELIVERY_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "broker/delivery/slot_map.h"

namespace relay::broker {

// The delivery rules of one consumer group, as pure logic: no I/O, no
// threads, no clock of its own (every call is handed `now`).
//
// The scheduler holds a window of the topic's events, from the group's
// committed offset up to NextOffsetToBuffer(), identified by offset and key.
// Rules (docs/DELIVERY.md):
//  - events of one non-empty key are handed out in offset order, one at a
//    time: the next waits until the previous is acked or dead-lettered;
//    events with an empty key have no such constraint;
//  - a member holds at most its max_in_flight deliveries; events waiting for
//    a delayed redelivery are not counted;
//  - a delivery not acked within the member's ack deadline, or nacked, is
//    redelivered after a delay (the nack's, or exponential backoff);
//  - after max_deliveries failed attempts the event is handed back as a
//    DeadLetter; its key stays blocked until CompleteDeadLetter();
//  - a member that leaves releases its deliveries at once (a failed attempt);
//  - a member one of whose deliveries passed its ack deadline is stalled: it
//    gets no new deliveries until it acks or nacks something (a hung
//    consumer must not soak up, and spend the attempts of, healthy events);
//  - offsets the log no longer has (damage, retention) are skipped over.
//
// Not thread-safe: the owner serializes calls.
class Scheduler {
 public:
  using MemberId = uint64_t;

  struct Options {
    uint32_t max_deliveries = 5;
    absl::Duration min_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(60);
    // Most events held in the window (acked ones above committed excluded).
    size_t max_buffered = 20000;
  };

  // One past delivery of an event, for the dead letter's history.
  struct Attempt {
    uint32_t attempt = 0;
    absl::Time delivered_at;
    std::string outcome;  // "nack: <reason>", "ack deadline exceeded", "member left"
  };

  // An event that exhausted its deliveries: publish it to the dead-letter
  // topic, then call CompleteDeadLetter(offset).
  struct DeadLetter {
    uint64_t offset = 0;
    std::string key;
    std::string last_error;
    std::vector<Attempt> attempts;
  };

  // An event handed to a member.
  struct Assignment {
    MemberId member = 0;
    uint64_t offset = 0;
    uint32_t attempt = 0;  // 1 for the first delivery
  };

  // One ack of a batch (AckAll).
  struct AckRef {
    uint64_t offset = 0;
    uint32_t attempt = 0;
  };

  enum class AckOutcome {
    kAcked,    // the event is done for the group
    kStale,    // already acked, or another attempt is in flight: ignored
    kUnknown,  // the offset was never buffered by this group (>= NextOffsetToBuffer)
  };

  struct Stats {
    uint64_t in_flight = 0;
    uint64_t waiting_retry = 0;
    uint64_t buffered = 0;
    uint64_t redelivered = 0;  // redeliveries handed out so far
  };

  // A run of consecutive offsets [begin, end).
  struct Range {
    uint64_t begin = 0;
    uint64_t end = 0;
    bool operator==(const Range& o) const { return begin == o.begin && end == o.end; }
  };

  // Starts the group at `committed` (every offset below is done), with the
  // runs of offsets above it that are already acked and the attempts made
  // so far on unacked ones (from a checkpoint). Ranges may be given in any
  // order and may overlap.
  Scheduler(Options options, uint64_t committed, const std::vector<Range>& acked_above,
            const absl::flat_hash_map<uint64_t, uint32_t>& attempts);

  // Offset the next Add() must carry (events are added contiguously).
  uint64_t NextOffsetToBuffer() const;
  // How many more events Add() accepts before the window is full.
  size_t BufferRoom() const;

  // Adds the event at NextOffsetToBuffer() to the window. `skip` (filtered
  // out by type) marks it acked at once, as are offsets the constructor was
  // told are acked. Returns whether the window keeps the event (false for
  // those acked at once: the caller keeps nothing of them either).
  // REQUIRES: offset == NextOffsetToBuffer(), BufferRoom() > 0.
  bool Add(uint64_t offset, absl::string_view key, bool skip);

  // Skips the window ahead to `offset` (events below it left retention or
  // the group started later), acking everything below.
  // REQUIRES: nothing in flight below `offset`.
  void SkipTo(uint64_t offset);

  // The log holds no events in [NextOffsetToBuffer(), `offset`) (a damaged
  // segment, or retention deleting ahead of the window): the window moves
  // past them as if they were acked. Events already buffered stay.
  // Returns how many offsets were skipped.
  uint64_t SkipAhead(uint64_t offset);

  // Drops the buffered, unacked event at `offset` as if acked (a type
  // filter change excluded it). REQUIRES: it is not in flight.
  void Drop(uint64_t offset);

  void AddMember(MemberId member, uint32_t max_in_flight, absl::Duration ack_deadline);
  // Releases the member's deliveries (each a failed attempt, "member left").
  // Returns the events that thereby exhausted their deliveries.
  std::vector<DeadLetter> RemoveMember(MemberId member, absl::Time now);
  // With `backlogged`, `member` gets no new deliveries whatever its room
  // (its stream has more waiting to be written than it should hold); the
  // deliveries it holds are unaffected. Without, it gets them again.
  void SetBacklogged(MemberId member, bool backlogged);

  // Hands out what can go now: due retries become ready, then ready events
  // in offset order go to members with room (least loaded first), at most
  // `max` assignments.
  std::vector<Assignment> Assign(absl::Time now, size_t max);

  // Acks the latest attempt of an unacked event, from any member: kAcked
  // when it is in flight under `attempt`, or not in flight at all (a late
  // ack, e.g. while it waits for a retry) and `attempt` was its latest.
  // kStale for an older attempt, an acked offset (or below committed()), or
  // an event being dead-lettered. Acking releases the key's next event.
  AckOutcome Ack(MemberId member, uint64_t offset, uint32_t attempt);

  // Ack() of each of `acks` in turn, all from `member`, appending the
  // offsets acked (kAcked) to `acked`. The same outcomes, for less work: the
  // member bookkeeping is done once per batch, and offsets that ascend (an
  // ack message, usually) are found next to each other rather than looked
  // up one by one.
  void AckAll(MemberId member, absl::Span<const AckRef> acks, std::vector<uint64_t>* acked);

  // Fails the delivery: redelivery after `retry_delay` (zero: backoff), or a
  // DeadLetter when attempts are exhausted. Nacks for deliveries the member
  // does not hold (stale attempt, acked, unknown) are ignored: returns
  // kStale / kUnknown and changes nothing. REQUIRES: dead != nullptr.
  AckOutcome Nack(MemberId member, uint64_t offset, uint32_t attempt, absl::string_view reason,
                  absl::Duration retry_delay, absl::Time now, std::vector<DeadLetter>* dead);

  // Fails every delivery whose ack deadline passed by `now`, and stalls the
  // members that held them (see the class comment).
  std::vector<DeadLetter> ExpireDeadlines(absl::Time now);

  // The dead letter of `offset` is durable: the event counts as acked and
  // its key moves on.
  void CompleteDeadLetter(uint64_t offset);

  // Whether events wait to be handed out now: ready ones (waiting for a
  // member with room) or due dead letters. Acks can only make progress
  // possible for these.
  bool HasWaiting() const;

  // Earliest time a deadline or a delayed retry falls due (InfiniteFuture
  // when none; InfinitePast when an event restored with its attempts used
  // up waits to be handed out as a DeadLetter by ExpireDeadlines()).
  absl::Time NextWakeup() const;

  // Every offset below is acked.
  uint64_t committed() const;
  // Runs of acked offsets at or above committed(), ascending and disjoint
  // (including those the constructor was given that are not buffered yet).
  // O(unacked events + runs), not O(offsets): one stuck event with a
  // million acked behind it is one run.
  std::vector<Range> AckedAbove() const;
  // How many offsets AckedAbove() covers.
  uint64_t AckedAboveCount() const;
  // Attempts made on unacked events: buffered ones, and those the
  // constructor was given that are not buffered yet.
  absl::flat_hash_map<uint64_t, uint32_t> Attempts() const;
  // The number of deliveries `member` holds now.
  uint32_t InFlight(MemberId member) const;
  // Whether `member` is stalled: a delivery of its passed its ack deadline
  // and it has not acked or nacked anything since.
  bool Stalled(MemberId member) const;
  bool Backlogged(MemberId member) const;
  Stats stats() const;

 private:
  enum class State : uint8_t {
    kPending,        // behind an earlier unacked event of its key
    kReady,          // in ready_, waiting for a member with room
    kInFlight,       // held by `member` until `due` (its ack deadline)
    kRetryWait,      // redelivery delayed until `due`
    kExhausted,      // attempts used up before a restart: dead letter due
    kDeadLettering,  // handed out as a DeadLetter until CompleteDeadLetter()
  };

  // A buffered, unacked event. Acked events are not stored: an offset in
  // [committed(), next_) that is absent from events_ is acked.
  struct Event {
    std::string key;
    absl::Time due;           // kInFlight: ack deadline; kRetryWait: retry time
    absl::Time delivered_at;  // of the latest attempt
    MemberId member = 0;      // the holder while kInFlight
    uint32_t attempts = 0;    // deliveries so far, counting those before a restart
    State state = State::kPending;
  };

  // One delivery in a member's deadline queue.
  struct Deadline {
    absl::Time due;
    uint64_t offset;
    uint32_t attempt;
  };

  struct Member {
    uint32_t max_in_flight = 0;
    absl::Duration ack_deadline;
    uint64_t last_assigned = 0;  // assign_seq_ of its latest assignment
    bool stalled = false;        // see Stalled()
    bool backlogged = false;     // see SetBacklogged()
    bool deferred = false;       // out of available_ until AckAll() ends
    // Its deliveries in assignment order, which is deadline order: every
    // delivery gets now + ack_deadline, clamped to be no earlier than the
    // one before (a wall clock stepping back, or AddMember() shortening the
    // deadline of a member still holding deliveries, delays a deadline,
    // never reorders them). A delivery that ends (ack, nack) leaves at once when
    // it is the front, the common case; otherwise it stays, listed in
    // `ended`, until it reaches the front. No ordered map per delivery.
    std::deque<Deadline> deadlines;
    absl::flat_hash_set<std::pair<uint64_t, uint32_t>> ended;  // (offset, attempt)

    // Deliveries held: the entries of `deadlines` not marked ended.
    uint32_t in_flight() const { return static_cast<uint32_t>(deadlines.size() - ended.size()); }
  };

  // (retry time, offset).
  using Timer = std::pair<absl::Time, uint64_t>;
  // (in flight, last_assigned, id): the least loaded first, ties to the
  // member served least recently, then the lowest id.
  using Load = std::tuple<uint32_t, uint64_t, MemberId>;

  static Load LoadOf(MemberId id, const Member& m) {
    return Load(m.in_flight(), m.last_assigned, id);
  }
  // Drops ended deliveries from the front of `m.deadlines`.
  static void TrimDeadlines(Member& m);
  // Takes the delivery (offset, attempt) out of `m.deadlines`: pops it when
  // it is the front, else marks it ended (compacting when marks pile up).
  static void EndDeadline(Member& m, uint64_t offset, uint32_t attempt);

  absl::Duration Backoff(uint32_t attempt) const;
  // Puts `m` in available_ when it has room and is neither stalled nor
  // backlogged.
  // REQUIRES: its entry (under its current load) is not in available_.
  void OfferIfAvailable(MemberId id, const Member& m);
  // An ack or nack arrived from `member`: it is alive, so it is no longer
  // stalled.
  void HeardFrom(MemberId member);
  // Makes the first unacked event of its key deliverable (ready, or a due
  // dead letter when its restored attempts are used up).
  void Release(uint64_t offset, Event& e);
  // Takes an in-flight event away from its member.
  void Unassign(uint64_t offset, Event& e);
  // Records a failed attempt; the event then waits `delay` (zero: ready at
  // once) or, out of attempts, is appended to `dead`.
  void Fail(uint64_t offset, Event& e, std::string outcome, absl::Duration delay, absl::Time now,
            std::vector<DeadLetter>* dead);
  // Acks a buffered event: drops it from every structure and releases the
  // next event of its key. Returns the entry after it in events_.
  SlotMap<Event>::iterator Remove(SlotMap<Event>::iterator it);

  Options options_;
  uint64_t next_;            // NextOffsetToBuffer()
  uint64_t assign_seq_ = 0;  // counts assignments, for round robin
  uint64_t redelivered_ = 0;
  // Inside AckAll(): Unassign() takes a member out of available_ once and
  // lists it here, and AckAll() offers it again at the end.
  bool deferring_ = false;
  std::vector<MemberId> deferred_;

  SlotMap<Event> events_;  // buffered, unacked
  // The buffered, unacked offsets of one key, ascending: offsets[head] is
  // the one that may be delivered. Most keys hold one or two (no heap), and
  // the head leaves first (acked, dead-lettered), in O(1) amortized; only a
  // type filter change drops one from the middle.
  struct KeyQueue {
    absl::InlinedVector<uint64_t, 2> offsets;
    size_t head = 0;
    bool empty() const { return head == offsets.size(); }
    uint64_t front() const { return offsets[head]; }
    // Removes `offset`; returns whether it was the front.
    bool Remove(uint64_t offset);
  };
  // Non-empty key -> its queue.
  absl::flat_hash_map<std::string, KeyQueue> keys_;
  absl::btree_set<uint64_t> ready_;
  absl::btree_set<Timer> retries_;  // kRetryWait
  absl::btree_set<uint64_t> exhausted_;
  absl::flat_hash_map<uint64_t, std::vector<Attempt>> history_;  // failed attempts
  absl::flat_hash_map<MemberId, Member> members_;
  absl::btree_set<Load> available_;  // members with room

  // From the constructor, for offsets not buffered yet (>= next_): acked
  // runs as begin -> end.
  absl::btree_map<uint64_t, uint64_t> acked_ahead_;
  absl::btree_map<uint64_t, uint32_t> attempts_ahead_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_DELIVERY_SCHEDULER_H_
