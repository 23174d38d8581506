#include "common/store/inbox_pruner.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/store/inbox.h"

namespace relay::store {

InboxPruner::InboxPruner(Database* db, Options options)
    : db_(db), options_(std::move(options)), worker_("inbox-pruner", [this] {
        absl::StatusOr<int64_t> n = PruneNow();
        if (!n.ok()) {
          RELAY_LOG(Error, "inbox prune failed; retried at the next interval",
                    {{"db", db_->path()}, {"error", n.status().ToString()}});
        }
        return options_.interval;
      }) {}

InboxPruner::~InboxPruner() { Stop(); }

absl::StatusOr<int64_t> InboxPruner::PruneNow() {
  const absl::Time cutoff = options_.clock() - options_.retention;
  int64_t total = 0;
  while (!worker_.stopping()) {
    int64_t deleted = 0;
    absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
      absl::StatusOr<int64_t> n = Inbox::PruneBatch(tx, cutoff, options_.batch);
      if (!n.ok()) return n.status();
      deleted = *n;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    total += deleted;
    if (deleted < options_.batch) break;
  }
  if (total > 0) {
    RELAY_LOG(Info, "inbox pruned",
              {{"db", db_->path()}, {"rows", absl::StrCat(total)},
               {"retention", absl::FormatDuration(options_.retention)}});
  }
  return total;
}

void InboxPruner::Start() {
  if (options_.retention <= absl::ZeroDuration()) return;
  worker_.Start();
}

void InboxPruner::Stop() {
  worker_.Stop();
}

}  // namespace relay::store
