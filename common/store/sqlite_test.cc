#include "common/store/sqlite.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::store {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::relay::testing::WaitFor;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<Database> OpenOrDie(const std::string& path, Database::Options options = {}) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path, options);
  EXPECT_THAT(db, IsOk());
  return db.ok() ? std::move(*db) : nullptr;
}

// The single integer a query returns.
absl::StatusOr<int64_t> QueryInt(Database& db, const std::string& sql) {
  int64_t value = -1;
  absl::Status s = db.Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> q = tx.Prepare(sql);
    if (!q.ok()) return q.status();
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::NotFoundError("no row");
    value = q->ColumnInt64(0);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return value;
}

std::string QueryText(Database& db, const std::string& sql) {
  std::string value;
  EXPECT_THAT(db.Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> q = tx.Prepare(sql);
    if (!q.ok()) return q.status();
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    if (*row) value = q->ColumnText(0);
    return absl::OkStatus();
  }),
              IsOk());
  return value;
}

absl::Status Insert(Tx& tx, int64_t id, const std::string& name) {
  absl::StatusOr<Statement> insert = tx.Prepare("INSERT INTO t (id, name) VALUES (?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindInt64(1, id); !s.ok()) return s;
  if (absl::Status s = insert->BindText(2, name); !s.ok()) return s;
  return insert->Run();
}

TEST(Database, OpensInWalModeWithForeignKeysAndFullSync) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(QueryText(*db, "PRAGMA journal_mode"), "wal");
  EXPECT_THAT(QueryInt(*db, "PRAGMA foreign_keys"), IsOkAndHolds(1));
  EXPECT_THAT(QueryInt(*db, "PRAGMA synchronous"), IsOkAndHolds(2));  // FULL
}

// Files this process has open under `dir` (a canonical path), deleted or
// not: SQLite unlinks its temp files as soon as it opens them.
int OpenFilesUnder(const std::string& dir) {
  int n = 0;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::filesystem::path target = std::filesystem::read_symlink(fd.path(), ec);
    if (!ec && target.string().rfind(dir + "/", 0) == 0) ++n;
  }
  return n;
}

// Every order and event runs in a savepoint inside a batch transaction;
// SQLite journals each page a savepoint changes. The journal stays in
// memory: with a temp file past 64 KiB it cost a write(2) per page.
TEST(Database, SavepointJournalStaysInMemory) {
  TempDir dir;
  const std::string made = dir.Join("sqlite-tmp");
  ASSERT_EQ(mkdir(made.c_str(), 0700), 0);
  // /proc shows resolved paths.
  const std::string tmp = std::filesystem::canonical(made).string();
  // Where SQLite puts the statement journal's file, for this test only.
  struct TempDirectory {
    char* saved = sqlite3_temp_directory;
    explicit TempDirectory(const std::string& path) {
      sqlite3_temp_directory = sqlite3_mprintf("%s", path.c_str());
    }
    ~TempDirectory() {
      sqlite3_free(sqlite3_temp_directory);
      sqlite3_temp_directory = saved;
    }
  } temp_directory(tmp);
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_NE(db, nullptr);
  EXPECT_THAT(QueryInt(*db, "PRAGMA temp_store"), IsOkAndHolds(2));  // MEMORY
  // About 100 pages of rows, so that rewriting them all in one savepoint
  // journals far more than 64 KiB.
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)"), IsOk());
  ASSERT_THAT(db->Transaction([](Tx& tx) {
    return tx.Exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
        "INSERT INTO t SELECT i, randomblob(1000) FROM n");
  }),
              IsOk());
  // Files open under `tmp` while one savepoint rewrites every row.
  auto files_in_savepoint = [&]() -> int {
    int files = -1;
    EXPECT_THAT(db->Transaction([&](Tx& tx) {
      return tx.Savepoint([&](Tx& sp) {
        absl::Status s = sp.Exec("UPDATE t SET data = randomblob(1000)");
        files = OpenFilesUnder(tmp);
        return s;
      });
    }),
                IsOk());
    return files;
  };
  EXPECT_EQ(files_in_savepoint(), 0);
  // The check sees the file when there is one: SQLite's default spills.
  ASSERT_THAT(db->Exec("PRAGMA temp_store=FILE"), IsOk());
  EXPECT_GE(files_in_savepoint(), 1);
}

TEST(Database, SynchronousNormalWhenAskedFor) {
  TempDir dir;
  Database::Options options;
  options.synchronous = Database::Options::Sync::kNormal;
  auto db = OpenOrDie(dir.Join("a.db"), options);
  ASSERT_NE(db, nullptr);
  EXPECT_THAT(QueryInt(*db, "PRAGMA synchronous"), IsOkAndHolds(1));
}

TEST(Database, TransactionCommitsWhatTheCallbackDid) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  ASSERT_THAT(db->Transaction([](Tx& tx) { return Insert(tx, 1, "one"); }), IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(1));
}

TEST(Database, TransactionRollsBackWhenTheCallbackFails) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  absl::Status s = db->Transaction([](Tx& tx) -> absl::Status {
    if (absl::Status s = Insert(tx, 1, "one"); !s.ok()) return s;
    return absl::FailedPreconditionError("changed my mind");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed my mind")));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(0));
  // The connection is usable afterwards (no transaction left open).
  EXPECT_THAT(db->Transaction([](Tx& tx) { return Insert(tx, 2, "two"); }), IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(1));
}

TEST(Database, SqlErrorsCarrySqlitesMessage) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  EXPECT_THAT(db->Exec("INSERT INTO missing VALUES (1)"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no such table: missing")));
  absl::Status s = db->Transaction([](Tx& tx) { return tx.Prepare("SELEKT 1").status(); });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, HasSubstr("syntax error")));
}

TEST(Database, UniqueViolationIsAlreadyExistsAndRollsBack) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  absl::Status s = db->Transaction([](Tx& tx) -> absl::Status {
    if (absl::Status s = Insert(tx, 1, "one"); !s.ok()) return s;
    return Insert(tx, 1, "again");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("UNIQUE constraint")));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(0));
}

TEST(Database, ForeignKeysAreEnforced) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                       "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))"),
              IsOk());
  EXPECT_THAT(db->Exec("INSERT INTO c VALUES (1, 42)"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("FOREIGN KEY")));
}

TEST(Database, SavepointRollsBackOnlyItself) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  absl::Status inner;
  ASSERT_THAT(db->Transaction([&](Tx& tx) -> absl::Status {
    if (absl::Status s = Insert(tx, 1, "kept"); !s.ok()) return s;
    inner = tx.Savepoint([](Tx& sp) -> absl::Status {
      if (absl::Status s = Insert(sp, 2, "undone"); !s.ok()) return s;
      return absl::AbortedError("inner failure");
    });
    return tx.Savepoint([](Tx& sp) { return Insert(sp, 3, "kept too"); });
  }),
              IsOk());
  EXPECT_THAT(inner, StatusIs(absl::StatusCode::kAborted, HasSubstr("inner failure")));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(2));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t WHERE id = 2"), IsOkAndHolds(0));
}

// BEGIN, COMMIT and the savepoints are cached prepared statements: a commit
// that fails (a deferred foreign key, checked at COMMIT) rolls back, and the
// same statements serve the next transactions.
TEST(Database, AFailedCommitRollsBackAndTheNextTransactionsCommit) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                       "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))"),
              IsOk());
  EXPECT_THAT(db->Transaction([](Tx& tx) -> absl::Status {
    if (absl::Status s = tx.Exec("PRAGMA defer_foreign_keys = ON"); !s.ok()) return s;
    return tx.Exec("INSERT INTO c VALUES (1, 42)");  // accepted until COMMIT
  }),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("`COMMIT`")));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM c"), IsOkAndHolds(0));
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(db->Transaction([i](Tx& tx) -> absl::Status {
      return tx.Savepoint(
          [i](Tx& sp) { return sp.Exec(absl::StrCat("INSERT INTO p VALUES (", i, ")")); });
    }),
                IsOk());
  }
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM p"), IsOkAndHolds(3));
}

// A savepoint that fails inside another: only the inner one's work goes.
TEST(Database, NestedSavepointsRollBackOnlyTheFailedOne) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  ASSERT_THAT(db->Transaction([](Tx& tx) -> absl::Status {
    return tx.Savepoint([](Tx& outer) -> absl::Status {
      if (absl::Status s = Insert(outer, 1, "outer"); !s.ok()) return s;
      absl::Status inner = outer.Savepoint([](Tx& sp) -> absl::Status {
        if (absl::Status s = Insert(sp, 2, "inner"); !s.ok()) return s;
        return absl::AbortedError("inner failure");
      });
      EXPECT_THAT(inner, StatusIs(absl::StatusCode::kAborted, HasSubstr("inner failure")));
      return Insert(outer, 3, "outer again");
    });
  }),
              IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(2));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t WHERE id = 2"), IsOkAndHolds(0));
}

TEST(Database, StatementBindsAndReadsEveryType) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE v (i INTEGER, d REAL, t TEXT, b BLOB, n TEXT, e TEXT)"),
              IsOk());
  const std::string blob("a\0b\xff", 4);
  ASSERT_THAT(db->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> insert = tx.Prepare("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)");
    if (!insert.ok()) return insert.status();
    EXPECT_THAT(insert->BindInt64(1, int64_t{1} << 40), IsOk());
    EXPECT_THAT(insert->BindDouble(2, 2.5), IsOk());
    EXPECT_THAT(insert->BindText(3, "héllo"), IsOk());
    EXPECT_THAT(insert->BindBlob(4, blob), IsOk());
    EXPECT_THAT(insert->BindNull(5), IsOk());
    EXPECT_THAT(insert->BindText(6, absl::string_view()), IsOk());
    EXPECT_THAT(insert->BindInt64(7, 0),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parameter 7")));
    return insert->Run();
  }),
              IsOk());
  ASSERT_THAT(db->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> select = tx.Prepare("SELECT i, d, t, b, n, e FROM v");
    if (!select.ok()) return select.status();
    EXPECT_THAT(select->Step(), IsOkAndHolds(true));
    EXPECT_EQ(select->column_count(), 6);
    EXPECT_EQ(select->ColumnInt64(0), int64_t{1} << 40);
    EXPECT_DOUBLE_EQ(select->ColumnDouble(1), 2.5);
    EXPECT_EQ(select->ColumnText(2), "héllo");
    EXPECT_EQ(select->ColumnBlob(3), blob);
    EXPECT_TRUE(select->ColumnIsNull(4));
    EXPECT_FALSE(select->ColumnIsNull(5));  // an empty string is not NULL
    EXPECT_EQ(select->ColumnText(5), "");
    EXPECT_THAT(select->Step(), IsOkAndHolds(false));
    return absl::OkStatus();
  }),
              IsOk());
}

TEST(Database, PrepareRejectsMoreThanOneStatement) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  absl::Status s =
      db->Transaction([](Tx& tx) { return tx.Prepare("SELECT 1; SELECT 2").status(); });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than one")));
}

TEST(Database, CachedStatementsRunAgainFresh) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(db->Transaction([&](Tx& tx) { return Insert(tx, i, absl::StrCat("n", i)); }),
                IsOk());
  }
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(5));
  EXPECT_EQ(QueryText(*db, "SELECT group_concat(name, ',') FROM t"), "n0,n1,n2,n3,n4");
}

TEST(Database, TransactionsFromManyThreadsRunOneAfterAnother) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE c (n INTEGER); INSERT INTO c VALUES (0)"), IsOk());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_THAT(db->Transaction([](Tx& tx) -> absl::Status {
          absl::StatusOr<Statement> read = tx.Prepare("SELECT n FROM c");
          if (!read.ok()) return read.status();
          absl::StatusOr<bool> row = read->Step();
          if (!row.ok()) return row.status();
          int64_t n = read->ColumnInt64(0);
          return tx.Exec(absl::StrCat("UPDATE c SET n = ", n + 1));
        }),
                    IsOk());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(QueryInt(*db, "SELECT n FROM c"), IsOkAndHolds(200));
}

// Inserts a row named `name` with the next rowid: rowids give the order in
// which the inserts ran.
absl::Status InsertNext(Tx& tx, const std::string& name) {
  absl::StatusOr<Statement> insert = tx.Prepare("INSERT INTO t (name) VALUES (?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, name); !s.ok()) return s;
  return insert->Run();
}

// The names in `t` other than the holder's, in the order they were inserted.
std::string NamesInRunOrder(Database& db) {
  return QueryText(db, "SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE name != "
                       "'holder' ORDER BY id)");
}

// Queues a Transaction() of `fn` on a thread of its own and returns once it
// waits in the queue (stats().queued counts it).
std::thread QueueTransaction(Database& db, std::function<absl::Status(Tx&)> fn,
                             absl::Status* result) {
  const size_t before = db.stats().queued;
  std::thread t([&db, fn = std::move(fn), result] { *result = db.Transaction(fn); });
  EXPECT_TRUE(WaitFor([&] { return db.stats().queued > before; }, absl::Seconds(30)))
      << "the transaction never queued";
  return t;
}

// A transaction whose callback holds the connection until `release`: the
// calls that come meanwhile queue behind it.
struct Holder {
  absl::Notification entered, release;
  absl::Status result;
  std::thread thread;

  explicit Holder(Database& db) {
    thread = std::thread([this, &db] {
      result = db.Transaction([this](Tx& tx) -> absl::Status {
        entered.Notify();
        release.WaitForNotification();
        return Insert(tx, 100, "holder");
      });
    });
    entered.WaitForNotification();
  }
  void Finish() {
    release.Notify();
    thread.join();
  }
};

// Three calls queued together behind a Holder: one inserting "before",
// `middle`, one inserting "after". Their statuses, and the COMMITs from the
// holder's release on (the holder's own among them).
struct AroundMiddle {
  absl::Status before, middle, after;
  uint64_t commits = 0;
};
AroundMiddle RunAroundMiddle(Database& db, std::function<absl::Status(Tx&)> middle) {
  AroundMiddle r;
  Holder holder(db);
  std::thread t1 = QueueTransaction(
      db, [](Tx& tx) { return InsertNext(tx, "before"); }, &r.before);
  std::thread t2 = QueueTransaction(db, std::move(middle), &r.middle);
  std::thread t3 = QueueTransaction(
      db, [](Tx& tx) { return InsertNext(tx, "after"); }, &r.after);
  const uint64_t commits = db.stats().commits;
  holder.Finish();
  t1.join();
  t2.join();
  t3.join();
  EXPECT_THAT(holder.result, IsOk());
  r.commits = db.stats().commits - commits;
  return r;
}

TEST(Database, TransactionsThatQueueTogetherShareOneCommit) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  const Database::Stats start = db->stats();
  Holder holder(*db);
  std::vector<absl::Status> results(5);
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.push_back(QueueTransaction(
        *db, [i](Tx& tx) { return InsertNext(tx, absl::StrCat("n", i)); }, &results[i]));
  }
  EXPECT_EQ(db->stats().queued, 5u);
  holder.Finish();
  for (auto& t : threads) t.join();
  EXPECT_THAT(holder.result, IsOk());
  for (const absl::Status& r : results) EXPECT_THAT(r, IsOk());
  // In arrival order, in one transaction after the holder's.
  EXPECT_EQ(NamesInRunOrder(*db), "n0,n1,n2,n3,n4");
  const Database::Stats end = db->stats();
  EXPECT_EQ(end.transactions - start.transactions, 6u);
  EXPECT_EQ(end.commits - start.commits, 2u);
  EXPECT_EQ(end.queued, 0u);
}

// In a group, a callback that fails rolls back alone; the rest commit.
TEST(Database, AFailingTransactionInAGroupRollsBackAlone) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  AroundMiddle r = RunAroundMiddle(*db, [](Tx& tx) -> absl::Status {
    if (absl::Status s = InsertNext(tx, "failing"); !s.ok()) return s;
    return absl::AbortedError("changed its mind");
  });
  EXPECT_THAT(r.before, IsOk());
  EXPECT_THAT(r.middle, StatusIs(absl::StatusCode::kAborted, HasSubstr("changed its mind")));
  EXPECT_THAT(r.after, IsOk());
  EXPECT_EQ(NamesInRunOrder(*db), "before,after");
  EXPECT_EQ(r.commits, 2u);  // the holder's, and one for the three
}

// A callback that ends the shared transaction (here by hand; in life SQLite
// does it on disk full or an I/O error): the calls that ran in it with it
// fail with the reason, nothing of theirs stays, and the calls after it run
// in a new transaction and commit.
TEST(Database, ACallbackThatEndsTheGroupFailsOnlyWhatRanWithIt) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  AroundMiddle r = RunAroundMiddle(*db, [](Tx& tx) -> absl::Status {
    if (absl::Status s = InsertNext(tx, "ender"); !s.ok()) return s;
    return tx.Exec("ROLLBACK");
  });
  EXPECT_THAT(r.before, Not(IsOk()));
  EXPECT_EQ(r.before, r.middle);  // the one reason, for both
  EXPECT_THAT(r.after, IsOk());
  EXPECT_EQ(NamesInRunOrder(*db), "after");
  EXPECT_EQ(r.commits, 2u);  // the holder's and the one of `after`
  // The connection is fine for what comes next.
  EXPECT_THAT(db->Transaction([](Tx& tx) { return InsertNext(tx, "next"); }), IsOk());
}

// A callback that ends the shared transaction and returns an error: it
// keeps its error, the calls that ran with it fail, and the calls after it
// run in a new transaction (not in SQLite's autocommit mode) and commit.
TEST(Database, ACallbackThatRollsBackAndFailsLeavesTheRestToANewTransaction) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  AroundMiddle r = RunAroundMiddle(*db, [](Tx& tx) -> absl::Status {
    if (absl::Status s = InsertNext(tx, "ender"); !s.ok()) return s;
    if (absl::Status s = tx.Exec("ROLLBACK"); !s.ok()) return s;
    return absl::DataLossError("gave up");
  });
  EXPECT_THAT(r.before, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("gave up")));
  EXPECT_THAT(r.middle, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("gave up")));
  EXPECT_THAT(r.after, IsOk());
  EXPECT_EQ(NamesInRunOrder(*db), "after");
  EXPECT_EQ(r.commits, 2u);  // the holder's and the one of `after`
}

// When the group cannot even begin (another connection holds the write
// lock past the busy timeout), every call in it fails and no callback runs.
TEST(Database, AGroupThatCannotBeginFailsEveryCallAndRunsNone) {
  TempDir dir;
  const std::string path = dir.Join("a.db");
  Database::Options options;
  options.busy_timeout = absl::Milliseconds(50);
  auto db = OpenOrDie(path, options);
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  // A Read() holds the connection meanwhile, so the calls queue up together.
  absl::Notification reading, release;
  std::thread reader([&] {
    EXPECT_THAT(db->Read([&](Tx&) {
      reading.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    }),
                IsOk());
  });
  reading.WaitForNotification();
  std::atomic<int> ran{0};
  std::vector<absl::Status> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.push_back(QueueTransaction(
        *db,
        [&ran](Tx& tx) {
          ++ran;
          return InsertNext(tx, "x");
        },
        &results[static_cast<size_t>(i)]));
  }
  release.Notify();
  reader.join();
  for (auto& t : threads) t.join();
  for (const absl::Status& r : results) {
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("BEGIN IMMEDIATE")));
  }
  EXPECT_EQ(ran.load(), 0);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(0));
}

// A grouped callback with savepoints of its own (the shape of PlaceOrder's
// batch and of a consumer's): its failed savepoint rolls back alone, the
// rest of it and the other calls commit.
TEST(Database, ACallbacksOwnSavepointsNestInsideTheGroup) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  Holder holder(*db);
  absl::Status batch, other;
  absl::Status inner_failure;
  std::thread t1 = QueueTransaction(
      *db,
      [&inner_failure](Tx& tx) -> absl::Status {
        for (const char* name : {"b1", "b2-fails", "b3"}) {
          absl::Status s = tx.Savepoint([name](Tx& sp) -> absl::Status {
            if (absl::Status r = InsertNext(sp, name); !r.ok()) return r;
            if (std::string(name) == "b2-fails") return absl::InvalidArgumentError("bad item");
            return absl::OkStatus();
          });
          if (!s.ok()) inner_failure = s;
        }
        return absl::OkStatus();
      },
      &batch);
  std::thread t2 = QueueTransaction(
      *db, [](Tx& tx) { return InsertNext(tx, "other"); }, &other);
  holder.Finish();
  t1.join();
  t2.join();
  EXPECT_THAT(batch, IsOk());
  EXPECT_THAT(other, IsOk());
  EXPECT_THAT(inner_failure, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad item")));
  EXPECT_EQ(NamesInRunOrder(*db), "b1,b3,other");
}

// More callers than one group takes: the ones left over form the next group,
// and every call returns.
TEST(Database, MoreCallersThanAGroupTakesAllCommit) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  const Database::Stats start = db->stats();
  Holder holder(*db);
  const int n = static_cast<int>(Database::kMaxGroup) + 3;
  std::vector<absl::Status> results(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.push_back(QueueTransaction(
        *db, [i](Tx& tx) { return Insert(tx, i, "x"); }, &results[static_cast<size_t>(i)]));
  }
  holder.Finish();
  for (auto& t : threads) t.join();
  for (const absl::Status& r : results) EXPECT_THAT(r, IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t WHERE id < 100"), IsOkAndHolds(n));
  const Database::Stats end = db->stats();
  EXPECT_EQ(end.transactions - start.transactions, static_cast<uint64_t>(n) + 1);
  EXPECT_EQ(end.commits - start.commits, 3u);  // the holder, a full group, the rest
}

// Many threads, transactions of two rows each, a quarter of them failing
// after their first row: whatever groups they end up in, each one is all or
// nothing, and its caller hears which.
TEST(Database, ConcurrentGroupsKeepEveryTransactionAllOrNothing) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (txn INTEGER, part INTEGER, PRIMARY KEY (txn, part))"),
              IsOk());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  std::vector<std::vector<bool>> committed(kThreads, std::vector<bool>(kPerThread));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int txn = t * kPerThread + i;
        const bool fail = (txn * 7919) % 4 == 0;
        absl::Status s = db->Transaction([&](Tx& tx) -> absl::Status {
          if (absl::Status r = tx.Exec(absl::StrCat("INSERT INTO t VALUES (", txn, ", 1)"));
              !r.ok()) {
            return r;
          }
          if (fail) return absl::AbortedError("fails after its first row");
          return tx.Exec(absl::StrCat("INSERT INTO t VALUES (", txn, ", 2)"));
        });
        EXPECT_EQ(s.ok(), !fail) << s;
        committed[t][i] = s.ok();
      }
    });
  }
  for (auto& t : threads) t.join();
  int expected = 0;
  for (const auto& per_thread : committed) {
    for (bool c : per_thread) expected += c ? 1 : 0;
  }
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(2 * expected));
  // No transaction has one row without the other.
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM (SELECT txn FROM t GROUP BY txn HAVING "
                            "count(*) != 2)"),
              IsOkAndHolds(0));
  // Nor a row of a transaction its caller was told failed.
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t WHERE (txn * 7919) % 4 = 0"), IsOkAndHolds(0));
  const Database::Stats stats = db->stats();
  EXPECT_EQ(stats.transactions, static_cast<uint64_t>(kThreads * kPerThread));
}

const std::vector<std::string> kSteps = {
    "CREATE TABLE a (id INTEGER PRIMARY KEY)",  // fails if run twice
    "CREATE TABLE b (id INTEGER PRIMARY KEY); INSERT INTO b VALUES (1)",
};

// When SQLite rolls a transaction back by itself (disk full, an I/O error;
// here the callback's own ROLLBACK stands in), a callback that went on
// would run its statements outside any transaction, each committing on its
// own (a savepoint even opens a new transaction, which RELEASE commits).
// Nothing runs any more: every statement fails ABORTED, and nothing commits.
TEST(Database, NothingRunsAfterSQLiteRolledTheTransactionBack) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_NE(db, nullptr);
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"), IsOk());
  absl::Status savepoint, exec, prepared;
  absl::Status result = db->Transaction([&](Tx& tx) {
    if (absl::Status s = tx.Exec("INSERT INTO t VALUES (1); ROLLBACK"); !s.ok()) return s;
    EXPECT_FALSE(tx.in_transaction());
    savepoint = tx.Savepoint([](Tx& sp) { return sp.Exec("INSERT INTO t VALUES (2)"); });
    exec = tx.Exec("INSERT INTO t VALUES (3)");
    absl::StatusOr<Statement> insert = tx.Prepare("INSERT INTO t VALUES (4)");
    prepared = insert.ok() ? insert->Run() : insert.status();
    return absl::OkStatus();  // a callback that ignored every error
  });
  EXPECT_THAT(savepoint, StatusIs(absl::StatusCode::kAborted, HasSubstr("rolled the transaction back")));
  EXPECT_THAT(exec, StatusIs(absl::StatusCode::kAborted, HasSubstr("rolled")));
  EXPECT_THAT(prepared, StatusIs(absl::StatusCode::kAborted, HasSubstr("rolled")));
  EXPECT_FALSE(result.ok());  // COMMIT finds no transaction
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(0));
  // The connection is fine for the next transaction.
  ASSERT_THAT(db->Transaction([](Tx& tx) { return tx.Exec("INSERT INTO t VALUES (5)"); }), IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM t"), IsOkAndHolds(1));
}

// Read() waits for the Transaction() in progress and then sees its rows:
// the watch hub relies on it (it is told of a change from inside the
// transaction that makes it, and reads the order back).
TEST(Database, AReadWaitsForTheTransactionInProgress) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("a.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
  Holder holder(*db);  // its row is not committed until Finish()
  std::atomic<bool> read{false};
  absl::StatusOr<int64_t> rows;
  std::thread reader([&] {
    rows = QueryInt(*db, "SELECT count(*) FROM t");
    read = true;
  });
  // A read that did not wait would be done well within this (it can only
  // pass wrongly on a machine too slow to start the thread by then).
  EXPECT_FALSE(WaitFor([&] { return read.load(); }, absl::Milliseconds(200)));
  holder.Finish();
  reader.join();
  EXPECT_THAT(holder.result, IsOk());
  EXPECT_THAT(rows, IsOkAndHolds(1));
}

TEST(Migrate, AppliesEachStepOnceAcrossReopen) {
  TempDir dir;
  {
    auto db = OpenOrDie(dir.Join("m.db"));
    ASSERT_THAT(db->Migrate(kSteps), IsOk());
    EXPECT_THAT(db->UserVersion(), IsOkAndHolds(2));
    ASSERT_THAT(db->Migrate(kSteps), IsOk());  // nothing pending
  }
  auto db = OpenOrDie(dir.Join("m.db"));
  ASSERT_THAT(db->Migrate(kSteps), IsOk());
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM b"), IsOkAndHolds(1));

  std::vector<std::string> more = kSteps;
  more.push_back("INSERT INTO b VALUES (2)");
  ASSERT_THAT(db->Migrate(more), IsOk());
  ASSERT_THAT(db->Migrate(more), IsOk());
  EXPECT_THAT(db->UserVersion(), IsOkAndHolds(3));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM b"), IsOkAndHolds(2));
}

TEST(Migrate, AFailingStepLeavesTheSchemaAsItWas) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("m.db"));
  std::vector<std::string> steps = {"CREATE TABLE a (id INTEGER)", "CREATE TABLE oops ("};
  EXPECT_THAT(db->Migrate(steps),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("migration step 1")));
  EXPECT_THAT(db->UserVersion(), IsOkAndHolds(0));
  EXPECT_THAT(QueryInt(*db, "SELECT count(*) FROM sqlite_schema WHERE name = 'a'"),
              IsOkAndHolds(0));
}

TEST(Migrate, ANewerDatabaseIsRefused) {
  TempDir dir;
  auto db = OpenOrDie(dir.Join("m.db"));
  ASSERT_THAT(db->Migrate(kSteps), IsOk());
  EXPECT_THAT(db->Migrate({kSteps[0]}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("newer")));
}

TEST(Open, GarbageFileIsAnErrorNamingThePathNotACrash) {
  TempDir dir;
  const std::string path = dir.Join("garbage.db");
  {
    std::ofstream out(path, std::ios::binary);
    absl::BitGen gen;
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(absl::Uniform<uint8_t>(gen)));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path, {});
  EXPECT_THAT(db, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

TEST(Open, DamagedPagesGiveDataLossNotACrash) {
  TempDir dir;
  const std::string path = dir.Join("damaged.db");
  {
    auto db = OpenOrDie(path);
    ASSERT_THAT(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), IsOk());
    ASSERT_THAT(db->Transaction([](Tx& tx) -> absl::Status {
      for (int i = 0; i < 2000; ++i) {
        if (absl::Status s = Insert(tx, i, std::string(100, 'x')); !s.ok()) return s;
      }
      return absl::OkStatus();
    }),
                IsOk());
    ASSERT_THAT(db->Exec("PRAGMA wal_checkpoint(TRUNCATE)"), IsOk());
  }
  {
    // Scribble over pages 2.. (page 1, the header and schema, stays intact).
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4096);
    for (int i = 0; i < 4096 * 8; ++i) f.put(static_cast<char>(0xa5));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path, {});
  if (!db.ok()) {
    EXPECT_THAT(db, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
    return;
  }
  absl::StatusOr<int64_t> count = QueryInt(**db, "SELECT count(*) FROM t");
  EXPECT_THAT(count, StatusIs(absl::StatusCode::kDataLoss,
                              AnyOf(HasSubstr("malformed"), HasSubstr("corrupt"))));
  EXPECT_THAT(count, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

TEST(Open, MissingDirectoryIsAnErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.Join("no/such/dir/x.db");
  EXPECT_THAT(Database::Open(path, {}), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(Open, MissingFileWithoutCreateIsNotFound) {
  TempDir dir;
  Database::Options options;
  options.create_if_missing = false;
  EXPECT_THAT(Database::Open(dir.Join("x.db"), options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.db")));
}

}  // namespace
}  // namespace relay::store
