#include "broker/group_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace relay::broker {
namespace fs = std::filesystem;
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync", path);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<GroupCheckpoint>> GroupStore::LoadAll(
    std::vector<std::string>* skipped) const {
  std::vector<GroupCheckpoint> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (const auto& topic_dir : fs::directory_iterator(dir_, ec)) {
    if (!topic_dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(topic_dir.path(), ec)) {
      std::string path = file.path().string();
      if (!absl::EndsWith(path, ".ckpt")) continue;
      std::ifstream in(path, std::ios::binary);
      std::stringstream buf;
      buf << in.rdbuf();
      GroupCheckpoint ckpt;
      if (!in.good() && !in.eof()) {
        skipped->push_back(path);
        continue;
      }
      if (!ckpt.ParseFromString(buf.str()) || ckpt.topic().empty() || ckpt.group().empty()) {
        skipped->push_back(path);
        continue;
      }
      out.push_back(std::move(ckpt));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", dir_, ": ", ec.message()));
  return out;
}

absl::Status GroupStore::Save(const GroupCheckpoint& checkpoint) const {
  std::string topic_dir = absl::StrCat(dir_, "/", checkpoint.topic());
  std::error_code ec;
  bool created = !fs::exists(topic_dir, ec);
  fs::create_directories(topic_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", topic_dir, ": ", ec.message()));
  if (created) {
    if (absl::Status s = FsyncPath(dir_, O_RDONLY | O_DIRECTORY); !s.ok()) return s;
  }
  std::string path = absl::StrCat(topic_dir, "/", checkpoint.group(), ".ckpt");
  std::string tmp = path + ".tmp";
  std::string bytes = checkpoint.SerializeAsString();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return ErrnoError("write", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    ::close(fd);
    return ErrnoError("fsync", tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename", tmp);
  return FsyncPath(topic_dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace relay::broker
