// InboxPruner on a real SQLite file: rows older than the retention go, in
// batches; younger ones stay.

#include "common/store/inbox_pruner.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/store/inbox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::store {
namespace {

using ::relay::events::v1::Event;
using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;

class InboxPrunerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(dir_.Join("svc.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    std::vector<std::string> steps = Inbox::Migrations();
    for (std::string& s : Inbox::PruneIndexMigrations()) steps.push_back(std::move(s));
    ASSERT_THAT(db_->Migrate(steps), IsOk());
  }

  // Claims `n` events named <prefix>-<i>, then dates them `age` ago.
  void Handled(const std::string& prefix, int n, absl::Duration age) {
    ASSERT_THAT(db_->Transaction([&](Tx& tx) -> absl::Status {
      for (int i = 0; i < n; ++i) {
        Event e;
        e.set_id(absl::StrCat(prefix, "-", i));
        e.set_topic("orders");
        e.set_type("order.created");
        if (absl::StatusOr<bool> c = Inbox::Claim(tx, e); !c.ok()) return c.status();
      }
      auto st = tx.Prepare("UPDATE inbox SET handled_us = ? WHERE event_id LIKE ?");
      if (!st.ok()) return st.status();
      if (auto s = st->BindInt64(1, absl::ToUnixMicros(now_ - age)); !s.ok()) return s;
      if (auto s = st->BindText(2, prefix + "-%"); !s.ok()) return s;
      return st->Run();
    }),
                IsOk());
  }

  int64_t Rows() {
    int64_t n = -1;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      auto st = tx.Prepare("SELECT count(*) FROM inbox");
      if (!st.ok()) return st.status();
      auto row = st->Step();
      if (!row.ok()) return row.status();
      n = st->ColumnInt64(0);
      return absl::OkStatus();
    }),
                IsOk());
    return n;
  }

  bool Contains(const std::string& id) {
    bool found = false;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      auto c = Inbox::Contains(tx, id);
      if (!c.ok()) return c.status();
      found = *c;
      return absl::OkStatus();
    }),
                IsOk());
    return found;
  }

  InboxPruner::Options Options() {
    InboxPruner::Options o;
    o.retention = absl::Hours(24);
    o.batch = 100;
    o.clock = [this] { return now_; };
    return o;
  }

  relay::testing::TempDir dir_;
  absl::Time now_ = absl::Now();
  std::unique_ptr<Database> db_;
};

TEST_F(InboxPrunerTest, DeletesRowsOlderThanTheRetentionInBatches) {
  Handled("old", 350, absl::Hours(25));    // four batches of 100 at most
  Handled("young", 20, absl::Hours(23));
  InboxPruner pruner(db_.get(), Options());
  EXPECT_THAT(pruner.PruneNow(), IsOkAndHolds(350));
  EXPECT_EQ(Rows(), 20);
  EXPECT_FALSE(Contains("old-0"));
  EXPECT_TRUE(Contains("young-0"));
  EXPECT_THAT(pruner.PruneNow(), IsOkAndHolds(0));
}

TEST_F(InboxPrunerTest, RowsAgePastTheRetentionAsTheClockMoves) {
  Handled("a", 10, absl::Hours(1));
  InboxPruner pruner(db_.get(), Options());
  EXPECT_THAT(pruner.PruneNow(), IsOkAndHolds(0));
  now_ += absl::Hours(24);
  EXPECT_THAT(pruner.PruneNow(), IsOkAndHolds(10));
  EXPECT_EQ(Rows(), 0);
}

TEST_F(InboxPrunerTest, TheThreadPrunesAtStartAndEveryInterval) {
  Handled("old", 5, absl::Hours(48));
  InboxPruner::Options o = Options();
  o.interval = absl::Milliseconds(20);
  InboxPruner pruner(db_.get(), o);
  pruner.Start();
  EXPECT_TRUE(relay::testing::WaitFor([&] { return Rows() == 0; }));
  Handled("later", 5, absl::Hours(48));
  EXPECT_TRUE(relay::testing::WaitFor([&] { return Rows() == 0; }));
  pruner.Stop();
}

TEST_F(InboxPrunerTest, ZeroRetentionNeverPrunes) {
  Handled("old", 5, absl::Hours(48));
  InboxPruner::Options o = Options();
  o.retention = absl::ZeroDuration();
  InboxPruner pruner(db_.get(), o);
  pruner.Start();
  pruner.Stop();
  EXPECT_EQ(Rows(), 5);
}

}  // namespace
}  // namespace relay::store
