#include "broker/storage/fault_injection_env.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

namespace relay::broker {

class FaultInjectionEnv::File final : public WritableFile {
 public:
  File(FaultInjectionEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  absl::Status Append(absl::string_view data) override {
    absl::ReaderMutexLock io(&env_->io_mu_);
    absl::Status status = env_->CheckActive();
    if (!status.ok()) return status;
    {
      absl::MutexLock lock(&env_->mu_);
      if (!env_->write_error_.ok()) return env_->write_error_;
    }
    status = base_->Append(data);
    absl::MutexLock lock(&env_->mu_);
    auto it = env_->files_.find(path_);
    if (it != env_->files_.end()) it->second.size = base_->Size();
    if (status.ok()) ++env_->writes_;
    return status;
  }

  absl::Status Sync() override {
    {
      absl::MutexLock lock(&env_->mu_);
      ++env_->held_syncs_;
      env_->mu_.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &env_->hold_syncs_));
      --env_->held_syncs_;
    }
    absl::ReaderMutexLock io(&env_->io_mu_);
    absl::Status status = env_->CheckActive();
    if (!status.ok()) return status;
    {
      absl::MutexLock lock(&env_->mu_);
      if (!env_->sync_error_.ok()) return env_->sync_error_;
    }
    const uint64_t size = base_->Size();
    status = base_->Sync();
    if (!status.ok()) return status;
    absl::MutexLock lock(&env_->mu_);
    auto it = env_->files_.find(path_);
    if (it != env_->files_.end()) it->second.synced = std::max(it->second.synced, size);
    ++env_->syncs_;
    return absl::OkStatus();
  }

  absl::Status Close() override {
    // Closing cuts reserved space: a write, which a dead disk does not do.
    absl::ReaderMutexLock io(&env_->io_mu_);
    absl::Status status = env_->CheckActive();
    return status.ok() ? base_->Close() : status;
  }

  uint64_t Size() const override { return base_->Size(); }

  void SetReserveStep(uint64_t step) override { base_->SetReserveStep(step); }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
  const std::unique_ptr<WritableFile> base_;
};

FaultInjectionEnv::FaultInjectionEnv(Env* base) : base_(base) {}

void FaultInjectionEnv::HoldSyncs(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_syncs_ = hold;
}

int64_t FaultInjectionEnv::held_syncs() const {
  absl::MutexLock lock(&mu_);
  return held_syncs_;
}

absl::Status FaultInjectionEnv::CheckActive() const {
  if (active_) return absl::OkStatus();
  return absl::UnavailableError("power cut: the file system is inactive");
}

void FaultInjectionEnv::SetFilesystemActive(bool active) {
  absl::MutexLock io(&io_mu_);
  active_ = active;
}

void FaultInjectionEnv::SetWriteError(absl::Status error) {
  absl::MutexLock lock(&mu_);
  write_error_ = std::move(error);
}

void FaultInjectionEnv::SetSyncError(absl::Status error) {
  absl::MutexLock lock(&mu_);
  sync_error_ = std::move(error);
}

uint64_t FaultInjectionEnv::UnsyncedBytes(const std::string& path) const {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second.size - std::min(it->second.size, it->second.synced);
}

template <typename Keep>
absl::Status FaultInjectionEnv::Drop(Keep keep) {
  // Exclusive: no write or sync is half done while the disk is "cut".
  absl::MutexLock io(&io_mu_);
  absl::MutexLock lock(&mu_);
  for (auto& [path, state] : files_) {
    if (state.size <= state.synced) continue;
    uint64_t unsynced = state.size - state.synced;
    uint64_t target = state.synced + std::min<uint64_t>(keep(unsynced), unsynced);
    // Space the file reserved past its appends (WritableFile::SetReserveStep)
    // survives the cut as zeros, after the kept bytes, as on a real disk.
    absl::StatusOr<uint64_t> length = base_->GetFileSize(path);
    if (!length.ok()) return length.status();
    absl::Status status = base_->TruncateFile(path, target);
    if (status.ok() && *length > state.size) status = base_->TruncateFile(path, *length);
    if (!status.ok()) return status;
    state.size = target;
    state.synced = target;
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::DropUnsyncedData() {
  return Drop([](uint64_t) { return uint64_t{0}; });
}

absl::Status FaultInjectionEnv::DropUnsyncedDataKeeping(uint64_t bytes) {
  return Drop([bytes](uint64_t) { return bytes; });
}

absl::Status FaultInjectionEnv::DropRandomUnsyncedData(uint32_t seed) {
  std::mt19937_64 rng(seed);
  return Drop([&rng](uint64_t unsynced) { return rng() % (unsynced + 1); });
}

absl::Status FaultInjectionEnv::CreateDir(const std::string& path) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  return status.ok() ? base_->CreateDir(path) : status;
}

absl::StatusOr<std::vector<std::string>> FaultInjectionEnv::ListDir(const std::string& path) {
  return base_->ListDir(path);
}

bool FaultInjectionEnv::IsDirectory(const std::string& path) { return base_->IsDirectory(path); }

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewAppendableFile(
    const std::string& path) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  if (!status.ok()) return status;
  const bool existed = base_->GetFileSize(path).ok();
  absl::StatusOr<std::unique_ptr<WritableFile>> file = base_->NewAppendableFile(path);
  if (!file.ok()) return file.status();
  const uint64_t size = (*file)->Size();
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = files_.try_emplace(path);
    if (inserted) it->second.synced = existed ? size : 0;
    it->second.size = size;
  }
  return std::unique_ptr<WritableFile>(std::make_unique<File>(this, path, *std::move(file)));
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>> FaultInjectionEnv::NewRandomAccessFile(
    const std::string& path) {
  return base_->NewRandomAccessFile(path);
}

absl::StatusOr<uint64_t> FaultInjectionEnv::GetFileSize(const std::string& path) {
  return base_->GetFileSize(path);
}

absl::Status FaultInjectionEnv::TruncateFile(const std::string& path, uint64_t size) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  if (status.ok()) status = base_->TruncateFile(path, size);
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto it = files_.find(path);
  if (it != files_.end()) it->second.size = it->second.synced = size;  // TruncateFile syncs
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  if (status.ok()) status = base_->RemoveFile(path);
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  files_.erase(path);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  if (status.ok()) status = base_->RenameFile(from, to);
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto it = files_.find(from);
  if (it == files_.end()) {
    files_.erase(to);
  } else {
    FileState state = it->second;
    files_.erase(it);
    files_[to] = state;
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::SyncDir(const std::string& path) {
  absl::ReaderMutexLock io(&io_mu_);
  absl::Status status = CheckActive();
  return status.ok() ? base_->SyncDir(path) : status;
}

absl::StatusOr<std::unique_ptr<FileLock>> FaultInjectionEnv::LockFile(const std::string& path) {
  return base_->LockFile(path);
}

}  // namespace relay::broker
