#include "broker/storage/env.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace relay::broker {

absl::Status ReadFileToString(Env* env, const std::string& path, std::string* contents) {
  contents->clear();
  absl::StatusOr<uint64_t> size = env->GetFileSize(path);
  if (!size.ok()) return size.status();
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> file = env->NewRandomAccessFile(path);
  if (!file.ok()) return file.status();
  contents->resize(*size);
  absl::StatusOr<absl::string_view> got = (*file)->Read(0, *size, contents->data());
  if (!got.ok()) return got.status();
  if (got->size() != *size) {
    return absl::DataLossError(
        absl::StrCat(path, ": read ", got->size(), " bytes of ", *size, " (file shrank?)"));
  }
  if (got->data() != contents->data()) contents->assign(got->data(), got->size());
  return absl::OkStatus();
}

std::string DirName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

}  // namespace relay::broker
