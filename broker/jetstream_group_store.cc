#include "broker/jetstream_group_store.h"

#include <nats/nats.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "broker/storage/jetstream_connection.h"
#include "broker/storage/jetstream_names.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::broker {
namespace {

std::string RevisionText(std::optional<uint64_t> revision) {
  return revision.has_value() ? absl::StrCat(*revision) : "none";
}

}  // namespace

absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> JetStreamGroupStore::Open(Options options) {
  if (absl::Status s = ValidateBucketOptions(options.servers, options.replicas, options.bucket);
      !s.ok()) {
    return s;
  }
  std::unique_ptr<JetStreamGroupStore> store(new JetStreamGroupStore(std::move(options)));
  JetStreamConnectOptions connect;
  connect.servers = store->options_.servers;
  connect.connect_timeout = store->options_.connect_timeout;
  connect.request_timeout = store->options_.request_timeout;
  connect.reconnect_wait = store->options_.reconnect_wait;
  if (absl::Status s = ConnectJetStream(connect, &store->nc_, &store->js_); !s.ok()) return s;
  if (absl::Status s = store->Bind(); !s.ok()) return s;
  return store;
}

JetStreamGroupStore::~JetStreamGroupStore() { CloseJetStream(kv_, js_, nc_); }

absl::Status JetStreamGroupStore::Bind() {
  return BindOrCreateBucket(js_, options_.bucket, "relay consumer group checkpoints",
                            options_.replicas, &kv_);
}

absl::StatusOr<std::vector<GroupCheckpoint>> JetStreamGroupStore::LoadAll() {
  const std::string& bucket = options_.bucket;
  // The keys are the bucket stream's subjects: one stream info request,
  // answered by the stream leader. Not kvStore_Keys: its ephemeral consumer
  // was seen to time out for seconds after a node of a cluster was killed.
  const std::string prefix = absl::StrCat("$KV.", bucket, ".");
  const std::string filter = prefix + ">";
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = absl::ToInt64Milliseconds(options_.request_timeout);
  opts.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, absl::StrCat("KV_", bucket).c_str(), &opts, &code);
  if (s != NATS_OK) {
    return NatsUnavailable(absl::StrCat("cannot list the keys of bucket ", bucket), s, code);
  }
  std::vector<std::string> names;
  if (info->State.Subjects != nullptr) {
    for (int i = 0; i < info->State.Subjects->Count; ++i) {
      absl::string_view subject = info->State.Subjects->List[i].Subject;
      if (absl::ConsumePrefix(&subject, prefix)) names.emplace_back(subject);
    }
  }
  jsStreamInfo_Destroy(info);
  std::sort(names.begin(), names.end());

  std::vector<GroupCheckpoint> out;
  absl::flat_hash_map<std::string, uint64_t> revisions;
  for (const std::string& key : names) {
    std::optional<std::pair<std::string, std::string>> group = GroupForKey(key);
    if (!group.has_value()) {
      RELAY_LOG(Warn, "storage: key of no group in the group bucket, skipped",
                {{"bucket", bucket}, {"key", Excerpt(key)}});
      continue;
    }
    kvEntry* raw = nullptr;
    s = kvStore_Get(&raw, kv_, key.c_str());
    if (s == NATS_NOT_FOUND) continue;  // deleted since the listing
    if (s != NATS_OK) {
      return NatsUnavailable(absl::StrCat("cannot read key ", key, " of bucket ", bucket), s);
    }
    KvEntry entry(raw);
    absl::StatusOr<GroupCheckpoint> c = DecodeCheckpoint(KvValue(entry.get()));
    if (c.ok() && (c->topic() != group->first || c->group() != group->second)) {
      c = absl::InvalidArgumentError(
          absl::StrCat("it names group ", Excerpt(absl::StrCat(c->topic(), "/", c->group()))));
    }
    if (!c.ok()) {
      return absl::DataLossError(absl::StrCat(
          "group checkpoint ", key, " in bucket ", bucket, " (revision ",
          kvEntry_Revision(entry.get()), ") is unreadable: ", c.status().message(),
          ". Restore it, or delete the key to recreate the group from its start position when "
          "it next subscribes (which redelivers what the topic retains)"));
    }
    revisions[key] = kvEntry_Revision(entry.get());
    c->clear_write_id();  // the store's own business
    out.push_back(*std::move(c));
  }
  absl::MutexLock lock(&mu_);
  for (auto& [key, revision] : revisions) revisions_[key] = revision;
  return out;
}

namespace {
// Failed writes remembered per key (see unanswered_).
constexpr size_t kMaxUnansweredPerKey = 4;
}  // namespace

JetStreamGroupStore::JetStreamGroupStore(Options options)
    : options_(std::move(options)), writer_(NewEventId()) {}

absl::Status JetStreamGroupStore::Save(const GroupCheckpoint& checkpoint) {
  const std::string key = GroupKey(checkpoint.topic(), checkpoint.group());
  // Each write's value is this store's alone (write_id): finding it again
  // under a newer revision means this write landed, never another broker's.
  GroupCheckpoint stamped = checkpoint;
  {
    absl::MutexLock lock(&mu_);
    stamped.set_write_id(absl::StrCat(writer_, "/", ++writes_));
  }
  const std::string bytes = stamped.SerializeAsString();
  std::optional<uint64_t> expected;
  {
    absl::MutexLock lock(&mu_);
    auto it = revisions_.find(key);
    if (it != revisions_.end()) expected = it->second;
  }
  uint64_t revision = 0;
  natsStatus s = expected.has_value() ? kvStore_Update(&revision, kv_, key.c_str(), bytes.data(),
                                                       static_cast<int>(bytes.size()), *expected)
                                      : kvStore_Create(&revision, kv_, key.c_str(), bytes.data(),
                                                       static_cast<int>(bytes.size()));
  if (s == NATS_OK) {
    absl::MutexLock lock(&mu_);
    revisions_[key] = revision;
    unanswered_.erase(key);
    return absl::OkStatus();
  }
  {
    // It may still land (an answer lost in a timeout): remember its bytes.
    absl::MutexLock lock(&mu_);
    std::deque<std::string>& mine = unanswered_[key];
    mine.push_back(bytes);
    if (mine.size() > kMaxUnansweredPerKey) mine.pop_front();
  }
  // Refused for another revision, or unanswered: the key tells which.
  const absl::Status write_error = NatsUnavailable(
      absl::StrCat("cannot save group ", checkpoint.topic(), "/", checkpoint.group()), s);
  kvEntry* raw = nullptr;
  natsStatus read = kvStore_Get(&raw, kv_, key.c_str());
  std::optional<uint64_t> current;
  if (read == NATS_OK) {
    KvEntry entry(raw);
    current = kvEntry_Revision(entry.get());
    const absl::string_view value = KvValue(entry.get());
    if (value == bytes) {
      // This write landed; only its answer was lost.
      absl::MutexLock lock(&mu_);
      revisions_[key] = *current;
      unanswered_.erase(key);
      return absl::OkStatus();
    }
    bool own = false;
    {
      // An earlier write of ours whose answer was lost landed since (after
      // its timeout): not another broker. Take its revision and write again.
      absl::MutexLock lock(&mu_);
      auto mine = unanswered_.find(key);
      own = current != expected && mine != unanswered_.end() &&
            std::find(mine->second.begin(), mine->second.end(), value) != mine->second.end();
      if (own) {
        revisions_[key] = *current;
        unanswered_.erase(key);  // at most once per call: no loop
      }
    }
    if (own) return Save(checkpoint);
  } else if (read != NATS_NOT_FOUND) {
    return write_error;
  }
  if (current == expected) return write_error;  // nothing changed: retry later
  return absl::AbortedError(absl::StrCat("group ", checkpoint.topic(), "/", checkpoint.group(),
                                         " was written by another broker (revision ",
                                         RevisionText(current), ", expected ",
                                         RevisionText(expected), ")"));
}

}  // namespace relay::broker
