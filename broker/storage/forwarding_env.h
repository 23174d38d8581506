#ifndef RELAY_BROKER_STORAGE_FORWARDING_ENV_H_
#define RELAY_BROKER_STORAGE_FORWARDING_ENV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/storage/env.h"

namespace relay::broker {

// An Env that passes every call to `base`: tests derive from it and override
// the one call whose failure they inject.
//
//   class RenameFailsEnv final : public ForwardingEnv {
//    public:
//     using ForwardingEnv::ForwardingEnv;
//     absl::Status RenameFile(const std::string&, const std::string&) override {
//       return absl::InternalError("no");
//     }
//   };
class ForwardingEnv : public Env {
 public:
  explicit ForwardingEnv(Env* base) : base_(base) {}

  absl::Status CreateDir(const std::string& path) override { return base_->CreateDir(path); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }
  bool IsDirectory(const std::string& path) override { return base_->IsDirectory(path); }
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path) override {
    return base_->NewAppendableFile(path);
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    return base_->NewRandomAccessFile(path);
  }
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override {
    return base_->GetFileSize(path);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    return base_->TruncateFile(path, size);
  }
  absl::Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    return base_->RenameFile(from, to);
  }
  absl::Status SyncDir(const std::string& path) override { return base_->SyncDir(path); }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return base_->LockFile(path);
  }

 protected:
  Env* base() const { return base_; }

 private:
  Env* const base_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_FORWARDING_ENV_H_
