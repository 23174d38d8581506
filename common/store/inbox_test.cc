#include "common/store/inbox.h"

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::store {
namespace {

using ::relay::events::v1::Event;
using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::testing::HasSubstr;

class InboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(dir_.Join("inbox.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(Inbox::Migrations()), IsOk());
  }

  // Claims `e` in its own transaction.
  absl::StatusOr<bool> ClaimAlone(const Event& e) {
    bool fresh = false;
    absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
      absl::StatusOr<bool> claimed = Inbox::Claim(tx, e);
      if (!claimed.ok()) return claimed.status();
      fresh = *claimed;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return fresh;
  }

  bool Contains(const std::string& id) {
    bool found = false;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      absl::StatusOr<bool> c = Inbox::Contains(tx, id);
      if (!c.ok()) return c.status();
      found = *c;
      return absl::OkStatus();
    }),
                IsOk());
    return found;
  }

  static Event MakeEvent(const std::string& id) {
    Event e;
    e.set_id(id);
    e.set_topic("orders");
    e.set_type("order.created");
    return e;
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(InboxTest, ClaimingTheSameEventTwiceIsFalseTheSecondTime) {
  Event e = MakeEvent("ev-1");
  EXPECT_THAT(ClaimAlone(e), IsOkAndHolds(true));
  EXPECT_THAT(ClaimAlone(e), IsOkAndHolds(false));
  EXPECT_THAT(ClaimAlone(MakeEvent("ev-2")), IsOkAndHolds(true));
}

TEST_F(InboxTest, AClaimRolledBackIsForgotten) {
  Event e = MakeEvent("ev-1");
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    EXPECT_THAT(Inbox::Claim(tx, e), IsOkAndHolds(true));
    return absl::AbortedError("handler failed");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted, HasSubstr("handler failed")));
  EXPECT_FALSE(Contains("ev-1"));
  EXPECT_THAT(ClaimAlone(e), IsOkAndHolds(true));
  EXPECT_TRUE(Contains("ev-1"));
}

TEST_F(InboxTest, AnEventWithoutIdIsRefused) {
  EXPECT_THAT(ClaimAlone(MakeEvent("")), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr("no id")));
}

TEST_F(InboxTest, PruneDeletesOnlyRowsHandledBeforeTheCutoff) {
  ASSERT_THAT(ClaimAlone(MakeEvent("old")), IsOkAndHolds(true));
  ASSERT_THAT(db_->Exec("UPDATE inbox SET handled_us = handled_us - 86400000000"), IsOk());
  ASSERT_THAT(ClaimAlone(MakeEvent("new")), IsOkAndHolds(true));
  int64_t pruned = -1;
  ASSERT_THAT(db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<int64_t> n = Inbox::Prune(tx, absl::Now() - absl::Hours(1));
    if (!n.ok()) return n.status();
    pruned = *n;
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(pruned, 1);
  EXPECT_FALSE(Contains("old"));
  EXPECT_TRUE(Contains("new"));
}

TEST_F(InboxTest, MigrationsCombineWithAServicesOwnSteps) {
  std::vector<std::string> steps = Inbox::Migrations();
  steps.push_back("CREATE TABLE accounts (id TEXT PRIMARY KEY)");
  ASSERT_THAT(db_->Migrate(steps), IsOk());
  ASSERT_THAT(db_->Migrate(steps), IsOk());
  EXPECT_THAT(db_->UserVersion(), IsOkAndHolds(static_cast<int64_t>(steps.size())));
}

}  // namespace
}  // namespace relay::store
