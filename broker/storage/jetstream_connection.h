#ifndef RELAY_BROKER_STORAGE_JETSTREAM_CONNECTION_H_
#define RELAY_BROKER_STORAGE_JETSTREAM_CONNECTION_H_

#include <nats/nats.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace relay::broker {

// How the broker's JetStream components (the event log, the group store)
// connect to NATS.
struct JetStreamConnectOptions {
  // Comma-separated NATS URLs. Required, no empty entry.
  std::string servers;
  // No server answers within this: UNAVAILABLE.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Wait for each JetStream request (the context's default).
  absl::Duration request_timeout = absl::Seconds(5);
  // Pause between reconnect attempts, which go on forever.
  absl::Duration reconnect_wait = absl::Seconds(1);
};

// Connects to options.servers, makes a JetStream context and checks that
// JetStream answers. On OK, *nc and *js are set and owned by the caller
// (jsCtx_Destroy, then natsConnection_Destroy). INVALID_ARGUMENT for a bad
// server list; UNAVAILABLE "cannot reach NATS at <servers>: ..." or
// "JetStream does not answer at <servers>: ...". The connection reconnects
// forever and logs its losses and returns (storage: NATS connection ...).
absl::Status ConnectJetStream(const JetStreamConnectOptions& options, natsConnection** nc,
                              jsCtx** js);

// `servers` (comma-separated NATS URLs) fit for a log line or an error: the
// password of each URL that carries credentials replaced by "***"
// (nats://relay:***@host:4222), a token-only one too (nats://***@host:4222).
std::string RedactedNatsUrls(absl::string_view servers);

// "<the client's text> (JetStream error <code>)": the calling thread's last
// NATS error (the server's text when there is one), else the status's text.
std::string NatsErrorText(natsStatus status, int code = 0);

// UNAVAILABLE "<what>: <NatsErrorText>".
absl::Status NatsUnavailable(absl::string_view what, natsStatus status, int code = 0);

// The broker's key-value buckets (group checkpoints, the lease).

// [A-Za-z0-9_-]+, what JetStream accepts as a bucket name.
bool IsValidBucketName(absl::string_view name);

// INVALID_ARGUMENT, with a short reason, for an empty server list, replicas
// outside [1, 5] or a bucket name that is not IsValidBucketName().
absl::Status ValidateBucketOptions(absl::string_view servers, int replicas,
                                   absl::string_view bucket);

// Binds *kv to `bucket`, or creates it (history 1, file storage, `replicas`
// copies) when missing; an existing bucket keeps its settings, except that
// one with more than one copy is read from its stream's leader: its
// stream's direct gets are turned off, and *kv bound again. (nats.c makes
// buckets with direct gets, and kvStore_Get is then a direct get, which any
// replica answers, a follower perhaps before it applied an acknowledged
// write. A compare-and-set that reads the key back after a lost answer
// would take such an older revision for another writer's.) Another broker
// creating it at the same time is fine: each step is tried again for up to
// 20 s while NATS does not answer. UNAVAILABLE "cannot create bucket
// <bucket>: ..." (or "cannot read bucket <bucket> from its leader: ...")
// otherwise; *kv is then null.
absl::Status BindOrCreateBucket(jsCtx* js, const std::string& bucket, const char* description,
                                int replicas, kvStore** kv);

// Owns a kvEntry.
struct KvEntryDeleter {
  void operator()(kvEntry* e) const { kvEntry_Destroy(e); }
};
using KvEntry = std::unique_ptr<kvEntry, KvEntryDeleter>;

// The entry's value as bytes.
absl::string_view KvValue(kvEntry* e);

// Destroys what Open()-style constructors made, in order, any of them null.
void CloseJetStream(kvStore* kv, jsCtx* js, natsConnection* nc);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_JETSTREAM_CONNECTION_H_
