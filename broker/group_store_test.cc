#include "broker/group_store.h"

#include <fstream>
#include <string>

#include "broker/storage/fault_injection_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::SizeIs;

GroupCheckpoint Checkpoint(uint64_t committed) {
  GroupCheckpoint c;
  c.set_topic("orders");
  c.set_group("payment-service");
  c.set_committed_offset(committed);
  c.add_acked_runs(2);  // 2 after committed: acked
  c.add_acked_runs(1);
  return c;
}

TEST(FileGroupStore, SavesAndLoadsEveryGroup) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  GroupCheckpoint other = Checkpoint(3);
  other.set_topic("payments");
  ASSERT_THAT(store.Save(other), IsOk());
  ASSERT_THAT(store.Save(Checkpoint(9)), IsOk());  // replaces 7
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_THAT(*all, SizeIs(2));
  for (const GroupCheckpoint& c : *all) {
    EXPECT_EQ(c.committed_offset(), c.topic() == "orders" ? 9u : 3u);
  }
}

TEST(FileGroupStore, PowerCutDuringASaveKeepsTheLastDurableCheckpoint) {
  ::relay::testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env);
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());

  // The disk refuses the sync of the next save, then the power goes.
  env.SetSyncError(absl::InternalError("disk on fire"));
  EXPECT_FALSE(store.Save(Checkpoint(8)).ok());
  env.SetSyncError(absl::OkStatus());
  env.SetFilesystemActive(false);
  EXPECT_FALSE(store.Save(Checkpoint(9)).ok());
  ASSERT_THAT(env.DropUnsyncedData(), IsOk());
  env.SetFilesystemActive(true);

  absl::StatusOr<std::vector<GroupCheckpoint>> all =
      FileGroupStore(dir.Join("groups"), &env).LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].committed_offset(), 7u);
  // And the next save after the fault goes through (the leftover temporary
  // file does not get in the way).
  ASSERT_THAT(store.Save(Checkpoint(10)), IsOk());
  all = store.LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_EQ((*all)[0].committed_offset(), 10u);
}

TEST(FileGroupStore, UnreadableCheckpointIsAnErrorNamingTheFile) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  const std::string path = dir.Join("groups/orders/payment-service.ckpt");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(5000, '\xff');
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.status().message(), HasSubstr(path));
  EXPECT_THAT(all.status().message(), HasSubstr("move it aside"));
  EXPECT_LT(all.status().message().size(), 400u);  // no echo of the bytes
}

TEST(DecodeCheckpoint, RefusesWhatIsNotACheckpoint) {
  GroupCheckpoint odd = Checkpoint(1);
  odd.add_acked_runs(5);
  EXPECT_FALSE(DecodeCheckpoint(odd.SerializeAsString()).ok());
  GroupCheckpoint past = Checkpoint(UINT64_MAX - 1);
  EXPECT_FALSE(DecodeCheckpoint(past.SerializeAsString()).ok());
  GroupCheckpoint nameless = Checkpoint(1);
  nameless.clear_group();
  EXPECT_FALSE(DecodeCheckpoint(nameless.SerializeAsString()).ok());
  EXPECT_THAT(DecodeCheckpoint(Checkpoint(1).SerializeAsString()).status(), IsOk());
}

}  // namespace
}  // namespace relay::broker
