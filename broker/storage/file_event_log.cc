#include "broker/storage/file_event_log.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "broker/storage/crc32c.h"
#include "broker/storage/record.h"
#include "broker/storage/storage_metrics.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::broker {
namespace {

constexpr uint64_t kMinSegmentBytes = uint64_t{4} << 10;
constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 30;
// The largest event the log takes, serialized: a record also holds the
// fields the log assigns.
constexpr size_t kMaxEventBytes = kMaxRecordPayloadBytes - kAssignedFieldsMaxBytes;

// [a-z0-9._-]{1,255} (a file name), and not a name the file system gives a
// meaning. Clients are held to 128 characters (broker/validation.h); the
// room above is for dead-letter topics, `<topic>.dlq`.
bool IsValidTopicName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

// A topic's commits are cached while ReadStored() read it this recently.
constexpr absl::Duration kCacheWhileRead = absl::Seconds(5);

bool IsPeriod(absl::Duration d) { return d > absl::ZeroDuration() && d < absl::InfiniteDuration(); }

}  // namespace

struct FileEventLog::Topic {
  explicit Topic(std::string topic_name) : name(std::move(topic_name)) {}

  const std::string name;
  std::unique_ptr<TopicLog> log;  // set once before the topic is shared
  std::atomic<uint64_t> forced_deleted_events{0};
  // Of the dedupe window, for ListTopics (written by the writer thread).
  std::atomic<uint64_t> dedupe_ids{0};
  std::atomic<uint64_t> dedupe_evicted{0};
  std::atomic<size_t> dedupe_bytes{0};

  // Writer-thread state.
  DedupeIndex dedupe;
  std::vector<EventBytes> pending;  // events of the current commit
  // Their bytes, to stamp and cache once written.
  std::vector<std::pair<SharedBytes, StoredEvent::Layout>> pending_bytes;
  bool in_commit = false;
  bool unsynced = false;
  uint64_t next_offset = 0;
  absl::Time commit_time;
  uint64_t notified_end = 0;                        // last durable end given to the listener
  absl::Time dedupe_logged = absl::InfinitePast();  // last "dedupe window shrunk" line
  metrics::Counter* appended_bytes = nullptr;
  metrics::Counter* duplicates = nullptr;

  // Guarded by FileEventLog::cache_mu_: the tail cache's events of this
  // topic, consecutive offsets, oldest first.
  std::deque<StoredEvent> cache;
  // When ReadStored() last read the topic (Now(), Unix nanoseconds): the
  // writer caches a topic's commits only while it is being read.
  mutable std::atomic<int64_t> read_at_nanos{std::numeric_limits<int64_t>::min() / 2};
  // Writer thread: whether the topic may have events in the tail cache.
  bool cached = false;
};

absl::StatusOr<std::unique_ptr<FileEventLog>> FileEventLog::Open(Options options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir is empty");
  if (options.env == nullptr) return absl::InvalidArgumentError("env is null");
  if (options.segment_bytes < kMinSegmentBytes || options.segment_bytes > kMaxSegmentBytes) {
    return absl::InvalidArgumentError(absl::StrCat("segment_bytes must be in [", kMinSegmentBytes,
                                                   ", ", kMaxSegmentBytes, "], not ",
                                                   options.segment_bytes));
  }
  if (options.fsync_policy == FsyncPolicy::kInterval && !IsPeriod(options.fsync_interval)) {
    return absl::InvalidArgumentError("fsync_interval must be positive and finite");
  }
  if (options.hard_max_bytes < options.retention_bytes) {
    return absl::InvalidArgumentError("hard_max_bytes must be at least retention_bytes");
  }
  if (options.dedupe_window < absl::ZeroDuration() ||
      options.retention_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("dedupe_window and retention_age must not be negative");
  }

  std::unique_ptr<FileEventLog> log(new FileEventLog(std::move(options)));
  Env* env = log->options_.env;
  const std::string topics_dir = log->options_.data_dir + "/topics";
  absl::Status status = env->CreateDir(log->options_.data_dir);
  if (status.ok()) status = env->CreateDir(topics_dir);
  if (!status.ok()) return status;
  absl::StatusOr<std::unique_ptr<FileLock>> lock = env->LockFile(topics_dir + "/LOCK");
  if (!lock.ok()) return lock.status();
  log->lock_ = *std::move(lock);
  status = log->DiscoverTopics();
  if (!status.ok()) return status;

  log->last_sync_ = absl::Now();
  FileEventLog* self = log.get();
  log->completer_ = std::thread([self] { self->CompleterLoop(); });
  log->writer_ = std::thread([self] { self->WriterLoop(); });
  if (IsPeriod(log->options_.retention_check_interval)) {
    log->retention_ = std::make_unique<relay::Worker>("retention", [self] {
      if (absl::Status s = self->RunRetentionOnce(); !s.ok()) {
        RELAY_LOG(Error, "storage: retention failed", {{"error", s.ToString()}});
      }
      return self->options_.retention_check_interval;
    });
    log->retention_->Start(log->options_.retention_check_interval);
  }
  return log;
}

FileEventLog::FileEventLog(Options options) : options_(std::move(options)) {}

FileEventLog::~FileEventLog() { Close().IgnoreError(); }

absl::Time FileEventLog::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

absl::StatusOr<std::unique_ptr<FileEventLog::Topic>> FileEventLog::OpenTopic(
    const std::string& name) {
  auto topic = std::make_unique<Topic>(name);
  topic->appended_bytes = &GetStorageMetrics().appended_bytes->With({name});
  topic->duplicates = &GetStorageMetrics().duplicates->With({name});
  TopicLog::Options options;
  options.env = options_.env;
  options.dir = absl::StrCat(options_.data_dir, "/topics/", name);
  options.name = name;
  options.segment_bytes = options_.segment_bytes;
  // The dedupe window survives restarts without a file of its own: the ids
  // are in the records.
  const absl::Time window_start = Now() - options_.dedupe_window;
  DedupeIndex* dedupe = &topic->dedupe;
  absl::StatusOr<std::unique_ptr<TopicLog>> log =
      TopicLog::Open(options, [dedupe, window_start](const RecordMeta& record) {
        if (!record.id.empty() && record.publish_time >= window_start) {
          dedupe->Insert(record.id, record.offset);
        }
      });
  if (!log.ok()) return log.status();
  topic->log = *std::move(log);
  topic->notified_end = topic->log->DurableEnd();
  UpdateDedupeStats(topic.get());
  return topic;
}

absl::Status FileEventLog::DiscoverTopics() {
  const std::string topics_dir = options_.data_dir + "/topics";
  absl::StatusOr<std::vector<std::string>> names = options_.env->ListDir(topics_dir);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (!IsValidTopicName(name) || !options_.env->IsDirectory(topics_dir + "/" + name)) continue;
    absl::StatusOr<std::unique_ptr<Topic>> topic = OpenTopic(name);
    if (!topic.ok()) return topic.status();
    TopicStats stats = (*topic)->log->Stats();
    RELAY_LOG(Info, "storage: topic loaded",
              {{"topic", name},
               {"offsets", absl::StrCat(stats.first_offset, "..", stats.end_offset)},
               {"events", absl::StrCat(stats.events)},
               {"bytes", absl::StrCat(stats.bytes)},
               {"segments", absl::StrCat(stats.segments)},
               {"dedupe_ids", absl::StrCat((*topic)->dedupe.size())}});
    absl::MutexLock lock(&topics_mu_);
    topics_.emplace(name, *std::move(topic));
  }
  return absl::OkStatus();
}

const FileEventLog::Topic* FileEventLog::FindTopic(absl::string_view name) const {
  absl::ReaderMutexLock lock(&topics_mu_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

template <typename Events>
void FileEventLog::Prepare(Events& events, Batch* batch) {
  batch->events.reserve(static_cast<size_t>(events.size()));
  for (Event& event : events) {
    // The log assigns these; offset and publish_time follow in the record.
    event.clear_topic();
    event.clear_offset();
    event.clear_publish_time();
    size_t size = event.ByteSizeLong();
    if (size > kMaxEventBytes) {
      batch->error = absl::InvalidArgumentError(absl::StrCat(
          "event ", Excerpt(event.id()), " is ", size, " bytes, larger than ", kMaxEventBytes));
      batch->events.clear();
      return;
    }
    // Room for the assigned fields: the writer appends them in place.
    SharedBytes bytes = SharedBytes::Allocate(size, size + kAssignedFieldsMaxBytes);
    event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(bytes.mutable_data()));
    PreparedEvent& prepared = batch->events.emplace_back();
    uint64_t unused_offset;
    if (!StoredEvent::Scan(bytes.view(), &prepared.layout, &unused_offset)) {
      // Never expected: protobuf just serialized it.
      batch->error = absl::InternalError(
          absl::StrCat("event ", Excerpt(event.id()), " does not scan after serializing"));
      batch->events.clear();
      return;
    }
    prepared.crc = crc32c::Value(bytes.view().data(), size);
    prepared.key = DedupeIndex::KeyOf(event.id());
    prepared.has_id = !event.id().empty();
    prepared.bytes = std::move(bytes);
  }
}

void FileEventLog::Append(const std::string& topic, std::vector<Event> events, AppendDone done) {
  Enqueue(topic, events, std::move(done));
}

void FileEventLog::AppendFrom(const std::string& topic,
                              google::protobuf::RepeatedPtrField<Event>* events, AppendDone done,
                              const std::shared_ptr<AppendOrigin>& origin) {
  (void)origin;  // see EventLog::Append
  Enqueue(topic, *events, std::move(done));
}

template <typename Events>
void FileEventLog::Enqueue(const std::string& topic, Events& events, AppendDone done) {
  // Serialize here, on the caller's thread: the one writer thread is the
  // log's bottleneck, callers are many.
  Batch batch;
  batch.received = absl::Now();
  batch.topic = topic;
  Prepare(events, &batch);
  batch.done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(batch));
      return;
    }
  }
  batch.done(absl::UnavailableError("event log is closed"));
}

uint64_t FileEventLog::DurableEnd(absl::string_view topic) const {
  const Topic* t = FindTopic(topic);
  return t == nullptr ? 0 : t->log->DurableEnd();
}

uint64_t FileEventLog::FirstOffset(absl::string_view topic) const {
  const Topic* t = FindTopic(topic);
  return t == nullptr ? 0 : t->log->FirstOffset();
}

absl::StatusOr<std::vector<Event>> FileEventLog::Read(absl::string_view topic, uint64_t from,
                                                      size_t max_events, size_t max_bytes) const {
  const Topic* t = FindTopic(topic);
  if (t == nullptr || max_events == 0) return std::vector<Event>();
  return t->log->Read(from, max_events, max_bytes);
}

absl::StatusOr<std::vector<StoredEvent>> FileEventLog::ReadStored(absl::string_view topic,
                                                                  uint64_t from, size_t max_events,
                                                                  size_t max_bytes) const {
  const Topic* t = FindTopic(topic);
  std::vector<StoredEvent> out;
  if (t == nullptr || max_events == 0) return out;
  t->read_at_nanos.store(absl::ToUnixNanos(Now()), std::memory_order_relaxed);
  // As Read(): from below the oldest retained offset starts there (the
  // cache may still hold events retention deleted).
  from = std::max(from, t->log->FirstOffset());
  if (ReadCached(*t, from, max_events, max_bytes, &out)) return out;
  return t->log->ReadStored(from, max_events, max_bytes);
}

uint64_t FileEventLog::OffsetForTime(absl::string_view topic, absl::Time t) const {
  const Topic* found = FindTopic(topic);
  return found == nullptr ? 0 : found->log->OffsetForTime(t);
}

std::vector<TopicStats> FileEventLog::ListTopics() const {
  std::vector<TopicStats> all;
  {
    absl::ReaderMutexLock lock(&topics_mu_);
    for (const auto& [name, topic] : topics_) {
      TopicStats stats = topic->log->Stats();
      stats.forced_deleted_events = topic->forced_deleted_events.load(std::memory_order_relaxed);
      stats.dedupe_ids = topic->dedupe_ids.load(std::memory_order_relaxed);
      stats.dedupe_bytes = topic->dedupe_bytes.load(std::memory_order_relaxed);
      stats.dedupe_evicted = topic->dedupe_evicted.load(std::memory_order_relaxed);
      all.push_back(std::move(stats));
    }
  }
  std::sort(all.begin(), all.end(),
            [](const TopicStats& a, const TopicStats& b) { return a.name < b.name; });
  return all;
}

void FileEventLog::SetDurabilityListener(DurabilityListener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::make_shared<const DurabilityListener>(std::move(listener));
}

void FileEventLog::SetFailureListener(FailureListener listener) {
  absl::MutexLock lock(&mu_);
  failure_listener_ = std::move(listener);
}

void FileEventLog::SetRetentionFloor(const std::string& topic, uint64_t offset) {
  absl::MutexLock lock(&floors_mu_);
  floors_[topic] = offset;
}

absl::Status FileEventLog::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (!closed_) {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    if (writer_.joinable()) writer_.join();
    if (completer_.joinable()) completer_.join();
    if (retention_ != nullptr) retention_->Stop();
    closed_ = true;
  }
  return final_status_;
}

// ---- Writer thread.

bool FileEventLog::HasWork() const { return !queue_.empty() || closing_; }

void FileEventLog::WriterLoop() {
  std::vector<Batch> commit;
  while (true) {
    bool closing;
    {
      absl::MutexLock lock(&mu_);
      if (options_.fsync_policy == FsyncPolicy::kInterval && !waiting_.empty()) {
        mu_.AwaitWithDeadline(absl::Condition(this, &FileEventLog::HasWork),
                              last_sync_ + options_.fsync_interval);
      } else {
        mu_.Await(absl::Condition(this, &FileEventLog::HasWork));
      }
      commit.swap(queue_);
      closing = closing_;
    }
    if (!commit.empty()) {
      WriteCommit(&commit);
      commit.clear();
    }
    switch (options_.fsync_policy) {
      case FsyncPolicy::kBatch:
        MakeDurable(/*sync=*/true);
        break;
      case FsyncPolicy::kInterval:
        if (closing || unsynced_.empty() || absl::Now() >= last_sync_ + options_.fsync_interval) {
          MakeDurable(/*sync=*/true);
        }
        break;
      case FsyncPolicy::kNone:
        MakeDurable(/*sync=*/closing);
        break;
    }
    if (closing) break;
  }
  if (failed_.ok()) {
    // A clean stop leaves no reserved space in the files.
    absl::ReaderMutexLock lock(&topics_mu_);
    for (auto& [name, topic] : topics_) {
      absl::Status status = topic->log->Seal();
      if (!status.ok()) {
        RELAY_LOG(Warn, "storage: closing a topic's segment failed",
                  {{"topic", name}, {"error", std::string(status.message())}});
      }
    }
  }
  final_status_ = failed_;
  absl::MutexLock lock(&completions_mu_);
  writer_done_ = true;
}

absl::StatusOr<FileEventLog::Topic*> FileEventLog::GetOrCreateTopic(const std::string& name) {
  {
    absl::ReaderMutexLock lock(&topics_mu_);
    auto it = topics_.find(name);
    if (it != topics_.end()) return it->second.get();
  }
  if (!IsValidTopicName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic name ", Excerpt(name), " is not [a-z0-9._-]{1,255}"));
  }
  absl::StatusOr<std::unique_ptr<Topic>> topic = OpenTopic(name);
  if (!topic.ok()) return topic.status();
  Topic* t = topic->get();
  absl::MutexLock lock(&topics_mu_);
  topics_.emplace(name, *std::move(topic));
  return t;
}

void FileEventLog::StartTopicCommit(Topic* topic) {
  topic->in_commit = true;
  touched_.push_back(topic);
  // Publish times never go backwards within a topic, whatever the clock does,
  // so that OffsetForTime can binary-search.
  topic->commit_time = std::max(Now(), topic->log->last_publish_time());
  topic->next_offset = topic->log->written_end();
  topic->dedupe.EvictBelow(
      std::max(topic->log->FirstOffset(),
               topic->log->OffsetForTime(topic->commit_time - options_.dedupe_window)));
}

absl::StatusOr<std::vector<AppendResult>> FileEventLog::AssignBatch(Topic* topic, Batch& batch) {
  if (!batch.error.ok()) return batch.error;
  std::vector<AppendResult> results(batch.events.size());
  for (size_t i = 0; i < batch.events.size(); ++i) {
    PreparedEvent& event = batch.events[i];
    // The index also holds the ids of this commit, so a repeat within a
    // batch or a commit finds the first copy.
    std::optional<uint64_t> original;
    if (event.has_id) original = topic->dedupe.FindOrInsert(event.key, topic->next_offset);
    if (original.has_value()) {
      topic->duplicates->Add();
      results[i].offset = *original;
      results[i].duplicate = true;
      continue;
    }
    results[i].offset = topic->next_offset++;
    topic->pending.push_back(EventBytes{event.bytes.view(), event.crc});
    topic->pending_bytes.emplace_back(std::move(event.bytes), event.layout);
  }
  return results;
}

void FileEventLog::WriteCommit(std::vector<Batch>* commit) {
  for (Batch& batch : *commit) {
    if (!failed_.ok()) {
      waiting_.push_back(Ack{std::move(batch.done),
                             absl::UnavailableError(absl::StrCat(
                                 "event log stopped after a storage failure: ", failed_.message())),
                             batch.received});
      continue;
    }
    absl::StatusOr<Topic*> topic = GetOrCreateTopic(batch.topic);
    if (!topic.ok()) {
      waiting_.push_back(Ack{std::move(batch.done), topic.status(), batch.received});
      continue;
    }
    if (!(*topic)->in_commit) StartTopicCommit(*topic);
    waiting_.push_back(Ack{std::move(batch.done), AssignBatch(*topic, batch), batch.received});
  }
  // One write per topic (per segment, when one rolls) for the whole commit.
  for (Topic* topic : touched_) {
    topic->in_commit = false;
    UpdateDedupeStats(topic);
    if (!topic->pending.empty() && failed_.ok()) {
      const uint64_t first = topic->log->written_end();
      absl::Status status = topic->log->Append(topic->pending, topic->commit_time);
      if (!status.ok()) {
        Fail(absl::Status(status.code(),
                          absl::StrCat("write to topic ", topic->name, ": ", status.message())));
      } else {
        uint64_t bytes = 0;
        for (const EventBytes& e : topic->pending) bytes += e.bytes.size();
        topic->appended_bytes->Add(bytes);
        topic->pending.clear();  // views of the bytes CacheWritten() appends to
        CacheWritten(topic, first);
        if (!topic->unsynced) {
          topic->unsynced = true;
          unsynced_.push_back(topic);
        }
      }
    }
    topic->pending.clear();
    topic->pending_bytes.clear();
  }
  touched_.clear();
  FitDedupeBudget();
}

void FileEventLog::CacheWritten(Topic* topic, uint64_t first) {
  std::vector<StoredEvent> evicted;  // freed after cache_mu_ is released
  if (options_.tail_cache_bytes == 0 ||
      absl::ToUnixNanos(Now()) - topic->read_at_nanos.load(std::memory_order_relaxed) >
          absl::ToInt64Nanoseconds(kCacheWhileRead)) {
    // Nobody reads the topic's tail: caching it would only cost the writer.
    topic->pending_bytes.clear();
    if (topic->cached) {
      topic->cached = false;
      absl::MutexLock lock(&cache_mu_);
      DropCached(topic, &evicted);
    }
    return;
  }
  // The records hold the events' bytes followed by offset and publish_time:
  // the same appended here (in the room Prepare() reserved) make each buffer
  // the record's payload.
  AssignedFields fields(topic->commit_time);
  std::vector<StoredEvent> written;
  written.reserve(topic->pending_bytes.size());
  size_t bytes = 0;
  uint64_t offset = first;
  for (auto& [event, layout] : topic->pending_bytes) {
    fields.set_offset(offset);
    event.Append(fields.offset_field());
    event.Append(fields.time_field());
    bytes += event.size();
    written.emplace_back(std::move(event), offset, layout);
    ++offset;
  }
  topic->pending_bytes.clear();
  topic->cached = true;
  absl::MutexLock lock(&cache_mu_);
  if (!topic->cache.empty() && topic->cache.back().offset() + 1 != first) {
    DropCached(topic, &evicted);  // not the continuation (cannot happen): start over
  }
  for (StoredEvent& e : written) topic->cache.push_back(std::move(e));
  cache_bytes_ += bytes;
  cache_order_.emplace_back(topic, offset);
  // The oldest commits, of whichever topics, make room.
  while (cache_bytes_ > options_.tail_cache_bytes && !cache_order_.empty()) {
    auto [victim, end] = cache_order_.front();
    cache_order_.pop_front();
    while (!victim->cache.empty() && victim->cache.front().offset() < end) {
      cache_bytes_ -= victim->cache.front().size();
      evicted.push_back(std::move(victim->cache.front()));
      victim->cache.pop_front();
    }
  }
}

void FileEventLog::DropCached(Topic* topic, std::vector<StoredEvent>* evicted) {
  for (StoredEvent& e : topic->cache) {
    cache_bytes_ -= e.size();
    evicted->push_back(std::move(e));
  }
  topic->cache.clear();
  // Its commits leave the eviction order too, or the order would grow with
  // every pause of the topic's readers.
  cache_order_.erase(std::remove_if(cache_order_.begin(), cache_order_.end(),
                                    [topic](const auto& entry) { return entry.first == topic; }),
                     cache_order_.end());
}

FileEventLog::TailCacheStats FileEventLog::tail_cache_stats() const {
  absl::ReaderMutexLock lock(&cache_mu_);
  return TailCacheStats{cache_bytes_, cache_order_.size()};
}

bool FileEventLog::ReadCached(const Topic& topic, uint64_t from, size_t max_events,
                              size_t max_bytes, std::vector<StoredEvent>* out) const {
  // Read before the cache: what the cache holds beyond it is not durable.
  const uint64_t end = topic.log->DurableEnd();
  absl::ReaderMutexLock lock(&cache_mu_);
  const std::deque<StoredEvent>& cache = topic.cache;
  if (cache.empty() || from < cache.front().offset() || from > cache.back().offset()) {
    return false;
  }
  size_t bytes = 0;
  for (size_t i = from - cache.front().offset();
       i < cache.size() && out->size() < max_events && cache[i].offset() < end; ++i) {
    if (!out->empty() && bytes + cache[i].size() > max_bytes) break;
    bytes += cache[i].size();
    out->push_back(cache[i]);
  }
  return true;
}

void FileEventLog::UpdateDedupeStats(Topic* topic) {
  const size_t bytes = topic->dedupe.MemoryBytes();
  dedupe_bytes_ = dedupe_bytes_ - std::min(dedupe_bytes_, topic->dedupe_bytes.load()) + bytes;
  topic->dedupe_bytes.store(bytes);
  topic->dedupe_ids.store(topic->dedupe.size());
}

void FileEventLog::FitDedupeBudget() {
  if (dedupe_bytes_ <= options_.dedupe_max_bytes) return;
  const size_t target = options_.dedupe_max_bytes / 10 * 9;
  std::vector<Topic*> all;
  {
    absl::ReaderMutexLock lock(&topics_mu_);
    for (const auto& [name, topic] : topics_) all.push_back(topic.get());
  }
  // The largest windows give up their oldest ids first.
  std::sort(all.begin(), all.end(), [](const Topic* a, const Topic* b) {
    return a->dedupe_bytes.load() > b->dedupe_bytes.load();
  });
  for (Topic* topic : all) {
    if (dedupe_bytes_ <= target) break;
    const size_t excess_ids = (dedupe_bytes_ - target) / DedupeIndex::kBytesPerId + 1;
    const size_t keep = topic->dedupe.size() - std::min(topic->dedupe.size(), excess_ids);
    const size_t forgot = topic->dedupe.EvictOldest(keep);
    if (forgot == 0) continue;
    UpdateDedupeStats(topic);
    topic->dedupe_evicted.fetch_add(forgot);
    const absl::Time now = absl::Now();
    if (now - topic->dedupe_logged >= absl::Minutes(1)) {
      topic->dedupe_logged = now;
      RELAY_LOG(Warn, "storage: dedupe window shrunk to fit its memory budget",
                {{"topic", topic->name},
                 {"dedupe_max_bytes", absl::StrCat(options_.dedupe_max_bytes)},
                 {"forgot", absl::StrCat(forgot)},
                 {"remembered_from", absl::StrCat(topic->dedupe.first_offset())},
                 {"forgotten_total", absl::StrCat(topic->dedupe_evicted.load())}});
    }
  }
}

void FileEventLog::MakeDurable(bool sync) {
  std::vector<Topic*> advanced;
  if (failed_.ok()) {
    for (Topic* topic : unsynced_) {
      if (sync) {
        const absl::Time start = absl::Now();
        absl::Status status = topic->log->Sync();
        GetStorageMetrics().fsync_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));
        if (!status.ok()) {
          Fail(absl::Status(status.code(),
                            absl::StrCat("fsync of topic ", topic->name, ": ", status.message())));
          break;
        }
      } else {
        topic->log->MarkDurable();
      }
      if (topic->log->DurableEnd() > topic->notified_end) advanced.push_back(topic);
    }
    if (sync && failed_.ok()) {
      for (Topic* topic : unsynced_) topic->unsynced = false;
      unsynced_.clear();
      last_sync_ = absl::Now();
    }
  }
  if (!failed_.ok()) advanced.clear();  // nothing is acknowledged after a failure

  Completion completion;
  for (Topic* topic : advanced) {
    topic->notified_end = topic->log->DurableEnd();
    completion.advanced.emplace_back(topic, topic->notified_end);
  }
  completion.acks.swap(waiting_);
  if (completion.acks.empty() && completion.advanced.empty()) return;
  absl::MutexLock lock(&completions_mu_);
  completions_.push_back(std::move(completion));
}

bool FileEventLog::HasCompletions() const { return !completions_.empty() || writer_done_; }

void FileEventLog::CompleterLoop() {
  std::vector<Completion> batch;
  while (true) {
    bool done;
    {
      absl::MutexLock lock(&completions_mu_);
      completions_mu_.Await(absl::Condition(this, &FileEventLog::HasCompletions));
      batch.swap(completions_);
      done = writer_done_;
    }
    std::shared_ptr<const DurabilityListener> listener;
    {
      absl::MutexLock lock(&mu_);
      listener = listener_;
    }
    for (Completion& completion : batch) {
      // The listener first: it starts delivery, then the answers below write
      // to the publishers' sockets.
      if (listener != nullptr && *listener) {
        for (const auto& [topic, end] : completion.advanced) (*listener)(topic->name, end);
      }
      const absl::Time now = absl::Now();
      for (Ack& ack : completion.acks) {
        GetStorageMetrics().publish_durable_seconds->Observe(
            absl::ToDoubleSeconds(now - ack.received));
        ack.done(std::move(ack.result));
      }
    }
    batch.clear();
    // The writer queues nothing after it is done: what was queued is answered.
    if (done) break;
  }
}

void FileEventLog::Fail(const absl::Status& cause) {
  if (failed_.ok()) {
    failed_ = absl::InternalError(absl::StrCat(
        "storage failure, unacknowledged events may or may not be stored: ", cause.ToString()));
    RELAY_LOG(Error, "storage: failure, the event log accepts no more appends",
              {{"error", std::string(failed_.message())}});
    {
      // Nothing written and not synced may be found again by a restart.
      absl::ReaderMutexLock lock(&topics_mu_);
      for (auto& [name, topic] : topics_) {
        if (absl::Status s = topic->log->DropUnsynced(); !s.ok()) {
          RELAY_LOG(Error, "storage: cutting the unsynced tail off a failed topic failed",
                    {{"topic", name}, {"error", s.ToString()}});
        }
      }
    }
    FailureListener listener;
    {
      absl::MutexLock lock(&mu_);
      listener = failure_listener_;
    }
    if (listener) listener(failed_);
  }
  for (Ack& ack : waiting_) {
    if (ack.result.ok()) ack.result = failed_;
  }
}

// ---- Retention.

absl::Status FileEventLog::RunRetentionOnce() {
  std::vector<Topic*> topics;
  {
    absl::ReaderMutexLock lock(&topics_mu_);
    for (const auto& [name, topic] : topics_) topics.push_back(topic.get());
  }
  absl::Status first_error;
  const absl::Time now = Now();
  for (Topic* topic : topics) {
    TopicLog::RetentionPolicy policy;
    policy.now = now;
    policy.max_age = options_.retention_age;
    policy.max_bytes = options_.retention_bytes;
    policy.hard_max_bytes = options_.hard_max_bytes;
    {
      absl::MutexLock lock(&floors_mu_);
      auto it = floors_.find(topic->name);
      if (it != floors_.end()) policy.floor = it->second;
    }
    absl::StatusOr<TopicLog::RetentionResult> result = topic->log->DeleteOldSegments(policy);
    if (!result.ok()) {
      if (first_error.ok()) first_error = result.status();
      continue;
    }
    topic->forced_deleted_events.fetch_add(result->forced_deleted_events,
                                           std::memory_order_relaxed);
    if (result->deleted_segments > 0) {
      RELAY_LOG(Info, "storage: retention deleted segments",
                {{"topic", topic->name},
                 {"segments", absl::StrCat(result->deleted_segments)},
                 {"events", absl::StrCat(result->deleted_events)},
                 {"first_offset", absl::StrCat(topic->log->FirstOffset())}});
    }
  }
  return first_error;
}

}  // namespace relay::broker
