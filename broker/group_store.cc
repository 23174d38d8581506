#include "broker/group_store.h"

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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

absl::StatusOr<std::vector<GroupCheckpoint>> FileGroupStore::LoadAll() {
  std::vector<GroupCheckpoint> out;
  if (!env_->IsDirectory(dir_)) return out;
  absl::StatusOr<std::vector<std::string>> topics = env_->ListDir(dir_);
  if (!topics.ok()) return topics.status();
  for (const std::string& topic : *topics) {
    const std::string topic_dir = absl::StrCat(dir_, "/", topic);
    if (!env_->IsDirectory(topic_dir)) continue;
    absl::StatusOr<std::vector<std::string>> files = env_->ListDir(topic_dir);
    if (!files.ok()) return files.status();
    for (const std::string& file : *files) {
      if (!absl::EndsWith(file, ".ckpt")) continue;
      const std::string path = absl::StrCat(topic_dir, "/", file);
      std::string bytes;
      absl::Status read = ReadFileToString(env_, path, &bytes);
      absl::StatusOr<GroupCheckpoint> c =
          read.ok() ? DecodeCheckpoint(bytes) : absl::StatusOr<GroupCheckpoint>(read);
      if (!c.ok()) {
        return absl::DataLossError(absl::StrCat(
            "group checkpoint ", path, " is unreadable: ", c.status().message(),
            ". Restore it from a backup, or move it aside to recreate the group from its "
            "start position when it next subscribes (which redelivers what the topic retains)"));
      }
      out.push_back(*std::move(c));
    }
  }
  return out;
}

absl::Status FileGroupStore::Save(const GroupCheckpoint& checkpoint) {
  const std::string topic_dir = absl::StrCat(dir_, "/", checkpoint.topic());
  if (absl::Status s = env_->CreateDir(dir_); !s.ok()) return s;
  if (absl::Status s = env_->CreateDir(topic_dir); !s.ok()) return s;
  const std::string path = absl::StrCat(topic_dir, "/", checkpoint.group(), ".ckpt");
  const std::string tmp = path + ".tmp";
  // A temporary file left by a crash or a failed save starts over.
  if (absl::Status s = env_->RemoveFile(tmp); !s.ok() && !absl::IsNotFound(s)) return s;
  absl::StatusOr<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile(tmp);
  if (!file.ok()) return file.status();
  absl::Status s = (*file)->Append(checkpoint.SerializeAsString());
  if (s.ok()) s = (*file)->Sync();
  absl::Status closed = (*file)->Close();
  if (s.ok()) s = closed;
  if (!s.ok()) return s;
  return env_->RenameFile(tmp, path);
}

}  // namespace relay::broker
