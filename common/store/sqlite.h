#ifndef RELAY_COMMON_STORE_SQLITE_H_
#define RELAY_COMMON_STORE_SQLITE_H_

// A small RAII wrapper over one SQLite connection: open with the pragmas a
// service store wants (WAL, synchronous=FULL, busy timeout, foreign keys),
// transactions as callbacks, prepared statements with typed helpers, and
// schema migrations by PRAGMA user_version. Errors are absl::Status values
// carrying SQLite's message.
//
//   auto db = Database::Open("/data/orders.db", {});
//   if (!db.ok()) return db.status();
//   if (absl::Status s = (*db)->Migrate(steps); !s.ok()) return s;
//   absl::Status s = (*db)->Transaction([&](Tx& tx) -> absl::Status {
//     auto insert = tx.Prepare("INSERT INTO orders(id, total) VALUES (?, ?)");
//     if (!insert.ok()) return insert.status();
//     if (auto s = insert->BindText(1, id); !s.ok()) return s;
//     if (auto s = insert->BindInt64(2, total); !s.ok()) return s;
//     return insert->Run();
//   });

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace relay::store {

class Database;

// A prepared statement. Bind parameters (1-based, as in SQL's `?`), then
// Step() through the rows, reading columns (0-based) while a row is current.
// Bound text and blobs are copied.
//
// Not thread-safe. REQUIRES: used and destroyed only inside the Tx callback
// that prepared it (the connection is locked only there). Movable.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();  // resets the statement and returns it to its Database's cache

  absl::Status BindInt64(int index, int64_t value);
  absl::Status BindDouble(int index, double value);
  absl::Status BindText(int index, absl::string_view value);
  absl::Status BindBlob(int index, absl::string_view value);
  absl::Status BindNull(int index);

  // Advances to the next row. Returns true when a row is current, false when
  // the statement is done, or the SQL error.
  absl::StatusOr<bool> Step();
  // Steps to completion, for statements that return no rows (INSERT, ...).
  // A row in the result is an error (INTERNAL).
  absl::Status Run();
  // Rewinds so the statement can run again and clears the bindings.
  void Reset();

  // Columns of the current row. REQUIRES: the last Step() returned true and
  // 0 <= col < column_count(). NULL reads as 0 / "".
  int column_count() const;
  bool ColumnIsNull(int col) const;
  int64_t ColumnInt64(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;

 private:
  friend class Database;
  friend class Tx;
  Statement(Database* db, std::string sql, sqlite3_stmt* stmt);
  absl::Status BindResult(int index, int rc);
  // Hands the statement back to the cache (or finalizes it); stmt_ = null.
  void Release();

  Database* db_;
  std::string sql_;  // the cache key
  sqlite3_stmt* stmt_;
};

// The locked connection, handed to Database::Transaction() and Read()
// callbacks. Everything done through it is part of the surrounding
// transaction. Not thread-safe; valid only during the callback (do not keep
// it or call it from another thread).
class Tx {
 public:
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

  // Runs one or more ';'-separated statements that return no rows of interest.
  absl::Status Exec(absl::string_view sql);
  // Prepares `sql` (one statement). Statements are cached per Database by
  // their text, so preparing the same SQL again is cheap.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // Runs `fn` inside SAVEPOINT ... RELEASE. When `fn` returns an error, what
  // it changed is rolled back (ROLLBACK TO) and the surrounding transaction
  // goes on; the error is returned. Nests.
  absl::Status Savepoint(const std::function<absl::Status(Tx&)>& fn);

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t changes() const;
  int64_t last_insert_rowid() const;
  // False when SQLite itself rolled the transaction back (e.g. disk full,
  // I/O error); nothing more can be done in it: Exec, Savepoint and every
  // statement then fail with ABORTED.
  bool in_transaction() const;

 private:
  friend class Database;
  explicit Tx(Database* db) : db_(db) {}

  Database* db_;
  int savepoint_depth_ = 0;
  // Set when a savepoint could not be rolled back or released: the
  // transaction then rolls back instead of committing.
  absl::Status broken_;
};

// One SQLite connection to one database file.
//
// Thread-safe: every operation locks the connection for its duration, so
// transactions from several threads run one after another (SQLite has one
// writer anyway). Transaction() commits in groups: the calls that arrive
// while a commit is under way wait for it, and the first of them then runs
// all their callbacks in one transaction, each in its own savepoint, with
// one COMMIT (one fsync) for all. REQUIRES: no call on the same Database
// from inside a Transaction()/Read() callback (it would deadlock); use the
// Tx instead.
class Database {
 public:
  struct Options {
    // synchronous=FULL (fsync on every commit) survives power loss; NORMAL
    // in WAL mode may lose the last commits on power loss but never corrupts.
    enum class Sync { kFull, kNormal };
    Sync synchronous = Sync::kFull;
    // How long a statement waits for a lock held by another connection
    // (e.g. the sqlite3 shell) before failing with UNAVAILABLE.
    absl::Duration busy_timeout = absl::Seconds(5);
    // Create the file when it does not exist (else NOT_FOUND).
    bool create_if_missing = true;
  };

  // Opens (or creates) the database at `path` (":memory:" for a private
  // in-memory one) in WAL mode with foreign keys on. A file that is not a
  // database, is corrupt or cannot be opened gives an error that names
  // `path` (DATA_LOSS for a damaged file), never a crash.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, Options options);
  ~Database();  // finalizes cached statements and closes the connection

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs `sql` (one or more statements) outside any explicit transaction.
  absl::Status Exec(absl::string_view sql);

  // Runs `fn` in BEGIN IMMEDIATE ... COMMIT and returns once that commit is
  // durable. When `fn` returns an error, what it did is rolled back and that
  // error is returned; when the commit fails, that error.
  //
  // Group commit: calls that queue up while a group runs (or waits for the
  // connection) share the next transaction (at most kMaxGroup of them, in
  // arrival order), each `fn` in its own SAVEPOINT (none for a group of
  // one), so a failing `fn` rolls back alone and the others commit. `fn`
  // may then run on another caller's thread; the caller waits until it has
  // run and committed. When an `fn` leaves the shared transaction unusable
  // (SQLite rolled it back, e.g. disk full), the calls whose `fn` already
  // ran in it fail with that error and the rest run in a new transaction. A
  // failed COMMIT fails the whole group. REQUIRES: `fn` does not throw.
  absl::Status Transaction(const std::function<absl::Status(Tx&)>& fn);

  // Transaction() calls in one group at most.
  static constexpr size_t kMaxGroup = 64;

  struct Stats {
    uint64_t transactions = 0;  // Transaction() calls run
    // COMMITs that succeeded. transactions / commits is about the mean group
    // size (a call whose `fn` fails alone takes no COMMIT).
    uint64_t commits = 0;
    size_t queued = 0;          // calls waiting for a group to take them, now
  };
  Stats stats() const;

  // Runs `fn` in a read transaction (BEGIN DEFERRED): a consistent snapshot
  // that does not take the write lock. It runs on the one connection, so it
  // waits for a Transaction() in progress: a reader told of a change from
  // inside the transaction that makes it (the watch hub) reads it back
  // committed, or not at all. REQUIRES: `fn` only reads.
  absl::Status Read(const std::function<absl::Status(Tx&)>& fn);

  // Brings the schema up to date: step i (0-based) runs when the stored
  // PRAGMA user_version is <= i; all pending steps and the new user_version
  // commit in one transaction, so each step is applied exactly once. Steps
  // are append-only: never edit or reorder a released step. A database whose
  // version is above steps.size() (written by a newer binary) gives
  // FAILED_PRECONDITION.
  absl::Status Migrate(const std::vector<std::string>& steps);

  // PRAGMA user_version: how many migration steps are applied.
  absl::StatusOr<int64_t> UserVersion();

  const std::string& path() const { return path_; }

 private:
  friend class Statement;
  friend class Tx;

  Database(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  // ABORTED while a Transaction() or Read() transaction is under way and
  // SQLite has rolled it back (disk full, an I/O error): a statement run
  // then would commit on its own, outside it. Called by the thread holding
  // the connection (Tx::Exec, Statement::Step).
  absl::Status CheckCallbackTxOpen() const;
  // The status for SQLite result `rc` of `what` (the message says both).
  absl::Status Error(int rc, absl::string_view what) const;
  absl::Status ExecLocked(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `sql` (one statement) from the statement cache, prepared on first use.
  absl::StatusOr<Statement> PrepareLocked(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `sql` (one statement that returns no rows) as a cached prepared
  // statement: BEGIN, COMMIT, ROLLBACK and the savepoints run for every
  // transaction, and sqlite3_exec would parse them each time.
  absl::Status RunLocked(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RunInTransaction(absl::string_view begin, const std::function<absl::Status(Tx&)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a failed transaction unless SQLite already did.
  void RollbackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A Transaction() call waiting for its group's commit.
  struct Queued {
    const std::function<absl::Status(Tx&)>* fn = nullptr;
    absl::Status status;
    bool done = false;
  };
  // Runs `group` (in arrival order) in as few transactions as it takes and
  // sets each one's status; marks none done. Returns the COMMITs that
  // succeeded.
  uint64_t RunGroupLocked(const std::vector<Queued*>& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  // From a Transaction()'s or Read()'s BEGIN to its end (see
  // CheckCallbackTxOpen()). Touched only by the thread holding mu_.
  bool callback_in_tx_ = false;
  absl::Mutex mu_;
  sqlite3* const db_;  // guarded by mu_ (every use holds it)
  // Prepared statements not in use, by SQL text.
  absl::flat_hash_map<std::string, sqlite3_stmt*> cache_ ABSL_GUARDED_BY(mu_);

  // Group commit. Lock order: mu_ -> queue_mu_ (the leader takes its group
  // with the connection held); queue_mu_ is never held while taking mu_ or
  // running a callback.
  mutable absl::Mutex queue_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::deque<Queued*> queue_ ABSL_GUARDED_BY(queue_mu_);  // not yet taken by a leader
  bool leading_ ABSL_GUARDED_BY(queue_mu_) = false;       // a caller is running a group
  Stats stats_ ABSL_GUARDED_BY(queue_mu_);
};

}  // namespace relay::store

#endif  // RELAY_COMMON_STORE_SQLITE_H_
