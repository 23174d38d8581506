#include "common/store/inbox.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace relay::store {

std::vector<std::string> Inbox::Migrations() {
  return {
      "CREATE TABLE IF NOT EXISTS inbox ("
      "  event_id TEXT PRIMARY KEY,"
      "  topic TEXT NOT NULL,"
      "  type TEXT NOT NULL,"
      "  handled_us INTEGER NOT NULL) WITHOUT ROWID",
  };
}

std::vector<std::string> Inbox::PruneIndexMigrations() {
  return {"CREATE INDEX IF NOT EXISTS inbox_by_handled ON inbox(handled_us)"};
}

absl::StatusOr<bool> Inbox::Claim(Tx& tx, const relay::events::v1::Event& event) {
  if (event.id().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("inbox: event of type '", event.type(), "' has no id"));
  }
  absl::StatusOr<Statement> insert = tx.Prepare(
      "INSERT OR IGNORE INTO inbox (event_id, topic, type, handled_us) VALUES (?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, event.id()); !s.ok()) return s;
  if (absl::Status s = insert->BindText(2, event.topic()); !s.ok()) return s;
  if (absl::Status s = insert->BindText(3, event.type()); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(4, absl::ToUnixMicros(absl::Now())); !s.ok()) return s;
  if (absl::Status s = insert->Run(); !s.ok()) return s;
  return tx.changes() == 1;
}

absl::StatusOr<bool> Inbox::Contains(Tx& tx, absl::string_view event_id) {
  absl::StatusOr<Statement> select = tx.Prepare("SELECT 1 FROM inbox WHERE event_id = ?");
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, event_id); !s.ok()) return s;
  return select->Step();
}

absl::StatusOr<int64_t> Inbox::Prune(Tx& tx, absl::Time cutoff) {
  absl::StatusOr<Statement> remove = tx.Prepare("DELETE FROM inbox WHERE handled_us < ?");
  if (!remove.ok()) return remove.status();
  if (absl::Status s = remove->BindInt64(1, absl::ToUnixMicros(cutoff)); !s.ok()) return s;
  if (absl::Status s = remove->Run(); !s.ok()) return s;
  return tx.changes();
}

absl::StatusOr<int64_t> Inbox::PruneBatch(Tx& tx, absl::Time cutoff, int64_t limit) {
  absl::StatusOr<Statement> remove = tx.Prepare(
      "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox WHERE handled_us < ? "
      "ORDER BY handled_us LIMIT ?)");
  if (!remove.ok()) return remove.status();
  if (absl::Status s = remove->BindInt64(1, absl::ToUnixMicros(cutoff)); !s.ok()) return s;
  if (absl::Status s = remove->BindInt64(2, limit); !s.ok()) return s;
  if (absl::Status s = remove->Run(); !s.ok()) return s;
  return tx.changes();
}

}  // namespace relay::store
