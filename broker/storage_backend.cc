#include "broker/storage_backend.h"

#include "absl/strings/str_cat.h"
#include "common/text.h"

namespace relay::broker {

absl::string_view StorageName(Storage storage) {
  switch (storage) {
    case Storage::kFile:
      return "file";
    case Storage::kJetStream:
      return "jetstream";
  }
  return "unknown";
}

absl::StatusOr<Storage> ParseStorage(absl::string_view text) {
  for (Storage s : {Storage::kFile, Storage::kJetStream}) {
    if (text == StorageName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("storage must be file or jetstream, got ", Excerpt(text)));
}

absl::StatusOr<std::unique_ptr<EventLog>> OpenEventLog(const StorageOptions& options) {
  if (options.backend == Storage::kJetStream) {
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log =
        JetStreamEventLog::Open(options.jetstream);
    if (!log.ok()) return log.status();
    return std::unique_ptr<EventLog>(std::move(*log));
  }
  absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options.file);
  if (!log.ok()) return log.status();
  return std::unique_ptr<EventLog>(std::move(*log));
}

}  // namespace relay::broker
