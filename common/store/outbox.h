#ifndef RELAY_COMMON_STORE_OUTBOX_H_
#define RELAY_COMMON_STORE_OUTBOX_H_

// The transactional outbox (docs/ARCHITECTURE.md#saga-steps, steps 1-2): a service
// writes the events it emits into its own database in the same transaction as the state change
// they describe, so both commit or neither does; an OutboxRelay then
// publishes the rows to the broker and deletes them once the broker holds
// them durably.
//
//   std::vector<std::string> steps = Outbox::Migrations();
//   steps.push_back("CREATE TABLE orders (...)");        // the service's own
//   db->Migrate(steps);
//   OutboxRelay relay(db.get(), &publisher, {});
//   relay.Start();
//   db->Transaction([&](Tx& tx) -> absl::Status {
//     ... insert the order ...
//     return Outbox::Add(tx, "orders", created_event).status();
//   });
//   relay.Wake();  // publish now rather than at the next poll

#include <cstdint>
#include <deque>
#include <future>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/events/publisher.h"
#include "common/store/sqlite.h"
#include "common/worker.h"
#include "relay/events/v1/event.pb.h"

namespace relay::store {

// The outbox table: outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, topic,
// event BLOB (a serialized relay.events.v1.Event), created_us).
// Stateless; thread safety is the Database's.
class Outbox {
 public:
  // The schema steps, for a service to put in its own Database::Migrate()
  // list before its own steps. Frozen: later shared steps come as separate
  // lists (ParkedMigrations()) that a service appends after its own.
  static std::vector<std::string> Migrations();

  // The table of parked rows: outbox_parked(seq, topic, event, created_us,
  // parked_us, error), the rows the broker refused as invalid (see
  // OutboxRelay). A service appends these steps at the END of its own list:
  // migration steps are positional, so a step added to Migrations() would
  // shift every service step after it.
  static std::vector<std::string> ParkedMigrations();

  // Largest serialized event Add() accepts (the broker's default limit).
  static constexpr size_t kMaxEventBytes = 1 << 20;

  // Appends `event` for `topic` to the outbox inside the caller's
  // transaction `tx` (it commits or rolls back with the caller's changes).
  // Fills an empty `id` with NewEventId() and an unset `time` with now.
  // Returns the event id, or INVALID_ARGUMENT for what the broker would
  // reject (a topic outside [a-z0-9._-]{1,128}, no type, an event `topic`
  // other than `topic`, more than kMaxEventBytes), or the SQL error.
  static absl::StatusOr<std::string> Add(Tx& tx, absl::string_view topic,
                                         relay::events::v1::Event event);

  // Rows not yet published.
  static absl::StatusOr<int64_t> Count(Tx& tx);
  // Rows parked because the broker refused them (ParkedMigrations()).
  static absl::StatusOr<int64_t> CountParked(Tx& tx);
};

// Publishes the outbox of one Database: a thread reads the rows in seq order
// in batches (rows of one topic), publishes a batch with the Publisher as one
// request, waits until the broker acknowledged it, then deletes those rows
// in one transaction. One batch is in flight at a time, and the broker
// refuses a request whole (an invalid event in it) or not at all, so rows
// leave in the order they were added (the order of each topic, and of each
// key's events, is kept) and a row is deleted only once the broker has it.
// (On JetStream a request that fails midway, UNAVAILABLE, may be stored in
// part, always a prefix of it, and its retry stores the rest after that
// part: docs/JETSTREAM.md#order.) A crash between
// publish and delete publishes the rows again: the broker drops them as
// duplicates by event id.
//
// While the broker is away the rows stay; the Publisher retries the batch
// it holds (the relay goes on waiting for it, reporting a failure every
// publish_timeout), and a batch the Publisher gives up on (closed, full, or
// rejected by the broker) is read and published again with exponential
// backoff, before any row behind it.
//
// The broker refuses a whole publish batch when one event of it is invalid
// (INVALID_ARGUMENT), and no retry can change that, so such rows must not
// block the rows behind them: the relay publishes each row of a refused
// batch alone, in seq order; a row the broker refuses alone is parked
// (moved to outbox_parked with the error, logged at ERROR, counted in
// stats().parked) and the relay moves on; the others are published as
// usual. Outbox::Add() refuses what it can tell is invalid, so a parked row
// means the broker's rules and Add()'s differ (e.g. a lower
// --max_event_bytes): an operator inspects outbox_parked.
//
// Wake() after a commit publishes at once; a poll every poll_interval
// catches rows added without a Wake().
//
// Thread-safe. REQUIRES: `db` and `publisher` outlive the relay; one relay per
// outbox table.
class OutboxRelay {
 public:
  struct Options {
    // Rows read, published and deleted together: at most batch_size rows of
    // one topic (at least 1, at most the publisher's max_pending_events: a
    // batch goes in one request), and no more once their events reach
    // batch_bytes (a first row larger than that still goes, alone), so that
    // a table of large events does not take the service's memory in one
    // read.
    size_t batch_size = 500;
    size_t batch_bytes = 4 << 20;
    // Fallback scan of the table when nobody calls Wake().
    absl::Duration poll_interval = absl::Seconds(1);
    // How long a batch may wait for the broker before the relay reports it
    // unreachable (the publisher keeps trying; the relay keeps waiting).
    absl::Duration publish_timeout = absl::Seconds(5);
    // Pause after a failed pass, doubling up to max_backoff.
    absl::Duration min_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // How long Stop() goes on publishing what is left.
    absl::Duration stop_grace = absl::Seconds(5);
  };

  struct Stats {
    uint64_t published = 0;  // rows the broker acknowledged (and deleted)
    uint64_t failures = 0;   // passes that ended in an error or a timeout
    uint64_t parked = 0;     // rows the broker refused alone, moved to outbox_parked
    uint64_t batches = 0;    // batches read from the table and handed to the publisher
    std::string last_error;  // empty once a pass succeeds again
  };

  OutboxRelay(Database* db, relay::events::Publisher* publisher, Options options);
  ~OutboxRelay();  // Stop()

  OutboxRelay(const OutboxRelay&) = delete;
  OutboxRelay& operator=(const OutboxRelay&) = delete;

  // Starts the relay thread; it first publishes what an earlier run left.
  // REQUIRES: called once, before Stop().
  void Start();

  // Asks for a pass now (cheap; call after every commit that added rows).
  void Wake();

  // Waits until the relay has seen the outbox empty after this call began,
  // i.e. everything committed before the call is published. Returns
  // DEADLINE_EXCEEDED (with the last error) when not done within `timeout`,
  // FAILED_PRECONDITION when the relay is not running.
  absl::Status Flush(absl::Duration timeout);

  // Publishes what it can within stop_grace, then ends the thread; what is
  // left stays in the table for the next start, and a warning says how many
  // rows. Idempotent.
  void Stop();

  Stats stats() const;

  // Rows waiting in the table (a COUNT over the outbox).
  absl::StatusOr<int64_t> Pending();

 private:
  struct Row {
    int64_t seq;
    std::string topic;
    std::string event;  // serialized
  };
  struct Sent {
    int64_t seq;
    std::string topic;
    std::string event_id;
    std::string type;
    std::future<absl::StatusOr<uint64_t>> offset;
  };

  // One pass of the relay's Worker: publishes until the table is empty or
  // something fails; returns the pause before the next pass.
  absl::Duration Pass();
  // The last pass of a stop: running_ goes false. Returns "never again".
  absl::Duration Finish();
  // Publishes until the table is empty or something fails.
  absl::Status Drain();
  // Waits for the batch in `sent_`; deletes what the broker acknowledged.
  absl::Status Settle();
  // Rows in seq order: the first batch_size, or the one with `seq`.
  absl::StatusOr<std::vector<Row>> ReadBatch();
  absl::StatusOr<std::vector<Row>> ReadRow(int64_t seq);
  // Publishes `rows` into sent_, dropping (deleting) unparsable ones.
  absl::Status Send(std::vector<Row>& rows);
  absl::Status Delete(const std::vector<int64_t>& seqs);
  // Moves row `sent.seq` to outbox_parked with `error`, loudly.
  absl::Status Park(const Sent& sent, const absl::Status& error);
  // When waiting should end: now + `d`, earlier when stopping.
  absl::Time Deadline(absl::Duration d);
  bool StopDeadlinePassed();

  Database* const db_;
  relay::events::Publisher* const publisher_;
  const Options options_;
  // Pauses after failed passes, and whether the last one failed (logged
  // once per outage). Relay thread only.
  Backoff backoff_;
  bool failing_ = false;
  // Published, not yet settled. Only the relay thread touches it.
  std::vector<Sent> sent_;
  // Rows of a batch the broker refused, to be published one at a time, in
  // seq order; `isolating_`: sent_ holds one of them alone. Relay thread only.
  std::deque<int64_t> suspects_;
  bool isolating_ = false;

  mutable absl::Mutex mu_;
  // From Start() until the last pass after Stop() (or Stop() without Start()).
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Flush() bumps flush_seq_; the relay sets drained_seq_ to the flush_seq_
  // it read before a scan that found the table empty.
  uint64_t flush_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t drained_seq_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // Held for the whole of Stop(): a second call waits for the first.
  absl::Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  // The scrape-time collector of the table's depth and oldest row (-1:
  // none); registered by Start(), removed by Stop().
  int collector_ ABSL_GUARDED_BY(stop_mu_) = -1;

  // Runs Pass(). Last: it stops before the state above goes.
  Worker worker_;
};

}  // namespace relay::store

#endif  // RELAY_COMMON_STORE_OUTBOX_H_
