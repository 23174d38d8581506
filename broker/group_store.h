#ifndef RELAY_BROKER_GROUP_STORE_H_
#define RELAY_BROKER_GROUP_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relay/broker/storage/v1/storage.pb.h"

namespace relay::broker {

using GroupCheckpoint = ::relay::broker::storage::v1::GroupCheckpoint;

// Durable consumer-group progress: one file per group,
// `<dir>/<topic>/<group>.ckpt`, replaced atomically (write a temporary file,
// fsync it, rename it over the old one, fsync the directory), so a crash
// leaves either the old or the new checkpoint, never a torn one.
//
// Thread-compatible: Save() calls for the same group must not overlap.
class GroupStore {
 public:
  explicit GroupStore(std::string dir) : dir_(std::move(dir)) {}

  // Every checkpoint under the directory. A file that does not parse is
  // skipped and reported in `skipped` (never a crash).
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll(std::vector<std::string>* skipped) const;

  absl::Status Save(const GroupCheckpoint& checkpoint) const;

 private:
  std::string dir_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_GROUP_STORE_H_
