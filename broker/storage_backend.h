#ifndef RELAY_BROKER_STORAGE_BACKEND_H_
#define RELAY_BROKER_STORAGE_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/event_log.h"
#include "broker/storage/file_event_log.h"
#include "broker/storage/jetstream_event_log.h"

namespace relay::broker {

// Where the broker keeps its topics (relay-broker --storage).
enum class Storage {
  kFile,       // FileEventLog: segment files under the data dir
  kJetStream,  // JetStreamEventLog: a NATS JetStream stream per topic
};

// "file" or "jetstream".
absl::string_view StorageName(Storage storage);

// Parses StorageName()'s output; INVALID_ARGUMENT "storage must be file or
// jetstream, got '<text>'" for anything else.
absl::StatusOr<Storage> ParseStorage(absl::string_view text);

// The backend to open and its options; only the chosen backend's are read.
// The group checkpoints follow the backend: files in BrokerServer::Options::
// groups_dir, or a JetStream key-value bucket on jetstream's servers with
// its replicas (docs/JETSTREAM.md#group-state).
struct StorageOptions {
  Storage backend = Storage::kFile;
  FileEventLog::Options file;
  JetStreamEventLog::Options jetstream;
};

// Opens the chosen backend: FileEventLog::Open or JetStreamEventLog::Open,
// whose errors it returns.
absl::StatusOr<std::unique_ptr<EventLog>> OpenEventLog(const StorageOptions& options);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_BACKEND_H_
