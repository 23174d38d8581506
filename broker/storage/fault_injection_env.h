#ifndef RELAY_BROKER_STORAGE_FAULT_INJECTION_ENV_H_
#define RELAY_BROKER_STORAGE_FAULT_INJECTION_ENV_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/storage/env.h"

namespace relay::broker {

// FaultInjectionEnv wraps an Env for tests, as LevelDB's fault-injection
// test does: it remembers, per file written through it, how many bytes were
// synced, so that a test can simulate a power cut, and it fails writes or
// syncs on demand.
//
//   FaultInjectionEnv env(Env::Default());
//   ... run the log on &env, note what it acknowledged ...
//   env.SetFilesystemActive(false);  // the power goes: nothing more reaches disk
//   log.reset();
//   ASSERT_THAT(env.DropUnsyncedData(), IsOk());  // what the disk really had
//   env.SetFilesystemActive(true);
//   ... reopen on &env and check every acknowledged event is there ...
//
// Files are tracked by path from the moment they are opened for appending;
// a file that existed before counts as synced up to its size then. Creating,
// renaming and removing files are taken as durable at once (Env::Default
// syncs the directory). Thread-safe.
class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(Env* base);

  // While inactive, every write, sync, truncation, creation, rename and
  // removal fails with UNAVAILABLE and changes nothing. Deactivating waits
  // for the operations in progress, so it is a clean cut.
  void SetFilesystemActive(bool active);

  // Truncates every tracked file to its size at its last successful sync.
  // A file that reserved space past its appends keeps its length: what was
  // cut off and the reserved space read as zeros, as after a real power cut
  // (WritableFile::SetReserveStep).
  absl::Status DropUnsyncedData();

  // Same, but keeps the first `bytes` of each file's unsynced tail: a write
  // torn by the cut.
  absl::Status DropUnsyncedDataKeeping(uint64_t bytes);

  // Same, keeping a random prefix of each unsynced tail (seeded).
  absl::Status DropRandomUnsyncedData(uint32_t seed);

  // Until reset to OK, appends (resp. syncs) fail with `error` and change
  // nothing.
  void SetWriteError(absl::Status error);
  void SetSyncError(absl::Status error);

  // While held, every sync waits (before doing anything) until released:
  // a test holds a writer inside its fsync. held_syncs(): how many wait now.
  void HoldSyncs(bool hold);
  int64_t held_syncs() const;

  // Successful appends and syncs so far.
  int64_t writes() const { return writes_.load(); }
  int64_t syncs() const { return syncs_.load(); }

  // Unsynced bytes of tracked file `path` (0 if untracked).
  uint64_t UnsyncedBytes(const std::string& path) const;

  // Env.
  absl::Status CreateDir(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  bool IsDirectory(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override;
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override;
  absl::Status TruncateFile(const std::string& path, uint64_t size) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status RenameFile(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

 private:
  class File;
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
  };

  // OK while active, else UNAVAILABLE. REQUIRES: io_mu_ held (shared).
  absl::Status CheckActive() const ABSL_SHARED_LOCKS_REQUIRED(io_mu_);
  // Truncates each tracked file to synced + keep(unsynced).
  template <typename Keep>
  absl::Status Drop(Keep keep);

  Env* const base_;
  // Held shared by every mutating operation, exclusively to cut the power.
  mutable absl::Mutex io_mu_;
  bool active_ ABSL_GUARDED_BY(io_mu_) = true;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, FileState> files_ ABSL_GUARDED_BY(mu_);
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);
  absl::Status sync_error_ ABSL_GUARDED_BY(mu_);
  bool hold_syncs_ ABSL_GUARDED_BY(mu_) = false;
  int64_t held_syncs_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> syncs_{0};
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_FAULT_INJECTION_ENV_H_
