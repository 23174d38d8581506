#include "common/store/sqlite.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace relay::store {
namespace {

// Prepared statements kept per connection; beyond it they are finalized
// (a guard against SQL built at run time filling the cache).
constexpr size_t kMaxCachedStatements = 64;

absl::StatusCode CodeFor(int rc, int system_errno) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
      return (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
                 ? absl::StatusCode::kAlreadyExists
                 : absl::StatusCode::kFailedPrecondition;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CANTOPEN:
      if (system_errno == ENOENT) return absl::StatusCode::kNotFound;
      if (system_errno == EACCES || system_errno == EPERM) {
        return absl::StatusCode::kPermissionDenied;
      }
      return absl::StatusCode::kUnavailable;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_INTERRUPT:
    case SQLITE_ABORT:
      return absl::StatusCode::kAborted;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

// SQL for messages: one line, at most 120 characters.
std::string Abbrev(absl::string_view sql) {
  std::string out(absl::StripAsciiWhitespace(sql));
  for (char& c : out) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  if (out.size() > 120) out = absl::StrCat(out.substr(0, 117), "...");
  return out;
}

absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

}  // namespace

// ---------------------------------------------------------------- Statement

Statement::Statement(Database* db, std::string sql, sqlite3_stmt* stmt)
    : db_(db), sql_(std::move(sql)), stmt_(stmt) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), sql_(std::move(other.sql_)), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    db_ = other.db_;
    sql_ = std::move(other.sql_);
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (stmt_ == nullptr) return;
  // The connection is locked by the Tx callback this statement lives in.
  db_->mu_.AssertHeld();
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (db_->cache_.size() < kMaxCachedStatements && db_->cache_.emplace(sql_, stmt_).second) {
    stmt_ = nullptr;
    return;
  }
  sqlite3_finalize(stmt_);
  stmt_ = nullptr;
}

absl::Status Statement::BindResult(int index, int rc) {
  if (rc == SQLITE_OK) return absl::OkStatus();
  return db_->Error(rc, absl::StrCat("bind parameter ", index, " of `", Abbrev(sql_), "`"));
}

absl::Status Statement::BindInt64(int index, int64_t value) {
  return BindResult(index, sqlite3_bind_int64(stmt_, index, value));
}

absl::Status Statement::BindDouble(int index, double value) {
  return BindResult(index, sqlite3_bind_double(stmt_, index, value));
}

absl::Status Statement::BindText(int index, absl::string_view value) {
  // A null pointer would bind NULL: an empty string must stay a string.
  const char* data = value.data() != nullptr ? value.data() : "";
  return BindResult(
      index, sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

absl::Status Statement::BindBlob(int index, absl::string_view value) {
  const char* data = value.data() != nullptr ? value.data() : "";
  return BindResult(index, sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT));
}

absl::Status Statement::BindNull(int index) {
  return BindResult(index, sqlite3_bind_null(stmt_, index));
}

absl::StatusOr<bool> Statement::Step() {
  if (absl::Status s = db_->CheckCallbackTxOpen(); !s.ok()) return s;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, absl::StrCat("`", Abbrev(sql_), "`"));
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  if (*row) {
    return absl::InternalError(
        absl::StrCat(db_->path(), ": `", Abbrev(sql_), "` returned rows where none were expected"));
  }
  return absl::OkStatus();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int Statement::column_count() const { return sqlite3_column_count(stmt_); }

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

int64_t Statement::ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }

double Statement::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Statement::ColumnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);  // after the conversion above
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::string Statement::ColumnBlob(int col) const {
  const void* blob = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);
  if (blob == nullptr) return std::string();
  return std::string(static_cast<const char*>(blob), static_cast<size_t>(size));
}

// ----------------------------------------------------------------------- Tx

absl::Status Tx::Exec(absl::string_view sql) {
  db_->mu_.AssertHeld();  // a Tx exists only inside Transaction()/Read(), which hold it
  if (absl::Status s = db_->CheckCallbackTxOpen(); !s.ok()) return s;
  return db_->ExecLocked(sql);
}

absl::StatusOr<Statement> Tx::Prepare(absl::string_view sql) {
  db_->mu_.AssertHeld();
  return db_->PrepareLocked(sql);  // Step() refuses to run it once the transaction is gone
}

absl::Status Tx::Savepoint(const std::function<absl::Status(Tx&)>& fn) {
  db_->mu_.AssertHeld();
  const std::string name = absl::StrCat("relay_sp", savepoint_depth_);
  if (absl::Status s = db_->RunLocked(absl::StrCat("SAVEPOINT ", name)); !s.ok()) return s;
  ++savepoint_depth_;
  absl::Status result = fn(*this);
  --savepoint_depth_;
  if (result.ok()) {
    absl::Status s = db_->RunLocked(absl::StrCat("RELEASE ", name));
    if (!s.ok()) broken_ = s;
    return s;
  }
  if (!in_transaction()) return result;  // SQLite rolled everything back already
  absl::Status s = db_->RunLocked(absl::StrCat("ROLLBACK TO ", name));
  if (s.ok()) s = db_->RunLocked(absl::StrCat("RELEASE ", name));
  if (!s.ok()) {
    // What `fn` did may be half there: the whole transaction must not commit.
    broken_ =
        Annotate(s, absl::StrCat("rolling back a savepoint after \"", result.message(), "\""));
  }
  return result;
}

int64_t Tx::changes() const { return sqlite3_changes64(db_->db_); }

int64_t Tx::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_->db_); }

bool Tx::in_transaction() const { return sqlite3_get_autocommit(db_->db_) == 0; }

// ----------------------------------------------------------------- Database

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, Options options) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  if (options.create_if_missing) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    int sys = raw != nullptr ? sqlite3_system_errno(raw) : 0;
    std::string message = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close_v2(raw);
    return absl::Status(CodeFor(rc, sys),
                        absl::StrCat("cannot open database ", path, ": ", message));
  }
  std::unique_ptr<Database> db(new Database(path, raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));

  absl::MutexLock lock(&db->mu_);
  // The first statements read the file header and the schema: a file that
  // is not a database, or is damaged, fails here with NOTADB or CORRUPT.
  absl::Status s = db->RunInTransaction("BEGIN DEFERRED", [](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> check = tx.Prepare("SELECT count(*) FROM sqlite_schema");
    if (!check.ok()) return check.status();
    return check->Step().status();
  });
  std::string journal_mode;
  if (s.ok()) {
    s = db->RunInTransaction("", [&](Tx& tx) -> absl::Status {
      absl::StatusOr<Statement> pragma = tx.Prepare("PRAGMA journal_mode=WAL");
      if (!pragma.ok()) return pragma.status();
      absl::StatusOr<bool> row = pragma->Step();
      if (!row.ok()) return row.status();
      if (*row) journal_mode = absl::AsciiStrToLower(pragma->ColumnText(0));
      return absl::OkStatus();
    });
  }
  if (s.ok() && journal_mode != "wal" && journal_mode != "memory") {
    s = absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot switch to WAL mode (journal_mode is '", journal_mode, "')"));
  }
  if (s.ok()) {
    s = db->ExecLocked(absl::StrCat(
        "PRAGMA synchronous=", options.synchronous == Options::Sync::kFull ? "FULL" : "NORMAL",
        "; PRAGMA foreign_keys=ON",
        // The statement journal (the pages a savepoint may roll back to) in
        // memory, not a temp file past 64 KiB: each event and order runs in
        // its own savepoint, and a file journal cost a write(2) of every
        // page a savepoint touched (6x the WAL's bytes in order-service).
        // In memory it is emptied at each outermost RELEASE, so it holds
        // one Transaction() call's pages at most (a group's callbacks each
        // run in a savepoint of their own directly under BEGIN;
        // docs/ARCHITECTURE.md#group-commit-twice).
        "; PRAGMA temp_store=MEMORY"));
  }
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("cannot open database ", s.message()));
  }
  return db;
}

Database::~Database() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  cache_.clear();
  int rc = sqlite3_close_v2(db_);
  if (rc != SQLITE_OK) {
    RELAY_LOG(Error, "closing a database failed", {{"path", path_}, {"error", sqlite3_errstr(rc)}});
  }
}

absl::Status Database::Error(int rc, absl::string_view what) const {
  return absl::Status(CodeFor(rc, sqlite3_system_errno(db_)),
                      absl::StrCat(path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

absl::StatusOr<Statement> Database::PrepareLocked(absl::string_view sql) {
  std::string key(sql);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    sqlite3_stmt* stmt = it->second;
    cache_.erase(it);
    return Statement(this, std::move(key), stmt);
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Error(rc, absl::StrCat("prepare `", Abbrev(sql), "`"));
  }
  if (stmt == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": prepare: no SQL statement in `", Abbrev(sql), "`"));
  }
  if (tail != nullptr &&
      !absl::StripAsciiWhitespace(absl::string_view(tail, key.data() + key.size() - tail))
           .empty()) {
    sqlite3_finalize(stmt);
    return absl::InvalidArgumentError(absl::StrCat(path_, ": prepare: more than one statement in `",
                                                   Abbrev(sql), "` (use Exec)"));
  }
  return Statement(this, std::move(key), stmt);
}

absl::Status Database::RunLocked(absl::string_view sql) {
  absl::StatusOr<Statement> statement = PrepareLocked(sql);
  if (!statement.ok()) return statement.status();
  return statement->Run();
}

absl::Status Database::ExecLocked(absl::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status s(CodeFor(rc, sqlite3_system_errno(db_)),
                 absl::StrCat(path_, ": `", Abbrev(sql),
                              "`: ", message != nullptr ? message : sqlite3_errstr(rc)));
  sqlite3_free(message);
  return s;
}

absl::Status Database::CheckCallbackTxOpen() const {
  if (!callback_in_tx_ || sqlite3_get_autocommit(db_) == 0) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      path_, ": SQLite rolled the transaction back after an earlier error; nothing more runs in "
             "it (outside it, each statement would commit on its own)"));
}

void Database::RollbackLocked() {
  if (sqlite3_get_autocommit(db_) != 0) return;  // SQLite ended it already
  absl::Status s = RunLocked("ROLLBACK");
  if (!s.ok()) RELAY_LOG(Error, "rollback failed", {{"path", path_}, {"error", s.ToString()}});
}

absl::Status Database::RunInTransaction(absl::string_view begin,
                                        const std::function<absl::Status(Tx&)>& fn) {
  if (!begin.empty()) {
    if (absl::Status s = RunLocked(begin); !s.ok()) return s;
  }
  // Rolls back however `fn` leaves (an error, or an exception unwinding).
  struct Guard {
    Database* db;
    bool armed = true;
    ~Guard() {
      db->callback_in_tx_ = false;
      if (armed) db->RollbackLocked();
    }
  } guard{this};
  Tx tx(this);
  callback_in_tx_ = !begin.empty();  // until the guard goes, COMMIT included
  absl::Status s = fn(tx);
  if (!s.ok()) return s;
  if (!tx.broken_.ok()) return tx.broken_;
  if (begin.empty()) {
    guard.armed = false;
    return absl::OkStatus();
  }
  s = RunLocked("COMMIT");
  if (!s.ok()) return s;
  guard.armed = false;
  return absl::OkStatus();
}

absl::Status Database::Exec(absl::string_view sql) {
  absl::MutexLock lock(&mu_);
  return ExecLocked(sql);
}

absl::Status Database::Transaction(const std::function<absl::Status(Tx&)>& fn) {
  mu_.AssertNotHeld();  // from inside a callback it would wait for itself
  Queued me;
  me.fn = &fn;
  absl::MutexLock lock(&queue_mu_);
  queue_.push_back(&me);
  auto my_turn = [this, &me] {
    queue_mu_.AssertHeld();
    return me.done || !leading_;
  };
  while (true) {
    queue_mu_.Await(absl::Condition(&my_turn));
    if (me.done) return me.status;
    // Nobody runs a group: lead the next one. It is taken once the
    // connection is ours, so what queued while a Read() or Exec() held it
    // comes along; this call is in it unless more than kMaxGroup came
    // before it (then it leads again after).
    leading_ = true;
    queue_mu_.Unlock();
    uint64_t commits = 0;
    std::vector<Queued*> group;
    {
      absl::MutexLock connection(&mu_);
      {
        absl::MutexLock queue(&queue_mu_);
        const size_t n = std::min(queue_.size(), kMaxGroup);
        group.assign(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
      }
      commits = RunGroupLocked(group);
    }
    queue_mu_.Lock();
    stats_.transactions += group.size();
    stats_.commits += commits;
    for (Queued* q : group) q->done = true;
    leading_ = false;
  }
}

uint64_t Database::RunGroupLocked(const std::vector<Queued*>& group) {
  if (group.size() == 1) {
    // Alone: no savepoint (and no statement journal) needed.
    group[0]->status = RunInTransaction("BEGIN IMMEDIATE", *group[0]->fn);
    return group[0]->status.ok() ? 1 : 0;
  }
  uint64_t commits = 0;
  size_t next = 0;
  while (next < group.size()) {
    const size_t first = next;
    absl::Status s = RunInTransaction("BEGIN IMMEDIATE", [&](Tx& tx) -> absl::Status {
      while (next < group.size()) {
        Queued* q = group[next++];
        q->status = tx.Savepoint(*q->fn);
        if (!tx.broken_.ok()) return tx.broken_;
        if (!tx.in_transaction()) {
          // SQLite rolled the whole transaction back (disk full, I/O
          // error): what ran in it so far is undone.
          return q->status.ok() ? absl::InternalError("the transaction ended unexpectedly")
                                : q->status;
        }
      }
      return absl::OkStatus();
    });
    if (s.ok()) {
      ++commits;
      continue;
    }
    // Nothing of [first, next) committed: an `fn` that succeeded gets the
    // reason; one that failed keeps its own error. [next, end) runs in a
    // new transaction, or fails alike when not even BEGIN worked.
    const bool begun = next > first;
    for (size_t i = first; i < (begun ? next : group.size()); ++i) {
      if (group[i]->status.ok()) group[i]->status = s;
    }
    if (!begun) break;
  }
  return commits;
}

Database::Stats Database::stats() const {
  absl::MutexLock lock(&queue_mu_);
  Stats stats = stats_;
  stats.queued = queue_.size();
  return stats;
}

absl::Status Database::Read(const std::function<absl::Status(Tx&)>& fn) {
  absl::MutexLock lock(&mu_);
  return RunInTransaction("BEGIN DEFERRED", fn);
}

absl::StatusOr<int64_t> Database::UserVersion() {
  int64_t version = 0;
  absl::Status s = Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> pragma = tx.Prepare("PRAGMA user_version");
    if (!pragma.ok()) return pragma.status();
    absl::StatusOr<bool> row = pragma->Step();
    if (!row.ok()) return row.status();
    if (*row) version = pragma->ColumnInt64(0);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return version;
}

absl::Status Database::Migrate(const std::vector<std::string>& steps) {
  absl::MutexLock lock(&mu_);
  return RunInTransaction("BEGIN IMMEDIATE", [&](Tx& tx) -> absl::Status {
    int64_t version = 0;
    {
      absl::StatusOr<Statement> pragma = tx.Prepare("PRAGMA user_version");
      if (!pragma.ok()) return pragma.status();
      absl::StatusOr<bool> row = pragma->Step();
      if (!row.ok()) return row.status();
      if (*row) version = pragma->ColumnInt64(0);
    }
    const int64_t target = static_cast<int64_t>(steps.size());
    if (version > target) {
      return absl::FailedPreconditionError(absl::StrCat(path_, ": schema version ", version,
                                                        " is newer than this binary's ", target,
                                                        " migration steps"));
    }
    if (version == target) return absl::OkStatus();
    for (int64_t i = version; i < target; ++i) {
      if (absl::Status s = tx.Exec(steps[static_cast<size_t>(i)]); !s.ok()) {
        return Annotate(s, absl::StrCat("migration step ", i));
      }
    }
    // user_version lives in the file header and commits with the steps.
    return tx.Exec(absl::StrCat("PRAGMA user_version = ", target));
  });
}

}  // namespace relay::store
