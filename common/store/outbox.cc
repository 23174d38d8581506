#include "common/store/outbox.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "google/protobuf/util/time_util.h"

namespace relay::store {
namespace {

using relay::events::v1::Event;

// How often a wait for the broker looks at the stop deadline.
constexpr absl::Duration kStopCheck = absl::Milliseconds(50);

// The broker's rule for topic names: [a-z0-9._-]{1,128}, not "." or "..".
absl::Status ValidateTopic(absl::string_view topic) {
  if (topic.empty() || topic.size() > 128 || topic == "." || topic == "..") {
    return absl::InvalidArgumentError(absl::StrCat("outbox: invalid topic name '", topic, "'"));
  }
  for (char c : topic) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("outbox: topic '", topic, "' has a character outside [a-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ------------------------------------------------------------------- Outbox

std::vector<std::string> Outbox::Migrations() {
  return {
      "CREATE TABLE IF NOT EXISTS outbox ("
      "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  topic TEXT NOT NULL,"
      "  event BLOB NOT NULL,"
      "  created_us INTEGER NOT NULL)",
  };
}

std::vector<std::string> Outbox::ParkedMigrations() {
  return {
      "CREATE TABLE IF NOT EXISTS outbox_parked ("
      "  seq INTEGER PRIMARY KEY,"
      "  topic TEXT NOT NULL,"
      "  event BLOB NOT NULL,"
      "  created_us INTEGER NOT NULL,"
      "  parked_us INTEGER NOT NULL,"
      "  error TEXT NOT NULL)",
  };
}

absl::StatusOr<std::string> Outbox::Add(Tx& tx, absl::string_view topic, Event event) {
  if (absl::Status s = ValidateTopic(topic); !s.ok()) return s;
  if (event.type().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("outbox: event for '", topic, "' has no type"));
  }
  if (!event.topic().empty() && event.topic() != topic) {
    return absl::InvalidArgumentError(absl::StrCat("outbox: event names topic '", event.topic(),
                                                   "' but is added for '", topic, "'"));
  }
  const absl::Time now = absl::Now();
  if (event.id().empty()) event.set_id(NewEventId());
  if (!event.has_time()) {
    *event.mutable_time() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
  }
  std::string blob;
  if (!event.SerializeToString(&blob)) {
    return absl::InternalError(absl::StrCat("outbox: event ", event.id(), " does not serialize"));
  }
  if (blob.size() > kMaxEventBytes) {
    return absl::InvalidArgumentError(absl::StrCat("outbox: event ", event.id(), " of type ",
                                                   event.type(), " is ", blob.size(),
                                                   " bytes; the limit is ", kMaxEventBytes));
  }
  absl::StatusOr<Statement> insert =
      tx.Prepare("INSERT INTO outbox (topic, event, created_us) VALUES (?, ?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, topic); !s.ok()) return s;
  if (absl::Status s = insert->BindBlob(2, blob); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(3, absl::ToUnixMicros(now)); !s.ok()) return s;
  if (absl::Status s = insert->Run(); !s.ok()) return s;
  return event.id();
}

absl::StatusOr<int64_t> Outbox::Count(Tx& tx) {
  absl::StatusOr<Statement> count = tx.Prepare("SELECT count(*) FROM outbox");
  if (!count.ok()) return count.status();
  absl::StatusOr<bool> row = count->Step();
  if (!row.ok()) return row.status();
  return *row ? count->ColumnInt64(0) : 0;
}

absl::StatusOr<int64_t> Outbox::CountParked(Tx& tx) {
  absl::StatusOr<Statement> count = tx.Prepare("SELECT count(*) FROM outbox_parked");
  if (!count.ok()) return count.status();
  absl::StatusOr<bool> row = count->Step();
  if (!row.ok()) return row.status();
  return *row ? count->ColumnInt64(0) : 0;
}

// -------------------------------------------------------------- OutboxRelay

namespace {

// docs/OBSERVABILITY.md#services
struct RelayMetrics {
  metrics::Counter& published;
  metrics::Counter& failed_passes;
  metrics::Counter& parked;
};

RelayMetrics& GetRelayMetrics() {
  static RelayMetrics* m = [] {
    metrics::Registry& r = metrics::Registry::Default();
    return new RelayMetrics{
        r.AddCounter("relay_outbox_published_total",
                     "Outbox rows the broker acknowledged (then deleted)")
            .With({}),
        r.AddCounter("relay_outbox_failed_passes_total",
                     "Relay passes that ended in an error or a timeout (retried with backoff)")
            .With({}),
        r.AddCounter("relay_outbox_parked_total",
                     "Rows the broker refused alone, moved to outbox_parked")
            .With({}),
    };
  }();
  return *m;
}

// The outbox's depth and the age of its oldest row, read at scrape time.
void CollectOutbox(Database* db, metrics::Collection& c) {
  int64_t rows = 0;
  int64_t oldest_us = 0;
  absl::Status s = db->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> q = tx.Prepare("SELECT count(*), min(created_us) FROM outbox");
    if (!q.ok()) return q.status();
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      rows = q->ColumnInt64(0);
      oldest_us = q->ColumnIsNull(1) ? 0 : q->ColumnInt64(1);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return;  // nothing reported rather than a wrong value
  c.Gauge("relay_outbox_rows", "Events committed and not yet acknowledged by the broker", {},
          static_cast<double>(rows));
  const double age =
      rows == 0
          ? 0
          : std::max(0.0, absl::ToDoubleSeconds(absl::Now() - absl::FromUnixMicros(oldest_us)));
  c.Gauge("relay_outbox_oldest_row_age_seconds",
          "How long the oldest outbox row has waited for the broker (0: empty)", {}, age);
}

// A batch goes in one request (Publisher::PublishBatch), which the publisher
// refuses whole beyond its max_pending_events: never read more rows than it
// takes, or every batch would be refused forever.
OutboxRelay::Options FitToPublisher(OutboxRelay::Options options,
                                    const relay::events::Publisher& publisher) {
  options.batch_size = std::clamp<size_t>(
      options.batch_size, 1, std::max<size_t>(1, publisher.options().max_pending_events));
  return options;
}

}  // namespace

OutboxRelay::OutboxRelay(Database* db, relay::events::Publisher* publisher, Options options)
    : db_(db),
      publisher_(publisher),
      options_(FitToPublisher(options, *publisher)),
      backoff_(options_.min_backoff, options_.max_backoff),
      worker_("outbox-relay", [this] { return Pass(); }) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Start() {
  {
    absl::MutexLock stop_lock(&stop_mu_);
    if (collector_ < 0) {
      Database* db = db_;
      collector_ = metrics::Registry::Default().AddCollector(
          [db](metrics::Collection& c) { CollectOutbox(db, c); });
    }
  }
  {
    absl::MutexLock lock(&mu_);
    running_ = true;
  }
  worker_.Start();  // the first pass publishes what an earlier run left
}

void OutboxRelay::Wake() { worker_.Wake(); }

absl::Status OutboxRelay::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!running_) return absl::FailedPreconditionError("outbox relay is not running");
  const uint64_t mine = ++flush_seq_;
  worker_.Wake();
  auto done = [this, mine] {
    mu_.AssertHeld();
    return drained_seq_ >= mine || !running_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  if (drained_seq_ >= mine) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(
      "outbox not empty after ", absl::FormatDuration(timeout),
      stats_.last_error.empty() ? "" : absl::StrCat(" (last error: ", stats_.last_error, ")")));
}

void OutboxRelay::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (collector_ >= 0) {
    metrics::Registry::Default().RemoveCollector(collector_);
    collector_ = -1;
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = absl::Now() + options_.stop_grace;
    if (!running_) {
      // Never started: no pass may begin from now on.
      worker_.Stop();
      return;
    }
  }
  worker_.Wake();
  {
    // The passes go on until the table is empty or stop_grace is over.
    absl::MutexLock lock(&mu_);
    auto finished = [this] {
      mu_.AssertHeld();
      return !running_;
    };
    mu_.Await(absl::Condition(&finished));
  }
  worker_.Stop();
  absl::StatusOr<int64_t> left = Pending();
  if (left.ok() && *left > 0) {
    RELAY_LOG(
        Warn, "outbox not empty at shutdown; published at next start",
        {{"db", db_->path()}, {"events", absl::StrCat(*left)}, {"error", stats().last_error}});
  }
}

OutboxRelay::Stats OutboxRelay::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<int64_t> OutboxRelay::Pending() {
  int64_t count = 0;
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<int64_t> n = Outbox::Count(tx);
    if (!n.ok()) return n.status();
    count = *n;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return count;
}

absl::Time OutboxRelay::Deadline(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  absl::Time deadline = absl::Now() + d;
  return stopping_ ? std::min(deadline, stop_deadline_) : deadline;
}

bool OutboxRelay::StopDeadlinePassed() {
  absl::MutexLock lock(&mu_);
  return stopping_ && absl::Now() >= stop_deadline_;
}

absl::Duration OutboxRelay::Pass() {
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return absl::InfiniteDuration();  // stopped: Stop() joins us
  }
  if (StopDeadlinePassed()) return Finish();
  absl::Status s = Drain();
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (s.ok()) {
      stats_.last_error.clear();
    } else {
      ++stats_.failures;
      GetRelayMetrics().failed_passes.Add();
      stats_.last_error = s.ToString();
    }
  }
  if (s.ok()) {
    if (failing_) RELAY_LOG(Info, "outbox relay publishing again", {{"db", db_->path()}});
    failing_ = false;
    if (stopping) return Finish();
    backoff_.Reset();
    return options_.poll_interval;
  }
  if (!failing_) {
    RELAY_LOG(Warn, "outbox relay cannot publish; rows stay in the outbox",
              {{"db", db_->path()}, {"error", s.ToString()}});
  }
  failing_ = true;
  // DEADLINE_EXCEEDED: the publisher still holds the batch and retries it,
  // so go on waiting for it at once.
  absl::Duration wait =
      s.code() == absl::StatusCode::kDeadlineExceeded ? absl::ZeroDuration() : backoff_.Next();
  absl::MutexLock lock(&mu_);
  if (stopping_) wait = std::min(wait, stop_deadline_ - absl::Now());
  return wait;
}

absl::Duration OutboxRelay::Finish() {
  absl::MutexLock lock(&mu_);
  running_ = false;  // Flush() and Stop() stop waiting
  return absl::InfiniteDuration();
}

absl::Status OutboxRelay::Drain() {
  while (true) {
    if (!sent_.empty()) {
      if (absl::Status s = Settle(); !s.ok()) return s;
    }
    if (StopDeadlinePassed()) {
      return absl::DeadlineExceededError("outbox relay stopping: grace period over");
    }
    uint64_t flush_seq;
    {
      absl::MutexLock lock(&mu_);
      flush_seq = flush_seq_;
    }
    if (!suspects_.empty()) {
      // A refused batch: its rows go one at a time, so that only an
      // invalid one is refused (and parked by Settle()).
      const int64_t seq = suspects_.front();
      suspects_.pop_front();
      absl::StatusOr<std::vector<Row>> row = ReadRow(seq);
      if (!row.ok()) {
        suspects_.push_front(seq);
        return row.status();
      }
      if (absl::Status s = Send(*row); !s.ok()) return s;
      isolating_ = !sent_.empty();
      continue;
    }
    absl::StatusOr<std::vector<Row>> rows = ReadBatch();
    if (!rows.ok()) return rows.status();
    if (rows->empty()) {
      absl::MutexLock lock(&mu_);
      // In the same critical section as releasing Flush(): a caller that
      // sees Flush() succeed sees no stale error either.
      stats_.last_error.clear();
      drained_seq_ = std::max(drained_seq_, flush_seq);
      return absl::OkStatus();
    }
    if (absl::Status s = Send(*rows); !s.ok()) return s;
  }
}

absl::Status OutboxRelay::Send(std::vector<Row>& rows) {
  std::vector<int64_t> unreadable;
  std::vector<Event> events;
  const size_t first = sent_.size();
  for (Row& row : rows) {
    Event event;
    if (!event.ParseFromString(row.event)) {
      // Never written by Outbox::Add; no retry can publish it.
      RELAY_LOG(Error, "dropping an outbox row that does not parse as an event",
                {{"db", db_->path()}, {"seq", absl::StrCat(row.seq)}, {"topic", row.topic}});
      unreadable.push_back(row.seq);
      continue;
    }
    sent_.push_back(Sent{row.seq, row.topic, event.id(), event.type(), {}});
    events.push_back(std::move(event));
  }
  // One request for the batch (ReadBatch() gave one topic), stored whole or
  // refused whole: were it split, a later request could be stored while an
  // earlier one was refused, and its rows published again after them.
  if (!events.empty()) {
    std::vector<std::future<absl::StatusOr<uint64_t>>> offsets =
        publisher_->PublishBatch(sent_[first].topic, std::move(events));
    for (size_t i = 0; i < offsets.size(); ++i) sent_[first + i].offset = std::move(offsets[i]);
  }
  if (unreadable.empty()) return absl::OkStatus();
  return Delete(unreadable);
}

absl::Status OutboxRelay::Settle() {
  const absl::Time deadline = Deadline(options_.publish_timeout);
  size_t resolved = 0;
  for (Sent& sent : sent_) {
    while (true) {
      absl::Time slice = std::min(deadline, absl::Now() + kStopCheck);
      if (sent.offset.wait_until(absl::ToChronoTime(slice)) == std::future_status::ready) break;
      if (absl::Now() >= deadline || StopDeadlinePassed()) {
        return absl::DeadlineExceededError(
            absl::StrCat("broker has not acknowledged ", sent_.size() - resolved, " of ",
                         sent_.size(), " published outbox events yet"));
      }
    }
    ++resolved;
  }
  std::vector<int64_t> acked;
  absl::Status error;
  const bool isolating = isolating_;
  isolating_ = false;
  std::vector<int64_t> refused;
  for (Sent& sent : sent_) {
    absl::StatusOr<uint64_t> offset = sent.offset.get();
    if (offset.ok()) {
      acked.push_back(sent.seq);
      continue;
    }
    if (offset.status().code() == absl::StatusCode::kInvalidArgument) {
      if (isolating) {
        // Refused alone: no retry can publish it. Out of the way it goes.
        if (absl::Status s = Park(sent, offset.status()); !s.ok()) {
          suspects_.push_front(sent.seq);
          if (error.ok()) error = s;
        }
      } else {
        refused.push_back(sent.seq);
      }
      continue;
    }
    // Not the row's fault (broker away, closing): it stays for a retry, and
    // if it was being isolated, it is first in line again.
    if (isolating) suspects_.push_front(sent.seq);
    if (error.ok()) {
      error = absl::Status(offset.status().code(), absl::StrCat("publishing outbox row ", sent.seq,
                                                                ": ", offset.status().message()));
    }
  }
  sent_.clear();
  if (!refused.empty()) {
    RELAY_LOG(Warn, "broker refused an outbox batch as invalid; publishing its rows one at a time",
              {{"db", db_->path()},
               {"rows", absl::StrCat(refused.size())},
               {"first_seq", absl::StrCat(refused.front())}});
    // In seq order; suspects_ is empty here (a normal batch is only read
    // once every suspect is settled).
    suspects_.insert(suspects_.end(), refused.begin(), refused.end());
  }
  if (!acked.empty()) {
    // A failure here leaves the rows to be published again: the broker
    // drops the duplicates.
    if (absl::Status s = Delete(acked); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    stats_.published += acked.size();
    GetRelayMetrics().published.Add(acked.size());
  }
  return error;
}

absl::StatusOr<std::vector<OutboxRelay::Row>> OutboxRelay::ReadBatch() {
  std::vector<Row> rows;
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> select =
        tx.Prepare("SELECT seq, topic, event FROM outbox ORDER BY seq LIMIT ?");
    if (!select.ok()) return select.status();
    if (absl::Status s = select->BindInt64(1, static_cast<int64_t>(options_.batch_size)); !s.ok()) {
      return s;
    }
    size_t bytes = 0;
    while (bytes < options_.batch_bytes) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      // One topic per batch: it goes out as one publish request.
      if (!rows.empty() && select->ColumnText(1) != rows.front().topic) return absl::OkStatus();
      rows.push_back(Row{select->ColumnInt64(0), select->ColumnText(1), select->ColumnBlob(2)});
      bytes += rows.back().event.size();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!rows.empty()) {
    absl::MutexLock lock(&mu_);
    ++stats_.batches;
  }
  return rows;
}

absl::StatusOr<std::vector<OutboxRelay::Row>> OutboxRelay::ReadRow(int64_t seq) {
  std::vector<Row> rows;
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> select =
        tx.Prepare("SELECT seq, topic, event FROM outbox WHERE seq = ?");
    if (!select.ok()) return select.status();
    if (absl::Status s = select->BindInt64(1, seq); !s.ok()) return s;
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      rows.push_back(Row{select->ColumnInt64(0), select->ColumnText(1), select->ColumnBlob(2)});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return rows;
}

absl::Status OutboxRelay::Park(const Sent& sent, const absl::Status& error) {
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> move = tx.Prepare(
        "INSERT INTO outbox_parked (seq, topic, event, created_us, parked_us, error) "
        "SELECT seq, topic, event, created_us, ?, ? FROM outbox WHERE seq = ?");
    if (!move.ok()) return move.status();
    absl::Status b = move->BindInt64(1, absl::ToUnixMicros(absl::Now()));
    if (b.ok()) b = move->BindText(2, error.ToString());
    if (b.ok()) b = move->BindInt64(3, sent.seq);
    if (!b.ok()) return b;
    if (absl::Status r = move->Run(); !r.ok()) return r;
    absl::StatusOr<Statement> remove = tx.Prepare("DELETE FROM outbox WHERE seq = ?");
    if (!remove.ok()) return remove.status();
    if (absl::Status r = remove->BindInt64(1, sent.seq); !r.ok()) return r;
    return remove->Run();
  });
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("parking outbox row ", sent.seq, ": ", s.message()));
  }
  uint64_t parked;
  {
    absl::MutexLock lock(&mu_);
    parked = ++stats_.parked;
    GetRelayMetrics().parked.Add();
  }
  RELAY_LOG(Error, "outbox event parked: the broker refuses it; the rows behind it go on",
            {{"db", db_->path()},
             {"seq", absl::StrCat(sent.seq)},
             {"topic", sent.topic},
             {"type", sent.type},
             {"event", sent.event_id},
             {"error", error.ToString()},
             {"parked_total", absl::StrCat(parked)}});
  return absl::OkStatus();
}

absl::Status OutboxRelay::Delete(const std::vector<int64_t>& seqs) {
  return db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> remove = tx.Prepare("DELETE FROM outbox WHERE seq = ?");
    if (!remove.ok()) return remove.status();
    for (int64_t seq : seqs) {
      remove->Reset();
      if (absl::Status s = remove->BindInt64(1, seq); !s.ok()) return s;
      if (absl::Status s = remove->Run(); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

}  // namespace relay::store
