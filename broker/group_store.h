#ifndef RELAY_BROKER_GROUP_STORE_H_
#define RELAY_BROKER_GROUP_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
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
// Thread-safe for different groups; Save() and SaveAll() calls naming the
// same group must not overlap (GroupManager serializes them).
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

  // Save() of each of `checkpoints`, as one batch: returns one status per
  // checkpoint, in the same order, each meaning what Save() would have
  // returned for it (so one group can be fenced with ABORTED while the
  // others are saved). A group named twice ends with the later checkpoint.
  // This default saves them one by one; a store that can make a whole batch
  // durable at once (FileGroupStore: one write, one sync) overrides it.
  virtual std::vector<absl::Status> SaveAll(const std::vector<GroupCheckpoint>& checkpoints);
};

// The tuning of FileGroupStore's log compaction.
struct FileGroupStoreOptions {
  // The log is rewritten with one record per group when a save would grow
  // it past both `compact_min_bytes` and `compact_ratio` times the bytes of
  // those records.
  uint64_t compact_min_bytes = uint64_t{1} << 20;
  uint64_t compact_ratio = 4;
};

// Durable consumer-group progress on the broker's disk: one append-only log,
// `<dir>/group_checkpoints.log` (docs/STORAGE.md#group-checkpoints), of
// records framed as the event log's segments frame events (broker/storage/
// record.h: length, masked CRC32C, payload), each payload a serialized
// GroupCheckpoint. The last record of a (topic, group) is its state.
//
// - SaveAll() appends the batch's records with one write and one sync,
//   however many groups it holds. When a write or sync fails, the records
//   are cut off again before the next write (never leaving a torn record
//   in front of later ones).
// - LoadAll() replays the log. A torn tail (a crash during an append: the
//   file ends inside a record, or only zeros follow the last good record,
//   or the record that fails its CRC ends exactly at the end of the file)
//   was never acknowledged and is ignored, then cut off before the next
//   write. Anything else that does not read back (a bad record with more
//   after it, a record that is not a checkpoint) is DATA_LOSS naming the
//   file and the byte offset.
// - Compaction: a save that would grow the log past FileGroupStoreOptions'
//   bound writes instead a fresh log of every group's latest record (with
//   the batch) to `group_checkpoints.log.tmp`, syncs it and renames it over
//   the log (the Env syncs the directory). A crash leaves the old log or the
//   new one, both complete.
// - Migration: brokers before the log kept one file per group,
//   `<dir>/<topic>/<group>.ckpt`. LoadAll() still reads them; for a group
//   that also has a log record, the log wins (it is always the newer: this
//   store never writes those files). The first save after loading them
//   compacts, and only once the new log is durable removes the old files
//   (their emptied topic directories stay).
//
// All file access goes through the Env, so the power-cut tests cover it.
// The file name cannot clash with a topic directory: topic names have no
// '_'. Thread-safe. Never refuses a save with ABORTED: one broker owns its
// data dir.
class FileGroupStore final : public GroupStore {
 public:
  // The log's name in the directory.
  static constexpr char kLogName[] = "group_checkpoints.log";

  // `env` must outlive the store. Nothing is read before the first call.
  explicit FileGroupStore(std::string dir, Env* env = Env::Default(),
                          FileGroupStoreOptions options = FileGroupStoreOptions());
  ~FileGroupStore() override;

  // Every group's latest checkpoint, read again from the directory (the
  // log, then any older per-group files). DATA_LOSS naming the file (and
  // the byte offset in the log) for what cannot be read or decoded.
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() override;

  // SaveAll() of one.
  absl::Status Save(const GroupCheckpoint& checkpoint) override;

  // Makes the whole batch durable with one append and one sync of the log
  // (or one compaction). Every status is the same but for a checkpoint too
  // large to store (INVALID_ARGUMENT, left out of the batch). The first
  // save reads the directory first, as LoadAll() does, and fails as it
  // would.
  std::vector<absl::Status> SaveAll(const std::vector<GroupCheckpoint>& checkpoints) override;

  // `<dir>/group_checkpoints.log`.
  const std::string& log_path() const { return log_path_; }

 private:
  using Key = std::pair<std::string, std::string>;  // topic, group

  // Reads the legacy files and the log into live_ and the write position.
  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `records` and syncs.
  absl::Status AppendLocked(absl::string_view records) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes a fresh log of live_ overlaid with `batch` and renames it over
  // the log.
  absl::Status CompactLocked(const std::map<Key, std::string>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the per-group files of older brokers, keeping those it cannot.
  void RemoveLegacyFilesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const std::string log_path_;
  Env* const env_;
  const FileGroupStoreOptions options_;

  absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  // Each group's latest serialized checkpoint: what a compaction writes.
  std::map<Key, std::string> live_ ABSL_GUARDED_BY(mu_);
  // Bytes of one record per group of live_.
  uint64_t live_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // End of the log's valid records: where the next append goes.
  uint64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The file may hold bytes past log_bytes_ (a torn tail, or a failed
  // append that could not be cut off at once): cut before the next append.
  bool tail_dirty_ ABSL_GUARDED_BY(mu_) = false;
  // A compaction's rename failed, maybe after renaming (the Env syncs the
  // directory after it): the log's name may not be durable, and no save is
  // acknowledged until the directory is synced. Not reset by a reload.
  bool dir_unsynced_ ABSL_GUARDED_BY(mu_) = false;
  // The log open for appending; null until the first append and after a
  // failure.
  std::unique_ptr<WritableFile> writer_ ABSL_GUARDED_BY(mu_);
  // Per-group files of older brokers: compact before the next append, then
  // remove them.
  bool migrate_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> legacy_files_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_GROUP_STORE_H_
