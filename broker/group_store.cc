#include "broker/group_store.h"

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/storage/record.h"
#include "common/log.h"

namespace relay::broker {

absl::StatusOr<GroupCheckpoint> DecodeCheckpoint(absl::string_view bytes) {
  GroupCheckpoint c;
  if (!c.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a group checkpoint (", bytes.size(), " bytes that do not parse)"));
  }
  if (c.topic().empty() || c.group().empty()) {
    return absl::InvalidArgumentError("group checkpoint without a topic or group name");
  }
  if (c.acked_runs_size() % 2 != 0) {
    return absl::InvalidArgumentError("group checkpoint with an odd number of acked_runs values");
  }
  // The runs must stay inside the offset space.
  uint64_t at = c.committed_offset();
  for (uint64_t v : c.acked_runs()) {
    if (v > UINT64_MAX - at) {
      return absl::InvalidArgumentError("group checkpoint with acked runs past the last offset");
    }
    at += v;
  }
  return c;
}

std::vector<absl::Status> GroupStore::SaveAll(const std::vector<GroupCheckpoint>& checkpoints) {
  std::vector<absl::Status> out;
  out.reserve(checkpoints.size());
  for (const GroupCheckpoint& c : checkpoints) out.push_back(Save(c));
  return out;
}

namespace {

uint64_t RecordBytes(const std::string& payload) { return kRecordHeaderBytes + payload.size(); }

// Whether a whole record (its CRC matching) starts anywhere in `data` after
// `at`.
bool AnyRecordAfter(absl::string_view data, size_t at) {
  for (size_t p = at + 1; p + kRecordHeaderBytes <= data.size(); ++p) {
    // No record's header is all zeros (record.h); skipping them keeps the
    // reader's zero-tail scan short.
    if (data.substr(p, kRecordHeaderBytes).find_first_not_of('\0') == absl::string_view::npos) {
      continue;
    }
    RecordReader reader(data.substr(p));
    absl::string_view payload;
    if (reader.Next(&payload)) return true;
  }
  return false;
}

// Whether the bad record at `at`, where `reader` stopped, is a torn tail:
// what a crash during the last append leaves, never bytes acknowledged.
bool IsTornTail(absl::string_view data, size_t at, RecordReader::Stop stop) {
  if (stop == RecordReader::Stop::kTornHeader) return true;  // under 8 bytes left
  // No record is written longer than the limit, and a torn append only
  // leaves zeros in place of bytes, which cannot make a length longer: a
  // flipped bit of an acknowledged record.
  if (stop == RecordReader::Stop::kBadLength) return false;
  // A crash during an append leaves of its records what reached the disk:
  // a file system may grow a file before the data arrives, so any block of
  // them may read as zeros, the end as well as one before it. Whatever it
  // left, no whole record follows the torn one. One that does is damage
  // amid acknowledged records (or a batch whose middle block alone went
  // missing, which cannot be told apart from that), which is kept for the
  // operator to judge.
  return !AnyRecordAfter(data, at);
}

absl::Status LegacyFileError(const std::string& path, const absl::Status& status) {
  return absl::DataLossError(absl::StrCat(
      "group checkpoint ", path, " is unreadable: ", status.message(),
      ". Restore it from a backup, or move it aside to recreate the group from its "
      "start position when it next subscribes (which redelivers what the topic retains)"));
}

}  // namespace

FileGroupStore::FileGroupStore(std::string dir, Env* env, FileGroupStoreOptions options)
    : dir_(std::move(dir)),
      log_path_(absl::StrCat(dir_, "/", kLogName)),
      env_(env),
      options_(options) {}

FileGroupStore::~FileGroupStore() = default;

absl::Status FileGroupStore::LoadLocked() {
  loaded_ = false;
  writer_.reset();
  live_.clear();
  live_bytes_ = 0;
  log_bytes_ = 0;
  tail_dirty_ = false;
  migrate_ = false;
  legacy_files_.clear();
  if (!env_->IsDirectory(dir_)) {
    loaded_ = true;
    return absl::OkStatus();
  }

  // The log: the last record of a group wins.
  if (absl::StatusOr<uint64_t> size = env_->GetFileSize(log_path_); size.ok()) {
    std::string data;
    if (absl::Status s = ReadFileToString(env_, log_path_, &data); !s.ok()) return s;
    RecordReader reader(data);
    absl::string_view payload;
    while (reader.Next(&payload)) {
      absl::StatusOr<GroupCheckpoint> c = DecodeCheckpoint(payload);
      if (!c.ok()) {
        return absl::DataLossError(absl::StrCat(
            "group checkpoint log ", log_path_, ": the record at byte ", reader.record_start(),
            " is not a group checkpoint (", c.status().message(),
            "). Restore the file from a backup, or cut it at that byte (truncate -s ",
            reader.record_start(), ") to go back to the groups' earlier checkpoints"));
      }
      live_[{c->topic(), c->group()}] = std::string(payload);
    }
    log_bytes_ = reader.valid_end();
    if (reader.stop() != RecordReader::Stop::kEnd) {
      if (!IsTornTail(data, reader.valid_end(), reader.stop())) {
        return absl::DataLossError(absl::StrCat(
            "group checkpoint log ", log_path_, " is corrupt at byte ", reader.valid_end(), " (",
            RecordReader::StopName(reader.stop()), ", ", data.size() - reader.valid_end(),
            " bytes from there to the end). Restore the file from a backup, or cut it at that "
            "byte (truncate -s ",
            reader.valid_end(),
            ") to go back to the groups' earlier checkpoints (which redelivers what they had "
            "acknowledged since)"));
      }
      tail_dirty_ = true;
      RELAY_LOG(Warn, "group checkpoint log: torn tail ignored, cut off before the next write",
                {{"file", log_path_},
                 {"problem", std::string(RecordReader::StopName(reader.stop()))},
                 {"kept_bytes", absl::StrCat(reader.valid_end())},
                 {"cut_bytes", absl::StrCat(data.size() - reader.valid_end())}});
    }
  } else if (!absl::IsNotFound(size.status())) {
    return size.status();
  }

  // Older brokers' per-group files, for the groups the log does not have.
  absl::StatusOr<std::vector<std::string>> topics = env_->ListDir(dir_);
  if (!topics.ok()) return topics.status();
  for (const std::string& topic : *topics) {
    const std::string topic_dir = absl::StrCat(dir_, "/", topic);
    if (!env_->IsDirectory(topic_dir)) continue;
    absl::StatusOr<std::vector<std::string>> files = env_->ListDir(topic_dir);
    if (!files.ok()) return files.status();
    for (const std::string& file : *files) {
      const std::string path = absl::StrCat(topic_dir, "/", file);
      if (absl::EndsWith(file, ".ckpt.tmp")) legacy_files_.push_back(path);  // a save's leftover
      if (!absl::EndsWith(file, ".ckpt")) continue;
      legacy_files_.push_back(path);
      std::string bytes;
      absl::Status read = ReadFileToString(env_, path, &bytes);
      absl::StatusOr<GroupCheckpoint> c =
          read.ok() ? DecodeCheckpoint(bytes) : absl::StatusOr<GroupCheckpoint>(read);
      if (!c.ok()) return LegacyFileError(path, c.status());
      live_.try_emplace({c->topic(), c->group()}, std::move(bytes));
    }
  }
  migrate_ = !legacy_files_.empty();
  for (const auto& [key, payload] : live_) live_bytes_ += RecordBytes(payload);
  loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GroupCheckpoint>> FileGroupStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = LoadLocked(); !s.ok()) return s;
  std::vector<GroupCheckpoint> out;
  out.reserve(live_.size());
  for (const auto& [key, payload] : live_) {
    // Decoded once already: parses.
    out.emplace_back().ParseFromString(payload);
  }
  return out;
}

absl::Status FileGroupStore::Save(const GroupCheckpoint& checkpoint) {
  return SaveAll({checkpoint})[0];
}

std::vector<absl::Status> FileGroupStore::SaveAll(const std::vector<GroupCheckpoint>& checkpoints) {
  std::vector<absl::Status> out(checkpoints.size());
  absl::MutexLock lock(&mu_);
  if (!loaded_) {
    if (absl::Status s = LoadLocked(); !s.ok()) return std::vector<absl::Status>(out.size(), s);
  }
  // The batch's records, and each group's last checkpoint in it.
  std::string records;
  std::map<Key, std::string> batch;
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    std::string payload = checkpoints[i].SerializeAsString();
    if (payload.size() > kMaxRecordPayloadBytes) {
      out[i] = absl::InvalidArgumentError(
          absl::StrCat("group checkpoint of ", checkpoints[i].topic(), "/", checkpoints[i].group(),
                       " is ", payload.size(), " bytes; the limit is ", kMaxRecordPayloadBytes));
      continue;
    }
    AppendRecord(payload, &records);
    batch[{checkpoints[i].topic(), checkpoints[i].group()}] = std::move(payload);
  }
  if (batch.empty()) return out;

  uint64_t live_bytes = live_bytes_;
  for (const auto& [key, payload] : batch) {
    auto it = live_.find(key);
    if (it != live_.end()) live_bytes -= RecordBytes(it->second);
    live_bytes += RecordBytes(payload);
  }
  const uint64_t grown = log_bytes_ + records.size();
  const bool compact = migrate_ || (grown > options_.compact_min_bytes &&
                                    grown > options_.compact_ratio * live_bytes);
  absl::Status status = compact ? CompactLocked(batch) : AppendLocked(records);
  if (status.ok()) {
    for (auto& [key, payload] : batch) live_[key] = std::move(payload);
    live_bytes_ = live_bytes;
    if (compact) migrate_ = false;
    if (!migrate_ && !legacy_files_.empty()) RemoveLegacyFilesLocked();
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].ok()) out[i] = status;
  }
  return out;
}

absl::Status FileGroupStore::AppendLocked(absl::string_view records) {
  if (writer_ == nullptr) {
    if (absl::Status s = env_->CreateDir(dir_); !s.ok()) return s;
    if (dir_unsynced_) {
      if (absl::Status s = env_->SyncDir(dir_); !s.ok()) return s;
      dir_unsynced_ = false;
    }
    if (tail_dirty_) {
      // Bytes of a torn or failed append: gone before anything follows them.
      absl::Status s = env_->TruncateFile(log_path_, log_bytes_);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
      tail_dirty_ = false;
    }
    absl::StatusOr<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile(log_path_);
    if (!file.ok()) return file.status();
    if ((*file)->Size() != log_bytes_) {
      // Someone else wrote the file: read it again before writing.
      loaded_ = false;
      return absl::FailedPreconditionError(
          absl::StrCat("group checkpoint log ", log_path_, " is ", (*file)->Size(),
                       " bytes, expected ", log_bytes_, "; it is read again before the next save"));
    }
    writer_ = *std::move(file);
  }
  absl::Status status = writer_->Append(records);
  if (status.ok()) status = writer_->Sync();
  if (status.ok()) {
    log_bytes_ += records.size();
    return status;
  }
  // Some of the batch may be in the file, unsynced: cut it off now (a sync
  // that failed may have dropped those pages), else before the next append.
  writer_.reset();
  tail_dirty_ = !env_->TruncateFile(log_path_, log_bytes_).ok();
  return status;
}

absl::Status FileGroupStore::CompactLocked(const std::map<Key, std::string>& batch) {
  if (absl::Status s = env_->CreateDir(dir_); !s.ok()) return s;
  const std::string tmp = absl::StrCat(log_path_, ".tmp");
  // A temporary file left by a crash or a failed compaction starts over.
  if (absl::Status s = env_->RemoveFile(tmp); !s.ok() && !absl::IsNotFound(s)) return s;
  std::string data;
  size_t groups = batch.size();
  for (const auto& [key, payload] : live_) {
    if (batch.count(key) != 0) continue;
    AppendRecord(payload, &data);
    ++groups;
  }
  for (const auto& [key, payload] : batch) AppendRecord(payload, &data);
  absl::StatusOr<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile(tmp);
  if (!file.ok()) return file.status();
  absl::Status status = (*file)->Append(data);
  if (status.ok()) status = (*file)->Sync();
  absl::Status closed = (*file)->Close();
  if (status.ok()) status = closed;
  if (!status.ok()) return status;  // the old log stays as it was
  // The new log is durable; the rename makes it the log (and the Env syncs
  // the directory before returning).
  writer_.reset();
  status = env_->RenameFile(tmp, log_path_);
  if (!status.ok()) {
    // Either log may be in place now: read the directory again first, and
    // sync it before the next save is acknowledged.
    loaded_ = false;
    dir_unsynced_ = true;
    return status;
  }
  dir_unsynced_ = false;
  log_bytes_ = data.size();
  tail_dirty_ = false;
  RELAY_LOG(Debug, "group checkpoint log compacted",
            {{"file", log_path_},
             {"groups", absl::StrCat(groups)},
             {"bytes", absl::StrCat(data.size())}});
  return absl::OkStatus();
}

void FileGroupStore::RemoveLegacyFilesLocked() {
  std::vector<std::string> kept;
  for (const std::string& path : legacy_files_) {
    absl::Status s = env_->RemoveFile(path);
    if (!s.ok() && !absl::IsNotFound(s)) {
      RELAY_LOG(Warn, "group checkpoints: could not remove an old per-group file; retrying",
                {{"file", path}, {"error", s.ToString()}});
      kept.push_back(path);
    }
  }
  if (kept.empty()) {
    RELAY_LOG(Info, "group checkpoints moved to the log; old per-group files removed",
              {{"file", log_path_}, {"removed", absl::StrCat(legacy_files_.size())}});
  }
  legacy_files_ = std::move(kept);
}

}  // namespace relay::broker
