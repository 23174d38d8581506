#ifndef RELAY_BROKER_JETSTREAM_GROUP_STORE_H_
#define RELAY_BROKER_JETSTREAM_GROUP_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/group_store.h"

// The NATS C client's handles (nats.h), kept out of this header.
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __kvStore kvStore;

namespace relay::broker {

// JetStreamGroupStore keeps the consumer groups' checkpoints in one
// JetStream key-value bucket, so that they are replicated like the topics
// and any broker on the same NATS can resume a group
// (docs/JETSTREAM.md#group-state).
//
// - Bucket `relay_groups` (Options::bucket): file storage, `replicas`
//   copies, history 1. Created on Open() when missing; an existing bucket
//   keeps its settings.
// - Key: GroupKey(topic, group) (broker/storage/jetstream_names.h), e.g.
//   "ordersDdlq/payment-service" for ("orders.dlq", "payment-service").
// - Value: the serialized GroupCheckpoint, the bytes FileGroupStore writes.
//
// Compare-and-set: the store remembers, per key, the revision it last read
// (LoadAll) or wrote (Save). Save() writes with kvStore_Update against that
// revision, or kvStore_Create when it knows none (a new group: it must not
// exist yet). When the bucket holds another revision, the write is refused
// and Save() returns ABORTED "group <topic>/<group> was written by another
// broker (revision X, expected Y)" having changed nothing; the store keeps
// expecting Y, so later saves of that group are refused too. The owner of
// a group is whoever wrote it last: two brokers can never both advance it.
//
// A write whose answer is lost (a timeout) is resolved by reading the key
// back: the bytes it wrote → OK (the revision read is remembered); another
// revision → ABORTED; otherwise UNAVAILABLE, and the next Save retries.
//
// Thread-safe; Save() calls for the same group must not overlap.
//
//   JetStreamGroupStore::Options options;
//   options.servers = "nats://n1:4222,nats://n2:4222,nats://n3:4222";
//   options.replicas = 3;
//   absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store =
//       JetStreamGroupStore::Open(options);
class JetStreamGroupStore final : public GroupStore {
 public:
  struct Options {
    // Comma-separated NATS URLs. Required.
    std::string servers;
    // Copies of the bucket when this store creates it, in [1, 5].
    int replicas = 1;
    // The bucket's name ([A-Za-z0-9_-]). Tests use their own.
    std::string bucket = "relay_groups";
    absl::Duration connect_timeout = absl::Seconds(5);
    // Wait for each request, write and read.
    absl::Duration request_timeout = absl::Seconds(5);
    absl::Duration reconnect_wait = absl::Seconds(1);
  };

  // Connects (its own connection), then binds to the bucket or creates it.
  // INVALID_ARGUMENT for bad options; UNAVAILABLE when NATS or JetStream
  // does not answer, or the bucket can be neither found nor created.
  static absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> Open(Options options);

  JetStreamGroupStore(const JetStreamGroupStore&) = delete;
  JetStreamGroupStore& operator=(const JetStreamGroupStore&) = delete;
  ~JetStreamGroupStore() override;  // closes the connection

  // Every group's checkpoint in the bucket, remembering each revision: the
  // keys from one stream info request (the bucket's subjects), then one
  // kvStore_Get per key.
  // DATA_LOSS naming the key (and what to do) for a value that does not
  // decode, or names another group than its key; keys that are not group
  // keys are skipped (and logged). UNAVAILABLE when JetStream does not
  // answer.
  absl::StatusOr<std::vector<GroupCheckpoint>> LoadAll() override;

  // Compare-and-set (above): OK, ABORTED (another broker wrote the group;
  // nothing changed), or UNAVAILABLE (no answer; retry).
  absl::Status Save(const GroupCheckpoint& checkpoint) override;

 private:
  explicit JetStreamGroupStore(Options options);
  absl::Status Bind();

  const Options options_;
  natsConnection* nc_ = nullptr;  // owned; thread-safe (nats.c)
  jsCtx* js_ = nullptr;           // owned; thread-safe
  kvStore* kv_ = nullptr;         // owned; thread-safe

  // Per key, the revision this store last read or wrote. A leaf lock, never
  // held across a request.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint64_t> revisions_ ABSL_GUARDED_BY(mu_);
  // Per key, the values of the last writes that failed (their answer may
  // have been lost while the write still lands later): finding one of them
  // under a newer revision is this store's own write, not another broker's.
  absl::flat_hash_map<std::string, std::deque<std::string>> unanswered_ ABSL_GUARDED_BY(mu_);
  // GroupCheckpoint.write_id: this store's random id, and its writes so far.
  const std::string writer_;
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_JETSTREAM_GROUP_STORE_H_
