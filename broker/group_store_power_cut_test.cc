// Crash safety of FileGroupStore: the power goes at every step of a save
// (an append, a compaction, the move from per-group files to the log), and
// the store must then load every group at its state before or after that
// save, never fail, and save again.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/group_store.h"
#include "broker/storage/fault_injection_env.h"
#include "broker/storage/forwarding_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::testing::Each;

// Cuts the power (FaultInjectionEnv::SetFilesystemActive(false)) just
// before the `crash_at`-th operation that changes the file system (0: the
// first), so that operation and all later ones fail.
class CrashingEnv final : public ForwardingEnv {
 public:
  CrashingEnv(FaultInjectionEnv* base, int crash_at)
      : ForwardingEnv(base), faults_(base), crash_at_(crash_at) {}

  // Operations seen so far.
  int steps() const { return steps_; }

  absl::Status CreateDir(const std::string& path) override {
    Step();
    return ForwardingEnv::CreateDir(path);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path) override {
    Step();
    absl::StatusOr<std::unique_ptr<WritableFile>> file = ForwardingEnv::NewAppendableFile(path);
    if (!file.ok()) return file.status();
    return std::unique_ptr<WritableFile>(std::make_unique<File>(this, *std::move(file)));
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    Step();
    return ForwardingEnv::TruncateFile(path, size);
  }
  absl::Status RemoveFile(const std::string& path) override {
    Step();
    return ForwardingEnv::RemoveFile(path);
  }
  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    Step();
    return ForwardingEnv::RenameFile(from, to);
  }
  absl::Status SyncDir(const std::string& path) override {
    Step();
    return ForwardingEnv::SyncDir(path);
  }

 private:
  class File final : public WritableFile {
   public:
    File(CrashingEnv* env, std::unique_ptr<WritableFile> base)
        : env_(env), base_(std::move(base)) {}
    absl::Status Append(absl::string_view data) override {
      env_->Step();
      return base_->Append(data);
    }
    absl::Status Sync() override {
      env_->Step();
      return base_->Sync();
    }
    absl::Status Close() override { return base_->Close(); }
    uint64_t Size() const override { return base_->Size(); }

   private:
    CrashingEnv* const env_;
    const std::unique_ptr<WritableFile> base_;
  };

  void Step() {
    if (steps_++ == crash_at_) faults_->SetFilesystemActive(false);
  }

  FaultInjectionEnv* const faults_;
  const int crash_at_;
  int steps_ = 0;
};

GroupCheckpoint Checkpoint(const std::string& topic, const std::string& group, uint64_t committed) {
  GroupCheckpoint c;
  c.set_topic(topic);
  c.set_group(group);
  c.set_committed_offset(committed);
  return c;
}

std::vector<GroupCheckpoint> Batch(int groups, uint64_t committed) {
  std::vector<GroupCheckpoint> out;
  for (int i = 0; i < groups; ++i) out.push_back(Checkpoint(absl::StrCat("t", i), "g", committed));
  return out;
}

// How the data dir looks before the save that crashes.
enum class Before {
  kLog,            // groups at 1 in the log: the save appends
  kLogToCompact,   // the same, the log past its bound: the save compacts
  kPerGroupFiles,  // groups at 1 in files of an older broker: the save migrates
};

struct Scenario {
  Before before;
  bool torn;  // keep a random part of what was not synced, else none
};

class GroupStorePowerCutTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(GroupStorePowerCutTest, EveryGroupIsAtItsOldOrNewCheckpointAfterACrashAtAnyStep) {
  constexpr int kGroups = 5;
  FileGroupStoreOptions options;
  if (GetParam().before == Before::kLogToCompact) {
    // Records are of one size: the third pass of the same groups is past
    // twice their bytes, the second is not.
    options.compact_min_bytes = 10;
    options.compact_ratio = 2;
  }
  bool completed = false;
  for (int crash_at = 0; !completed && crash_at < 100; ++crash_at) {
    SCOPED_TRACE(absl::StrCat("power cut before step ", crash_at));
    ::relay::testing::TempDir dir;
    const std::string groups = dir.Join("groups");
    FaultInjectionEnv env(Env::Default());
    uint64_t one_pass_bytes = 0;
    {
      FileGroupStore setup(groups, &env, options);
      if (GetParam().before == Before::kPerGroupFiles) {
        ASSERT_THAT(env.CreateDir(groups), IsOk());
        for (const GroupCheckpoint& c : Batch(kGroups, 1)) {
          const std::string topic_dir = absl::StrCat(groups, "/", c.topic());
          ASSERT_THAT(env.CreateDir(topic_dir), IsOk());
          auto file = env.NewAppendableFile(absl::StrCat(topic_dir, "/g.ckpt"));
          ASSERT_THAT(file.status(), IsOk());
          ASSERT_THAT((*file)->Append(c.SerializeAsString()), IsOk());
          ASSERT_THAT((*file)->Sync(), IsOk());
        }
      } else {
        // Below the bound of 100 bytes at first; past it after the second.
        ASSERT_THAT(setup.SaveAll(Batch(kGroups, 1)), Each(IsOk()));
        absl::StatusOr<uint64_t> size = env.GetFileSize(setup.log_path());
        ASSERT_THAT(size.status(), IsOk());
        one_pass_bytes = *size;
        if (GetParam().before == Before::kLogToCompact) {
          ASSERT_THAT(setup.SaveAll(Batch(kGroups, 1)), Each(IsOk()));
        }
      }
    }

    CrashingEnv crashing(&env, crash_at);
    FileGroupStore store(groups, &crashing, options);
    std::vector<absl::Status> saved = store.SaveAll(Batch(kGroups, 2));
    completed = crashing.steps() <= crash_at;  // the power never went
    if (completed) {
      ASSERT_THAT(saved, Each(IsOk()));
    }
    if (completed && GetParam().before == Before::kLogToCompact) {
      absl::StatusOr<uint64_t> size = env.GetFileSize(store.log_path());
      ASSERT_THAT(size.status(), IsOk());
      EXPECT_EQ(*size, one_pass_bytes);  // compacted, not appended
    }
    // The power is out: nothing written but not synced survives (or, torn,
    // a random part of it).
    env.SetFilesystemActive(false);
    ASSERT_THAT(GetParam().torn ? env.DropRandomUnsyncedData(crash_at) : env.DropUnsyncedData(),
                IsOk());
    env.SetFilesystemActive(true);

    FileGroupStore reopened(groups, &env, options);
    absl::StatusOr<std::vector<GroupCheckpoint>> all = reopened.LoadAll();
    ASSERT_THAT(all.status(), IsOk());
    ASSERT_EQ(all->size(), static_cast<size_t>(kGroups));
    for (const GroupCheckpoint& c : *all) {
      if (saved[0].ok()) {
        EXPECT_EQ(c.committed_offset(), 2u) << c.topic();
      } else {
        EXPECT_TRUE(c.committed_offset() == 1 || c.committed_offset() == 2) << c.topic();
      }
    }
    // And the store goes on.
    ASSERT_THAT(reopened.SaveAll(Batch(kGroups, 3)), Each(IsOk()));
    all = FileGroupStore(groups, &env, options).LoadAll();
    ASSERT_THAT(all.status(), IsOk());
    ASSERT_EQ(all->size(), static_cast<size_t>(kGroups));
    for (const GroupCheckpoint& c : *all) EXPECT_EQ(c.committed_offset(), 3u) << c.topic();
    if (GetParam().before == Before::kPerGroupFiles) {
      EXPECT_FALSE(env.GetFileSize(absl::StrCat(groups, "/t0/g.ckpt")).ok());
    }
  }
  EXPECT_TRUE(completed) << "the save never completed within 100 steps";
}

std::string ScenarioName(const ::testing::TestParamInfo<Scenario>& info) {
  static constexpr const char* kBefore[] = {"Append", "Compaction", "Migration"};
  return absl::StrCat(kBefore[static_cast<int>(info.param.before)], info.param.torn ? "Torn" : "");
}

INSTANTIATE_TEST_SUITE_P(Steps, GroupStorePowerCutTest,
                         ::testing::Values(Scenario{Before::kLog, false},
                                           Scenario{Before::kLog, true},
                                           Scenario{Before::kLogToCompact, false},
                                           Scenario{Before::kLogToCompact, true},
                                           Scenario{Before::kPerGroupFiles, false},
                                           Scenario{Before::kPerGroupFiles, true}),
                         ScenarioName);

}  // namespace
}  // namespace relay::broker
