#ifndef RELAY_BROKER_GROUP_STORE_H_
#define RELAY_BROKER_GROUP_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/env.h"
#include "relay/broker/storage/v1/storage.pb.h"

namespace relay::broker {

using GroupCheckpoint = ::relay::broker::storage::v1::GroupCheckpoint;

// Parses the bytes of a checkpoint file. INVALID_ARGUMENT (naming what is
// wrong, never echoing the bytes) when they are not a checkpoint: no parse,
// no topic or group, acked runs that do not pair up.
absl::StatusOr<GroupCheckpoint> DecodeCheckpoint(absl::string_view bytes);

// Durable consumer-group progress: one file per group,
// `<dir>/<topic>/<group>.ckpt`, replaced atomically (write a temporary file,
// sync it, rename it over the old one; the Env syncs the directory), so a
// crash leaves either the old or the new checkpoint, never a torn one. All
// file access goes through the Env, so the power-cut tests cover it.
//
// Thread-compatible: Save() calls for the same group must not overlap.
class GroupStore {
 public:
  // `env` must outlive the store.
  explicit GroupStore(std::string dir, Env* env = Env::Default())
      : dir_(std::move(dir)), env_(env) {}

  // Every checkpoint under the directory. A file that cannot be read or
  // decoded is an error naming it (DATA_LOSS): the broker does not guess a
  // group's position. Leftover temporary files are ignored.
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() const;

  absl::Status Save(const GroupCheckpoint& checkpoint) const;

 private:
  std::string dir_;
  Env* env_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_GROUP_STORE_H_
