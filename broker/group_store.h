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

// Parses the bytes of a checkpoint (a file's, or a key-value entry's). INVALID_ARGUMENT (naming
// what is wrong, never echoing the bytes) when they are not a checkpoint: no parse, no topic or
// group, acked runs that do not pair up.
absl::StatusOr<GroupCheckpoint> DecodeCheckpoint(absl::string_view bytes);

// Where the broker keeps its consumer groups' checkpoints
// (docs/DELIVERY.md#checkpoints, docs/JETSTREAM.md#group-state): FileGroupStore on the
// broker's disk, JetStreamGroupStore (broker/jetstream_group_store.h) in a
// JetStream key-value bucket.
//
// Thread-safe for different groups; Save() calls for the same group must
// not overlap (GroupManager serializes them).
class GroupStore {
 public:
  virtual ~GroupStore() = default;

  // Every checkpoint in the store. One that cannot be read or decoded is an
  // error naming it (DATA_LOSS): the broker does not guess a group's
  // position.
  virtual absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() = 0;

  // Makes `checkpoint` the group's durable state before returning OK. A
  // store that fences writers may refuse with ABORTED when another writer
  // changed the group since this store last read or wrote it; it then
  // changes nothing.
  virtual absl::Status Save(const GroupCheckpoint& checkpoint) = 0;
};

// Durable consumer-group progress: one file per group,
// `<dir>/<topic>/<group>.ckpt`, replaced atomically (write a temporary file,
// sync it, rename it over the old one; the Env syncs the directory), so a
// crash leaves either the old or the new checkpoint, never a torn one. All
// file access goes through the Env, so the power-cut tests cover it.
//
// Thread-compatible: Save() calls for the same group must not overlap. Never
// refuses a save with ABORTED: one broker owns its data dir.
class FileGroupStore final : public GroupStore {
 public:
  // `env` must outlive the store.
  explicit FileGroupStore(std::string dir, Env* env = Env::Default())
      : dir_(std::move(dir)), env_(env) {}

  // Every checkpoint under the directory; a file that cannot be read or
  // decoded is DATA_LOSS naming its path. Leftover temporary files are
  // ignored.
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() override;

  absl::Status Save(const GroupCheckpoint& checkpoint) override;

 private:
  std::string dir_;
  Env* env_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_GROUP_STORE_H_
