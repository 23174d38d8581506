#include "broker/group_store.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/storage/fault_injection_env.h"
#include "broker/storage/forwarding_env.h"
#include "broker/storage/record.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::_;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

GroupCheckpoint Checkpoint(uint64_t committed, const std::string& topic = "orders",
                           const std::string& group = "payment-service") {
  GroupCheckpoint c;
  c.set_topic(topic);
  c.set_group(group);
  c.set_committed_offset(committed);
  c.add_acked_runs(2);  // 2 after committed: acked
  c.add_acked_runs(1);
  return c;
}

// `n` groups of topics t0..t<n-1>, all at `committed`.
std::vector<GroupCheckpoint> ManyGroups(int n, uint64_t committed) {
  std::vector<GroupCheckpoint> out;
  for (int i = 0; i < n; ++i) out.push_back(Checkpoint(committed, absl::StrCat("t", i), "g"));
  return out;
}

// topic/group -> committed offset of what `store` loads.
std::map<std::string, uint64_t> Committed(FileGroupStore& store) {
  std::map<std::string, uint64_t> out;
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  EXPECT_THAT(all.status(), IsOk());
  if (!all.ok()) return out;
  for (const GroupCheckpoint& c : *all) {
    out[absl::StrCat(c.topic(), "/", c.group())] = c.committed_offset();
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes, bool append = false) {
  std::ofstream(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) << bytes;
}

// What a broker before the checkpoint log left: `<dir>/<topic>/<group>.ckpt`.
void WriteLegacyFile(const std::string& dir, const GroupCheckpoint& c) {
  ASSERT_THAT(Env::Default()->CreateDir(dir), IsOk());
  ASSERT_THAT(Env::Default()->CreateDir(absl::StrCat(dir, "/", c.topic())), IsOk());
  WriteFile(absl::StrCat(dir, "/", c.topic(), "/", c.group(), ".ckpt"), c.SerializeAsString());
}

TEST(FileGroupStore, SavesAndLoadsEveryGroup) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  GroupCheckpoint other = Checkpoint(3);
  other.set_topic("payments");
  ASSERT_THAT(store.Save(other), IsOk());
  ASSERT_THAT(store.Save(Checkpoint(9)), IsOk());  // replaces 7
  absl::StatusOr<std::vector<GroupCheckpoint>> all = FileGroupStore(dir.Join("groups")).LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_THAT(*all, SizeIs(2));
  for (const GroupCheckpoint& c : *all) {
    EXPECT_EQ(c.committed_offset(), c.topic() == "orders" ? 9u : 3u);
    EXPECT_THAT(c.acked_runs(), ElementsAre(2, 1));
  }
}

TEST(FileGroupStore, SaveAllOfManyGroupsIsOneWriteAndOneSync) {
  ::relay::testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env);
  ASSERT_THAT(store.SaveAll(ManyGroups(1000, 1)), Each(IsOk()));
  for (uint64_t pass = 2; pass <= 4; ++pass) {
    const int64_t writes = env.writes(), syncs = env.syncs();
    ASSERT_THAT(store.SaveAll(ManyGroups(1000, pass)), Each(IsOk()));
    EXPECT_EQ(env.writes() - writes, 1);
    EXPECT_EQ(env.syncs() - syncs, 1);
  }
  // No file per group, no temporary file: the log alone.
  absl::StatusOr<std::vector<std::string>> names = env.ListDir(dir.Join("groups"));
  ASSERT_THAT(names.status(), IsOk());
  EXPECT_THAT(*names, ElementsAre(FileGroupStore::kLogName));
  std::map<std::string, uint64_t> loaded = Committed(store);
  ASSERT_THAT(loaded, SizeIs(1000));
  for (const auto& [name, committed] : loaded) EXPECT_EQ(committed, 4u) << name;
}

TEST(FileGroupStore, EmptyBatchWritesNothing) {
  ::relay::testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env);
  EXPECT_THAT(store.SaveAll({}), SizeIs(0));
  EXPECT_EQ(env.writes(), 0);
  EXPECT_EQ(env.syncs(), 0);
  EXPECT_FALSE(env.IsDirectory(dir.Join("groups")));
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
  // And the next save after the fault goes through.
  ASSERT_THAT(store.Save(Checkpoint(10)), IsOk());
  all = store.LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_EQ((*all)[0].committed_offset(), 10u);
}

TEST(FileGroupStore, FailedSyncLeavesNoRecordBehind) {
  ::relay::testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env);
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  const std::string before = ReadFile(store.log_path());
  env.SetSyncError(absl::InternalError("disk hiccup"));
  EXPECT_THAT(store.SaveAll(ManyGroups(3, 8)), Each(StatusIs(absl::StatusCode::kInternal, _)));
  // Cut off at once: another reader sees only what was acknowledged.
  EXPECT_EQ(ReadFile(store.log_path()), before);
  env.SetSyncError(absl::OkStatus());
  ASSERT_THAT(store.SaveAll(ManyGroups(3, 9)), Each(IsOk()));
  EXPECT_THAT(Committed(store), SizeIs(4));
}

// A crash during an append leaves part of its records at the end of the
// log: the groups keep their earlier checkpoints, and the next save cuts
// the torn bytes off and writes after the last good record.
TEST(FileGroupStore, TornTailIsIgnoredAndCutOff) {
  GroupCheckpoint next = Checkpoint(8);
  std::string record;
  AppendRecord(next.SerializeAsString(), &record);
  const std::vector<std::string> tails = {
      record.substr(0, 5),                  // torn header
      record.substr(0, record.size() - 1),  // torn payload
      std::string(300, '\0'),               // file grown, data never written
      // The whole record's length, not all of its payload.
      record.substr(0, kRecordHeaderBytes) + std::string(record.size() - kRecordHeaderBytes, 'x'),
      // The file grown past the record, whose first bytes alone landed.
      record.substr(0, kRecordHeaderBytes + 3) + std::string(record.size() + 100, '\0'),
      // A torn record, then the start of the batch's next one.
      record.substr(0, kRecordHeaderBytes + 3) + std::string(record.size(), '\0') +
          record.substr(0, kRecordHeaderBytes + 5),
  };
  for (size_t i = 0; i < tails.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("tail #", i));
    ::relay::testing::TempDir dir;
    FileGroupStore store(dir.Join("groups"));
    ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
    const std::string good = ReadFile(store.log_path());
    WriteFile(store.log_path(), tails[i], /*append=*/true);

    FileGroupStore reopened(dir.Join("groups"));
    EXPECT_EQ(Committed(reopened)["orders/payment-service"], 7u);
    EXPECT_EQ(ReadFile(reopened.log_path()).size(), good.size() + tails[i].size());  // read only
    ASSERT_THAT(reopened.Save(Checkpoint(9)), IsOk());
    std::string expected = good;
    AppendRecord(Checkpoint(9).SerializeAsString(), &expected);
    EXPECT_EQ(ReadFile(reopened.log_path()), expected);
    EXPECT_EQ(Committed(reopened)["orders/payment-service"], 9u);
  }
}

// Saves checkpoints 7, 8 and 9 of one group: three records. Returns where
// the second begins.
size_t SaveThreeRecords(FileGroupStore* store) {
  EXPECT_THAT(store->Save(Checkpoint(7)), IsOk());
  const size_t second = ReadFile(store->log_path()).size();
  EXPECT_THAT(store->Save(Checkpoint(8)), IsOk());
  EXPECT_THAT(store->Save(Checkpoint(9)), IsOk());
  return second;
}

TEST(FileGroupStore, CorruptRecordInTheMiddleIsDataLossNamingFileAndOffset) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  const size_t second = SaveThreeRecords(&store);
  std::string bytes = ReadFile(store.log_path());
  bytes[second + kRecordHeaderBytes + 3] ^= 0x40;  // a bit of the second payload
  WriteFile(store.log_path(), bytes);

  FileGroupStore reopened(dir.Join("groups"));
  absl::StatusOr<std::vector<GroupCheckpoint>> all = reopened.LoadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.status().message(), HasSubstr(reopened.log_path()));
  EXPECT_THAT(all.status().message(), HasSubstr(absl::StrCat("at byte ", second)));
  EXPECT_LT(all.status().message().size(), 500u);  // no echo of the bytes
  // Nor does a save write anything after it.
  EXPECT_THAT(reopened.Save(Checkpoint(10)), StatusIs(absl::StatusCode::kDataLoss, _));
  EXPECT_EQ(ReadFile(reopened.log_path()), bytes);
}

// A whole record after a bad one: not what a crash during the last append
// leaves, but damage amid acknowledged records, left for the operator.
TEST(FileGroupStore, ABadRecordFollowedByAWholeOneIsDataLoss) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  const size_t at = ReadFile(store.log_path()).size();
  std::string record;
  AppendRecord(Checkpoint(8).SerializeAsString(), &record);
  std::string tail = record.substr(0, kRecordHeaderBytes + 3) +
                     std::string(record.size() - kRecordHeaderBytes - 3, '\0') + record;
  WriteFile(store.log_path(), tail, /*append=*/true);

  FileGroupStore reopened(dir.Join("groups"));
  absl::StatusOr<std::vector<GroupCheckpoint>> all = reopened.LoadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.status().message(), HasSubstr(absl::StrCat("at byte ", at)));
}

// A length damaged so that the record seems to run past the end of the
// file, or past the largest a record may be: never what a torn append
// leaves when whole records follow, or at all.
TEST(FileGroupStore, ADamagedLengthAmidRecordsIsDataLoss) {
  for (const uint32_t length : {uint32_t{1} << 20, uint32_t{1} << 30}) {
    SCOPED_TRACE(absl::StrCat("length ", length));
    ::relay::testing::TempDir dir;
    FileGroupStore store(dir.Join("groups"));
    const size_t second = SaveThreeRecords(&store);
    std::string bytes = ReadFile(store.log_path());
    for (int i = 0; i < 4; ++i) bytes[second + i] = static_cast<char>((length >> (8 * i)) & 0xff);
    WriteFile(store.log_path(), bytes);

    FileGroupStore reopened(dir.Join("groups"));
    EXPECT_THAT(reopened.LoadAll().status(),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(absl::StrCat("at byte ", second))));
    EXPECT_EQ(ReadFile(reopened.log_path()), bytes);
  }
}

TEST(FileGroupStore, RecordThatIsNotACheckpointIsDataLoss) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  ASSERT_THAT(store.Save(Checkpoint(7)), IsOk());
  const size_t at = ReadFile(store.log_path()).size();
  GroupCheckpoint nameless = Checkpoint(8);
  nameless.clear_group();
  std::string record;
  AppendRecord(nameless.SerializeAsString(), &record);
  WriteFile(store.log_path(), record, /*append=*/true);
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  EXPECT_THAT(all.status(), StatusIs(absl::StatusCode::kDataLoss,
                                     HasSubstr(absl::StrCat("record at byte ", at))));
}

TEST(FileGroupStore, CompactionKeepsEachGroupsLatestCheckpoint) {
  ::relay::testing::TempDir dir;
  FileGroupStoreOptions options;
  options.compact_min_bytes = 4096;
  options.compact_ratio = 4;
  FaultInjectionEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env, options);
  uint64_t largest = 0;
  for (uint64_t pass = 1; pass <= 200; ++pass) {
    // Ten groups each pass, one of them new.
    std::vector<GroupCheckpoint> batch = ManyGroups(10, pass);
    batch.push_back(Checkpoint(pass, "new", absl::StrCat("g", pass)));
    ASSERT_THAT(store.SaveAll(batch), Each(IsOk()));
    absl::StatusOr<uint64_t> size = env.GetFileSize(store.log_path());
    ASSERT_THAT(size.status(), IsOk());
    largest = std::max(largest, *size);
  }
  absl::StatusOr<uint64_t> size = env.GetFileSize(store.log_path());
  ASSERT_THAT(size.status(), IsOk());
  // 210 groups' records of about 25 bytes: compacted several times, never
  // past the bound plus one batch.
  EXPECT_LE(largest, 4 * *size + 11 * 40);
  EXPECT_LT(largest, 30000u);
  std::map<std::string, uint64_t> loaded = Committed(store);
  ASSERT_THAT(loaded, SizeIs(210));
  EXPECT_EQ(loaded["t0/g"], 200u);
  EXPECT_EQ(loaded["t9/g"], 200u);
  EXPECT_EQ(loaded["new/g1"], 1u);
  EXPECT_EQ(loaded["new/g200"], 200u);
  EXPECT_FALSE(env.GetFileSize(store.log_path() + ".tmp").ok());
}

// An Env whose next rename renames and then fails, as one whose directory
// sync failed after the rename does; it counts directory syncs.
class RenameThenFailEnv final : public ForwardingEnv {
 public:
  using ForwardingEnv::ForwardingEnv;
  bool fail_next_rename = false;
  int dir_syncs = 0;

  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    absl::Status s = ForwardingEnv::RenameFile(from, to);
    if (s.ok() && fail_next_rename) {
      fail_next_rename = false;
      return absl::InternalError("directory sync failed");
    }
    return s;
  }
  absl::Status SyncDir(const std::string& path) override {
    ++dir_syncs;
    return ForwardingEnv::SyncDir(path);
  }
};

// A compaction whose rename went through but whose directory sync failed:
// the new log's name may not survive a power cut, so the next save syncs
// the directory before it is acknowledged (else a cut could bring the old
// log back under saves acknowledged after it).
TEST(FileGroupStore, ASaveAfterAFailedCompactionRenameSyncsTheDirectoryFirst) {
  ::relay::testing::TempDir dir;
  FileGroupStoreOptions options;
  options.compact_min_bytes = 1;
  options.compact_ratio = 2;  // the third save of one group compacts
  RenameThenFailEnv env(Env::Default());
  FileGroupStore store(dir.Join("groups"), &env, options);
  env.fail_next_rename = true;
  uint64_t failed_at = 0;
  for (uint64_t i = 1; i <= 10 && failed_at == 0; ++i) {
    if (!store.Save(Checkpoint(i)).ok()) failed_at = i;
  }
  ASSERT_EQ(failed_at, 3u) << "no compaction";
  // Read again (the renamed log: one record), the store appends the next
  // save, and syncs the directory before it acknowledges that.
  const int syncs_before = env.dir_syncs;
  ASSERT_THAT(store.Save(Checkpoint(9, "orders", "other")), IsOk());
  EXPECT_EQ(env.dir_syncs, syncs_before + 1);
  std::map<std::string, uint64_t> loaded = Committed(store);
  EXPECT_EQ(loaded["orders/payment-service"], 3u);  // in the renamed log
  EXPECT_EQ(loaded["orders/other"], 9u);
  // Once synced, later appends do not sync it again.
  ASSERT_THAT(store.Save(Checkpoint(10, "orders", "other")), IsOk());
  EXPECT_EQ(env.dir_syncs, syncs_before + 1);
}

TEST(FileGroupStore, ReadsPerGroupFilesOfOlderBrokersAndMovesThemToTheLog) {
  ::relay::testing::TempDir dir;
  const std::string groups = dir.Join("groups");
  WriteLegacyFile(groups, Checkpoint(5, "orders", "a"));
  WriteLegacyFile(groups, Checkpoint(6, "orders", "b"));
  WriteLegacyFile(groups, Checkpoint(7, "payments", "a"));
  WriteFile(groups + "/orders/b.ckpt.tmp", "left by a crash");
  {
    FileGroupStore store(groups);
    EXPECT_EQ(Committed(store), (std::map<std::string, uint64_t>{
                                    {"orders/a", 5}, {"orders/b", 6}, {"payments/a", 7}}));
    ASSERT_THAT(store.Save(Checkpoint(8, "orders", "a")), IsOk());
  }
  // The log holds every group now; the old files are gone.
  EXPECT_FALSE(Env::Default()->GetFileSize(groups + "/orders/a.ckpt").ok());
  EXPECT_FALSE(Env::Default()->GetFileSize(groups + "/orders/b.ckpt").ok());
  EXPECT_FALSE(Env::Default()->GetFileSize(groups + "/orders/b.ckpt.tmp").ok());
  EXPECT_FALSE(Env::Default()->GetFileSize(groups + "/payments/a.ckpt").ok());
  FileGroupStore reopened(groups);
  EXPECT_EQ(Committed(reopened),
            (std::map<std::string, uint64_t>{{"orders/a", 8}, {"orders/b", 6}, {"payments/a", 7}}));
}

TEST(FileGroupStore, LogWinsOverAnOldPerGroupFile) {
  ::relay::testing::TempDir dir;
  const std::string groups = dir.Join("groups");
  FileGroupStore store(groups);
  ASSERT_THAT(store.Save(Checkpoint(9)), IsOk());
  WriteLegacyFile(groups, Checkpoint(4));
  EXPECT_EQ(Committed(store)["orders/payment-service"], 9u);
}

TEST(FileGroupStore, UnreadableOldPerGroupFileIsAnErrorNamingTheFile) {
  ::relay::testing::TempDir dir;
  FileGroupStore store(dir.Join("groups"));
  WriteLegacyFile(dir.Join("groups"), Checkpoint(7));
  const std::string path = dir.Join("groups/orders/payment-service.ckpt");
  WriteFile(path, std::string(5000, '\xff'));
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.status().message(), HasSubstr(path));
  EXPECT_THAT(all.status().message(), HasSubstr("move it aside"));
  EXPECT_LT(all.status().message().size(), 400u);  // no echo of the bytes
}

// A store that refuses one group, as JetStreamGroupStore fences one.
class FencingStore final : public GroupStore {
 public:
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() override { return saved_; }
  absl::Status Save(const GroupCheckpoint& c) override {
    if (c.group() == "fenced") return absl::AbortedError("written by another broker");
    saved_.push_back(c);
    return absl::OkStatus();
  }

 private:
  std::vector<GroupCheckpoint> saved_;
};

TEST(GroupStore, SaveAllGivesEachCheckpointItsOwnStatus) {
  FencingStore store;
  std::vector<absl::Status> statuses = store.SaveAll(
      {Checkpoint(1, "t", "a"), Checkpoint(2, "t", "fenced"), Checkpoint(3, "t", "b")});
  ASSERT_THAT(statuses, SizeIs(3));
  EXPECT_THAT(statuses[0], IsOk());
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kAborted, _));
  EXPECT_THAT(statuses[2], IsOk());
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store.LoadAll();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_THAT(*all, SizeIs(2));
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
