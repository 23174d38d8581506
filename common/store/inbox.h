#ifndef RELAY_COMMON_STORE_INBOX_H_
#define RELAY_COMMON_STORE_INBOX_H_

// The inbox (docs/DELIVERY.md#consumer-side): one row per event a service has handled, written
// in the same transaction as the handler's effects. A redelivered event
// finds its row and is skipped, which turns at-least-once delivery into
// exactly-once effects.
//
//   db->Transaction([&](Tx& tx) -> absl::Status {
//     absl::StatusOr<bool> fresh = Inbox::Claim(tx, event);
//     if (!fresh.ok()) return fresh.status();
//     if (!*fresh) return absl::OkStatus();  // handled before: no second effect
//     return Apply(tx, event);
//   });
//
// TransactionalConsumer does exactly this for every delivery.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/event.pb.h"

namespace relay::store {

// The inbox table: inbox(event_id TEXT PRIMARY KEY, topic, type, handled_us).
// Stateless; thread safety is the Database's.
class Inbox {
 public:
  // The schema steps, for a service's Database::Migrate() list before its
  // own steps. Frozen: later shared steps come as separate lists
  // (PruneIndexMigrations()) that a service appends after its own.
  static std::vector<std::string> Migrations();

  // An index on handled_us for PruneBatch(). A service appends these steps
  // at the END of its own list: migration steps are positional, so a step
  // added to Migrations() would shift every service step after it.
  static std::vector<std::string> PruneIndexMigrations();

  // Records `event` as handled inside the caller's transaction `tx`.
  // Returns true when it is new (the caller should apply its effects in the
  // same transaction), false when it was handled before (the caller must
  // not apply them again). Rolling `tx` back un-claims it.
  // REQUIRES: event.id() is not empty (else INVALID_ARGUMENT).
  static absl::StatusOr<bool> Claim(Tx& tx, const relay::events::v1::Event& event);

  // Whether `event_id` was handled.
  static absl::StatusOr<bool> Contains(Tx& tx, absl::string_view event_id);

  // Optional housekeeping: deletes the rows handled before `cutoff` and
  // returns how many. Only safe for a cutoff older than any redelivery the
  // broker can still make (its retention and max redelivery span): an event
  // redelivered after its row is gone would be handled a second time.
  // Scans the table (no index on handled_us): call it rarely.
  static absl::StatusOr<int64_t> Prune(Tx& tx, absl::Time cutoff);

  // Prune() of at most `limit` rows, the oldest first, through the
  // PruneIndexMigrations() index: a short transaction however big the
  // table. Returns how many it deleted (fewer than `limit`: none are left
  // before `cutoff`). Same safety rule as Prune(). REQUIRES: limit > 0.
  static absl::StatusOr<int64_t> PruneBatch(Tx& tx, absl::Time cutoff, int64_t limit);
};

}  // namespace relay::store

#endif  // RELAY_COMMON_STORE_INBOX_H_
