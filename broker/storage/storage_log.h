#ifndef RELAY_BROKER_STORAGE_STORAGE_LOG_H_
#define RELAY_BROKER_STORAGE_STORAGE_LOG_H_

#include "absl/strings/string_view.h"

namespace relay::broker {

// Writes one line to stderr, whole (one write), in the project's log shape:
//   2026-11-26T22:30:19.229Z WARN relay-broker storage: <message>
// `level` is INFO, WARN or ERROR. Thread-safe.
void StorageLog(absl::string_view level, absl::string_view message);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_STORAGE_LOG_H_
