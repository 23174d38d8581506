#ifndef RELAY_BROKER_STORAGE_ENV_H_
#define RELAY_BROKER_STORAGE_ENV_H_

// Env is the storage's seam to the file system, after LevelDB's: every file
// operation of the event log goes through it, so that tests can wrap it
// (FaultInjectionEnv) to simulate a power cut or a failing disk.
//
//   Env* env = Env::Default();
//   absl::StatusOr<std::unique_ptr<WritableFile>> f = env->NewAppendableFile(path);
//   if (f.ok()) status = (*f)->Append(bytes);
//   if (status.ok()) status = (*f)->Sync();  // bytes survive a power cut now

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace relay::broker {

// A file open for appending. Not thread-safe: one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;

  // Writes `data` at the end of the file. Not durable before Sync().
  virtual absl::Status Append(absl::string_view data) = 0;

  // Makes every byte appended so far durable (fdatasync).
  virtual absl::Status Sync() = 0;

  // Closes the file, cutting any reserved space (below; best effort: zeros
  // a failed cut leaves are a clean end to readers); later calls fail.
  // Does not sync.
  virtual absl::Status Close() = 0;

  // Size of the file: its size when opened plus every byte appended since.
  // Reserved space does not count.
  virtual uint64_t Size() const = 0;

  // From now on, keeps disk space reserved past the appended bytes, `step`
  // bytes at a time (0 stops reserving more; the first steps are smaller,
  // 64 KiB doubling up to `step`, so that a file written little holds
  // little). An append into reserved space leaves the file's length as it
  // is, so its Sync() has no new length to commit (the first write into
  // each reserved block still marks it written): on ext4 that makes an
  // fdatasync of a small append about a third cheaper
  // (docs/STORAGE.md#reserved-space). The reserved bytes read as zeros and
  // stay in the file until Close() cuts them, or until the next recovery
  // after a crash: a reader of such a file must take a run of zeros to its
  // end as its end. Best effort: a file system that cannot reserve space
  // just gets appends. The default does nothing.
  virtual void SetReserveStep(uint64_t step) { (void)step; }
};

// A file open for positional reads. Thread-safe.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;

  // Reads up to `n` bytes at `offset` into `scratch` (which must hold `n`
  // bytes) and returns a view of what was read: shorter than `n` only at the
  // end of the file. The view may point into `scratch`.
  virtual absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n,
                                                 char* scratch) const = 0;
};

// An exclusive lock on a file, held until the object is destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// The file system. Implementations are thread-safe.
class Env {
 public:
  virtual ~Env() = default;

  // The POSIX file system. Creating, renaming and removing files and
  // directories fsyncs the parent directory before returning, so that the
  // change survives a power cut. Never deleted.
  static Env* Default();

  // Creates directory `path` (its parent must exist). OK if it already exists.
  virtual absl::Status CreateDir(const std::string& path) = 0;

  // Names of the entries of directory `path`, without "." and "..", unsorted.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;

  // Whether `path` exists and is a directory.
  virtual bool IsDirectory(const std::string& path) = 0;

  // Opens `path` for appending at its end, creating it empty if missing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path) = 0;

  // Opens existing file `path` for reading.
  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;

  // Size of existing file `path` in bytes.
  virtual absl::StatusOr<uint64_t> GetFileSize(const std::string& path) = 0;

  // Cuts existing file `path` to `size` bytes and makes that durable.
  virtual absl::Status TruncateFile(const std::string& path, uint64_t size) = 0;

  // Removes file `path`.
  virtual absl::Status RemoveFile(const std::string& path) = 0;

  // Renames `from` to `to`, replacing `to` if it exists.
  virtual absl::Status RenameFile(const std::string& from, const std::string& to) = 0;

  // Makes the entries of directory `path` durable (fsync of the directory).
  virtual absl::Status SyncDir(const std::string& path) = 0;

  // Takes an exclusive advisory lock on `path` (created if missing), for one
  // process and one owner at a time. FAILED_PRECONDITION if already held.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
};

// Reads the whole of file `path` into `*contents`.
absl::Status ReadFileToString(Env* env, const std::string& path, std::string* contents);

// The directory part of `path` ("." when it has none).
std::string DirName(absl::string_view path);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_ENV_H_
