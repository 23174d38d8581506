// Env::Default(): the POSIX file system.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/storage/env.h"

namespace relay::broker {
namespace {

absl::Status PosixError(absl::string_view op, absl::string_view path, int error_number) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(op, " ", path));
}

absl::Status SyncFd(int fd, absl::string_view path, bool data_only) {
  int rc;
  do {
    rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return PosixError(data_only ? "fdatasync" : "fsync", path, errno);
  return absl::OkStatus();
}

absl::Status SyncDirPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PosixError("open dir", path, errno);
  absl::Status status = SyncFd(fd, path, /*data_only=*/false);
  ::close(fd);
  return status;
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size), length_(size) {}
  ~PosixWritableFile() override {
    // Like a crash, leaves reserved space in place; recovery skips it.
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(absl::string_view data) override {
    if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("closed file ", path_));
    Reserve(size_ + data.size());
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("pwrite", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    length_ = std::max(length_, size_);
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("closed file ", path_));
    return SyncFd(fd_, path_, /*data_only=*/true);
  }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    if (length_ > size_) {
      // Best effort: zeros left behind are cut by the next recovery, and a
      // segment that cannot shed them must not stop the log.
      int rc;
      do {
        rc = ::ftruncate(fd_, static_cast<off_t>(size_));
      } while (rc != 0 && errno == EINTR);
    }
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return PosixError("close", path_, errno);
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_; }

  void SetReserveStep(uint64_t step) override { reserve_step_ = step; }

 private:
  // Makes the file at least `end` bytes long by reserving the next step when
  // `end` passes what is reserved. A failure (no fallocate on this file
  // system, no space for a whole step) stops reserving; the append decides.
  void Reserve(uint64_t end) {
    if (reserve_step_ == 0 || end <= length_) return;
    // Small steps first, doubling: a quiet file (one of a thousand quiet
    // topics) holds 64 KiB, not a whole step.
    next_step_ = std::min(next_step_ == 0 ? kFirstStep : next_step_ * 2, reserve_step_);
    const uint64_t target = end + next_step_;
    int rc;
    do {
      // Mode 0: allocate and extend the length; the new bytes read as zeros.
      rc = ::fallocate(fd_, 0, static_cast<off_t>(length_), static_cast<off_t>(target - length_));
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
      length_ = target;
      return;
    }
    reserve_step_ = 0;
    struct stat st;  // a failed fallocate may still have reserved a part
    if (::fstat(fd_, &st) == 0) length_ = std::max(size_, static_cast<uint64_t>(st.st_size));
  }

  const std::string path_;
  int fd_;
  uint64_t size_;    // bytes appended (and there when opened)
  uint64_t length_;  // the file's length: size_ plus reserved space
  static constexpr uint64_t kFirstStep = uint64_t{64} << 10;

  uint64_t reserve_step_ = 0;
  uint64_t next_step_ = 0;  // the last step reserved; 0 before the first
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n, char* scratch) const override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, scratch + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return PosixError("pread", path_, errno);
      }
      if (r == 0) break;  // end of file
      got += static_cast<size_t>(r);
    }
    return absl::string_view(scratch, got);
  }

 private:
  const std::string path_;
  const int fd_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  const int fd_;
};

class PosixEnv final : public Env {
 public:
  absl::Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) {
      if (errno == EEXIST && IsDirectory(path)) return absl::OkStatus();
      return PosixError("mkdir", path, errno);
    }
    return SyncDirPath(DirName(path));
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return PosixError("opendir", path, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* entry = ::readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) {
        continue;
      }
      names.emplace_back(entry->d_name);
    }
    int error_number = errno;
    ::closedir(dir);
    if (error_number != 0) return PosixError("readdir", path, error_number);
    return names;
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path) override {
    bool created = false;
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      created = fd >= 0;
    }
    if (fd < 0) return PosixError("open for append", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int error_number = errno;
      ::close(fd);
      return PosixError("fstat", path, error_number);
    }
    auto file = std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size));
    if (created) {
      // The new name must survive a power cut before anything written to the
      // file can count as durable.
      absl::Status status = SyncDirPath(DirName(path));
      if (!status.ok()) return status;
    }
    return file;
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open for read", path, errno);
    return std::make_unique<PosixRandomAccessFile>(path, fd);
  }

  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open for truncate", path, errno);
    absl::Status status;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      status = PosixError("ftruncate", path, errno);
    } else {
      status = SyncFd(fd, path, /*data_only=*/false);
    }
    ::close(fd);
    return status;
  }

  absl::Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
    return SyncDirPath(DirName(path));
  }

  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return PosixError("rename", absl::StrCat(from, " to ", to), errno);
    }
    std::string to_dir = DirName(to);
    absl::Status status = SyncDirPath(to_dir);
    std::string from_dir = DirName(from);
    if (status.ok() && from_dir != to_dir) status = SyncDirPath(from_dir);
    return status;
  }

  absl::Status SyncDir(const std::string& path) override { return SyncDirPath(path); }

  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return PosixError("open lock", path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int error_number = errno;
      ::close(fd);
      if (error_number == EWOULDBLOCK) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, " is locked: another event log uses this directory"));
      }
      return PosixError("flock", path, error_number);
    }
    return std::make_unique<PosixFileLock>(fd);
  }
};

}  // namespace

Env* Env::Default() {
  static Env* const env = new PosixEnv();
  return env;
}

}  // namespace relay::broker
