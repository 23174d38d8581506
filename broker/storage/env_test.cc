#include "broker/storage/env.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "broker/storage/fault_injection_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string ReadAll(Env* env, const std::string& path) {
  std::string contents;
  EXPECT_THAT(ReadFileToString(env, path, &contents), IsOk());
  return contents;
}

TEST(PosixEnv, AppendsReadsAndReopensAtTheEnd) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.Join("f");
  {
    auto file = env->NewAppendableFile(path);
    ASSERT_THAT(file, IsOk());
    ASSERT_THAT((*file)->Append("hello "), IsOk());
    ASSERT_THAT((*file)->Sync(), IsOk());
    EXPECT_EQ((*file)->Size(), 6u);
    ASSERT_THAT((*file)->Close(), IsOk());
  }
  auto file = env->NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->Size(), 6u);
  ASSERT_THAT((*file)->Append("world"), IsOk());
  EXPECT_EQ(ReadAll(env, path), "hello world");
  EXPECT_THAT(env->GetFileSize(path), IsOkAndHolds(11u));

  auto reader = env->NewRandomAccessFile(path);
  ASSERT_THAT(reader, IsOk());
  char scratch[16];
  EXPECT_THAT((*reader)->Read(6, 16, scratch), IsOkAndHolds("world"));  // short at the end
  EXPECT_THAT((*reader)->Read(100, 4, scratch), IsOkAndHolds(""));
}

TEST(PosixEnv, ReservesSpaceAheadAndCloseCutsIt) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.Join("f");
  auto file = env->NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  (*file)->SetReserveStep(4096);
  ASSERT_THAT((*file)->Append("hello"), IsOk());
  absl::StatusOr<uint64_t> length = env->GetFileSize(path);
  ASSERT_THAT(length, IsOk());
  if (*length == 5) GTEST_SKIP() << "no fallocate on " << dir.path();
  // Reserved: the step past the appended bytes, zeros, not in Size().
  EXPECT_EQ(*length, 5u + 4096u);
  EXPECT_EQ((*file)->Size(), 5u);
  EXPECT_EQ(ReadAll(env, path), "hello" + std::string(4096, '\0'));
  // Appends inside the reserved space leave the length alone; one past it
  // reserves the next step.
  ASSERT_THAT((*file)->Append(std::string(4000, 'a')), IsOk());
  EXPECT_THAT(env->GetFileSize(path), IsOkAndHolds(5u + 4096u));
  ASSERT_THAT((*file)->Append(std::string(200, 'b')), IsOk());
  EXPECT_THAT(env->GetFileSize(path), IsOkAndHolds(4205u + 4096u));
  EXPECT_EQ((*file)->Size(), 4205u);
  ASSERT_THAT((*file)->Sync(), IsOk());
  ASSERT_THAT((*file)->Close(), IsOk());
  EXPECT_EQ(ReadAll(env, path), "hello" + std::string(4000, 'a') + std::string(200, 'b'));
}

TEST(PosixEnv, ReservesSmallStepsFirst) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.Join("f");
  auto file = env->NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  (*file)->SetReserveStep(uint64_t{1} << 20);
  ASSERT_THAT((*file)->Append("x"), IsOk());
  absl::StatusOr<uint64_t> length = env->GetFileSize(path);
  ASSERT_THAT(length, IsOk());
  if (*length == 1) GTEST_SKIP() << "no fallocate on " << dir.path();
  constexpr uint64_t kKiB = 1024;
  EXPECT_EQ(*length, 1 + 64 * kKiB);
  // Each step doubles, up to the one asked for.
  uint64_t expected = 1 + 64 * kKiB;
  for (uint64_t step : {128 * kKiB, 256 * kKiB, 512 * kKiB, 1024 * kKiB, 1024 * kKiB}) {
    const uint64_t fill = expected - (*file)->Size() + 1;  // one byte past the reserved end
    ASSERT_THAT((*file)->Append(std::string(fill, 'y')), IsOk());
    expected = (*file)->Size() + step;
    EXPECT_THAT(env->GetFileSize(path), IsOkAndHolds(expected)) << step;
  }
}

TEST(PosixEnv, ManagesDirectoriesAndFiles) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string sub = dir.Join("sub");
  ASSERT_THAT(env->CreateDir(sub), IsOk());
  ASSERT_THAT(env->CreateDir(sub), IsOk());  // already there: fine
  EXPECT_TRUE(env->IsDirectory(sub));
  ASSERT_THAT(env->NewAppendableFile(sub + "/a"), IsOk());
  ASSERT_THAT(env->NewAppendableFile(sub + "/b"), IsOk());
  EXPECT_THAT(env->ListDir(sub), IsOkAndHolds(UnorderedElementsAre("a", "b")));
  EXPECT_FALSE(env->IsDirectory(sub + "/a"));

  ASSERT_THAT(env->RenameFile(sub + "/a", sub + "/c"), IsOk());
  ASSERT_THAT(env->RemoveFile(sub + "/b"), IsOk());
  EXPECT_THAT(env->ListDir(sub), IsOkAndHolds(UnorderedElementsAre("c")));
  EXPECT_THAT(env->RemoveFile(sub + "/b"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("/b")));
  EXPECT_THAT(env->NewRandomAccessFile(sub + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  ASSERT_THAT(env->SyncDir(sub), IsOk());
}

TEST(PosixEnv, TruncatesFiles) {
  TempDir dir;
  Env* env = Env::Default();
  auto file = env->NewAppendableFile(dir.Join("t"));
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("0123456789"), IsOk());
  ASSERT_THAT(env->TruncateFile(dir.Join("t"), 4), IsOk());
  EXPECT_EQ(ReadAll(env, dir.Join("t")), "0123");
}

TEST(PosixEnv, LockIsExclusiveUntilReleased) {
  TempDir dir;
  Env* env = Env::Default();
  auto lock = env->LockFile(dir.Join("LOCK"));
  ASSERT_THAT(lock, IsOk());
  EXPECT_THAT(env->LockFile(dir.Join("LOCK")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("locked")));
  lock->reset();
  EXPECT_THAT(env->LockFile(dir.Join("LOCK")), IsOk());
}

TEST(FaultInjectionEnv, DropUnsyncedDataKeepsOnlySyncedBytes) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  const std::string path = dir.Join("f");
  auto file = env.NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("synced"), IsOk());
  ASSERT_THAT((*file)->Sync(), IsOk());
  ASSERT_THAT((*file)->Append("-lost"), IsOk());
  EXPECT_EQ(env.UnsyncedBytes(path), 5u);
  EXPECT_EQ(env.syncs(), 1);

  env.SetFilesystemActive(false);
  EXPECT_THAT((*file)->Append("x"), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("power")));
  EXPECT_THAT((*file)->Sync(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("power")));
  ASSERT_THAT(env.DropUnsyncedData(), IsOk());
  env.SetFilesystemActive(true);
  EXPECT_EQ(ReadAll(&env, path), "synced");
  EXPECT_EQ(env.UnsyncedBytes(path), 0u);
}

TEST(FaultInjectionEnv, DropKeepingLeavesATornTail) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  const std::string path = dir.Join("f");
  auto file = env.NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("abc"), IsOk());
  ASSERT_THAT((*file)->Sync(), IsOk());
  ASSERT_THAT((*file)->Append("defgh"), IsOk());
  ASSERT_THAT(env.DropUnsyncedDataKeeping(2), IsOk());
  EXPECT_EQ(ReadAll(&env, path), "abcde");
}

TEST(FaultInjectionEnv, ACutKeepsReservedSpaceAsZeros) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  const std::string path = dir.Join("f");
  auto file = env.NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  (*file)->SetReserveStep(4096);
  ASSERT_THAT((*file)->Append("synced"), IsOk());
  ASSERT_THAT((*file)->Sync(), IsOk());
  ASSERT_THAT((*file)->Append("lost"), IsOk());
  absl::StatusOr<uint64_t> length = env.GetFileSize(path);
  ASSERT_THAT(length, IsOk());
  if (*length == 10) GTEST_SKIP() << "no fallocate on " << dir.path();
  env.SetFilesystemActive(false);
  // A dead disk cuts nothing: closing fails and the reserved space stays.
  EXPECT_THAT((*file)->Close(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("power cut")));
  file->reset();
  ASSERT_THAT(env.DropUnsyncedData(), IsOk());
  env.SetFilesystemActive(true);
  EXPECT_EQ(ReadAll(&env, path), "synced" + std::string(*length - 6, '\0'));
}

TEST(FaultInjectionEnv, PreexistingFilesCountAsSynced) {
  TempDir dir;
  const std::string path = dir.Join("old");
  {
    auto file = Env::Default()->NewAppendableFile(path);
    ASSERT_THAT(file, IsOk());
    ASSERT_THAT((*file)->Append("before"), IsOk());
  }
  FaultInjectionEnv env(Env::Default());
  auto file = env.NewAppendableFile(path);
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("+after"), IsOk());
  ASSERT_THAT(env.DropUnsyncedData(), IsOk());
  EXPECT_EQ(ReadAll(&env, path), "before");
}

TEST(FaultInjectionEnv, InjectedErrorsFailWithoutWriting) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  auto file = env.NewAppendableFile(dir.Join("f"));
  ASSERT_THAT(file, IsOk());
  env.SetWriteError(absl::DataLossError("disk on fire"));
  EXPECT_THAT((*file)->Append("x"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("fire")));
  env.SetWriteError(absl::OkStatus());
  ASSERT_THAT((*file)->Append("y"), IsOk());
  env.SetSyncError(absl::InternalError("EIO"));
  EXPECT_THAT((*file)->Sync(), StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO")));
  EXPECT_EQ(env.UnsyncedBytes(dir.Join("f")), 1u);
  EXPECT_EQ(ReadAll(&env, dir.Join("f")), "y");
}

TEST(FaultInjectionEnv, TracksRenamesAndRemovals) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  auto file = env.NewAppendableFile(dir.Join("a"));
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("unsynced"), IsOk());
  ASSERT_THAT(env.RenameFile(dir.Join("a"), dir.Join("b")), IsOk());
  EXPECT_EQ(env.UnsyncedBytes(dir.Join("b")), 8u);
  ASSERT_THAT(env.RemoveFile(dir.Join("b")), IsOk());
  EXPECT_THAT(env.DropUnsyncedData(), IsOk());  // nothing left to truncate
}

}  // namespace
}  // namespace relay::broker
