#ifndef RELAY_COMMON_STORE_INBOX_PRUNER_H_
#define RELAY_COMMON_STORE_INBOX_PRUNER_H_

// Keeps a service's inbox bounded: the inbox gets one row per handled event
// and nothing else ever deletes them, so without this it grows with every
// event for the life of the database. Rows older than `retention` are
// deleted, in batches of `batch` rows, each batch its own short transaction
// (the database lock is never held long, handlers go on in between).
//
// The retention must be longer than any redelivery the broker can still
// make, or a redelivered event whose row is gone is handled twice: longer
// than the broker's log retention (--retention_age, 7 days by default) and
// its dedupe window (24h). The default, 14 days, is twice the former.
//
//   InboxPruner pruner(db, {});
//   pruner.Start();   // a pass at once, then every interval
//
// Thread-safe. REQUIRES: `db` (migrated with Inbox::Migrations() and
// Inbox::PruneIndexMigrations()) outlives the pruner.

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "common/worker.h"

namespace relay::store {

class InboxPruner {
 public:
  struct Options {
    // Rows handled longer ago than this are deleted. Zero or less: never
    // (Start() starts nothing).
    absl::Duration retention = absl::Hours(14 * 24);
    // Between passes.
    absl::Duration interval = absl::Hours(1);
    // Rows deleted per transaction.
    int64_t batch = 1000;
    // The clock the cutoff is taken from (tests move it).
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  InboxPruner(Database* db, Options options);
  ~InboxPruner();  // Stop()

  InboxPruner(const InboxPruner&) = delete;
  InboxPruner& operator=(const InboxPruner&) = delete;

  // One pass now: deletes every row older than the retention, batch by
  // batch. Returns how many rows it deleted, or the first error (rows of
  // earlier batches stay deleted). Logs one line when it deleted any.
  absl::StatusOr<int64_t> PruneNow();

  // Starts the thread: a pass at once, then one every interval. A failed
  // pass is logged and retried at the next. REQUIRES: called at most once.
  void Start();
  // Ends the thread (between batches). Idempotent and thread-safe.
  void Stop();

 private:
  Database* const db_;
  const Options options_;
  Worker worker_;  // PruneNow() every interval
};

}  // namespace relay::store

#endif  // RELAY_COMMON_STORE_INBOX_PRUNER_H_
