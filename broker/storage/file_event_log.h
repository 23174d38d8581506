#ifndef RELAY_BROKER_STORAGE_FILE_EVENT_LOG_H_
#define RELAY_BROKER_STORAGE_FILE_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/storage/dedupe_index.h"
#include "broker/storage/env.h"
#include "broker/storage/event_log.h"
#include "broker/storage/stored_event.h"
#include "broker/storage/topic_log.h"
#include "common/worker.h"

namespace relay::broker {

// When an append counts as durable.
enum class FsyncPolicy {
  kBatch,     // fsync every group commit before acking it (the default)
  kInterval,  // fsync at most every fsync_interval; ack after that fsync
  kNone,      // ack after write(2): a power cut may lose acked events
};

// FileEventLog is the embedded EventLog: one TopicLog (segment files) per
// topic under `<data_dir>/topics/<topic>/`.
//
// Group commit: Append() serializes the batch on the caller's thread and
// queues it. One writer thread takes everything queued, assigns offsets,
// drops duplicates, writes each touched topic's records with one write(2),
// then, per FsyncPolicy, fsyncs each touched topic once and hands the commit
// to the completer thread, which calls the durability listener once per
// topic, then every batch's `done`, in commit order. Appends arriving
// meanwhile form the next commit; the writer does not wait for the
// completer. `<data_dir>/topics/LOCK` keeps a second
// log (or process) out of the directory.
//
// Tail cache: the events written last (Options::tail_cache_bytes over all
// topics) stay in memory as the records' payloads, shared with the readers
// (StoredEvent), so that consumers keeping up never read a file back nor
// parse an event. ReadStored() serves from it what is durable. Only topics
// ReadStored() read in the last 5 s (Options::clock) are cached: a topic
// nobody consumes costs the writer nothing more, and its cached events go
// when its readers pause.
//
// Dedupe: per topic, the ids of the events published within dedupe_window
// (rebuilt on Open from the records themselves). Retention: a background pass
// every retention_check_interval, or RunRetentionOnce().
//
// A failed write or fsync stops the log: the batches not yet acked fail with
// INTERNAL, later appends with UNAVAILABLE; reopening recovers.
//
// Thread-safe. Differences from the EventLog contract: after Close(), Append
// calls `done` (UNAVAILABLE) inline on the caller's thread, not from a log
// thread; `done` and the listener must not call Close().
//
//   FileEventLog::Options options;
//   options.data_dir = "/var/lib/relay";
//   absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options);
//   (*log)->Append("orders", std::move(events), [](auto results) { ... });
class FileEventLog final : public EventLog {
 public:
  struct Options {
    // Holds `topics/`; created if missing (its parent must exist).
    std::string data_dir;
    // Not owned; must outlive the log.
    Env* env = Env::Default();
    FsyncPolicy fsync_policy = FsyncPolicy::kBatch;
    // For FsyncPolicy::kInterval: the longest an append waits for its fsync.
    absl::Duration fsync_interval = absl::Milliseconds(10);
    // A segment file rolls at about this size. In [4 KiB, 1 GiB].
    uint64_t segment_bytes = uint64_t{64} << 20;
    // How long an event id is remembered for dedupe (by publish time).
    absl::Duration dedupe_window = absl::Hours(24);
    // Memory for the dedupe windows of all topics together (about 24 bytes
    // an id: the default holds ~5.6M ids). Above it, the topics with the
    // largest windows forget their oldest ids first, down to 90% of the
    // budget: the window gets shorter than dedupe_window, which is logged
    // ("dedupe window shrunk") and counted (TopicStats::dedupe_evicted).
    // A publisher retrying an event older than the shortened window then
    // appends it again; consumers' inboxes absorb that.
    size_t dedupe_max_bytes = size_t{128} << 20;
    // Retention, per topic: whole segments whose last event is older than
    // retention_age, or while the topic is above retention_bytes, provided
    // they end at or below the topic's retention floor.
    absl::Duration retention_age = absl::Hours(24 * 7);
    uint64_t retention_bytes = uint64_t{1} << 30;
    // Above this, retention ignores the floor. At least retention_bytes.
    uint64_t hard_max_bytes = uint64_t{4} << 30;
    // Period of the background retention pass; zero or infinite: none.
    absl::Duration retention_check_interval = absl::Seconds(10);
    // Memory for the events last written to any topic, kept (as the
    // records' bytes) so that consumers read the tail without reading the
    // files back or parsing (ReadStored). The oldest go first.
    size_t tail_cache_bytes = size_t{32} << 20;
    // Publish times, dedupe window and retention age read this clock
    // (absl::Now when empty). Tests inject a fake one.
    std::function<absl::Time()> clock;
  };

  // Opens (or creates) the log in options.data_dir: discovers every topic
  // directory, recovers its segments (cutting torn tails), rebuilds the
  // dedupe windows, then starts the writer and retention threads.
  // INVALID_ARGUMENT for bad options, FAILED_PRECONDITION if another log has
  // the directory open, else the I/O error.
  static absl::StatusOr<std::unique_ptr<FileEventLog>> Open(Options options);

  FileEventLog(const FileEventLog&) = delete;
  FileEventLog& operator=(const FileEventLog&) = delete;
  // Close()s.
  ~FileEventLog() override;

  using EventLog::Append;  // with an origin: ignored (see EventLog)
  void Append(const std::string& topic, std::vector<Event> events, AppendDone done) override;
  // Serializes `events` where they are: nothing is moved or freed.
  void AppendFrom(const std::string& topic, google::protobuf::RepeatedPtrField<Event>* events,
                  AppendDone done, const std::shared_ptr<AppendOrigin>& origin) override;
  uint64_t DurableEnd(absl::string_view topic) const override;
  uint64_t FirstOffset(absl::string_view topic) const override;
  absl::StatusOr<std::vector<Event>> Read(absl::string_view topic, uint64_t from, size_t max_events,
                                          size_t max_bytes) const override;
  // From the tail cache when `from` is in it, else from the files.
  absl::StatusOr<std::vector<StoredEvent>> ReadStored(absl::string_view topic, uint64_t from,
                                                      size_t max_events,
                                                      size_t max_bytes) const override;
  bool ServesTailFromMemory() const override { return options_.tail_cache_bytes > 0; }
  uint64_t OffsetForTime(absl::string_view topic, absl::Time t) const override;
  std::vector<TopicStats> ListTopics() const override;
  void SetDurabilityListener(DurabilityListener listener) override;
  void SetFailureListener(FailureListener listener) override;
  void SetRetentionFloor(const std::string& topic, uint64_t offset) override;
  // Returns the first write or fsync error the log met, if any.
  absl::Status Close() override;

  // Runs one retention pass over every topic now. Returns the first error
  // (a segment that could not be removed).
  absl::Status RunRetentionOnce();

  // What the tail cache holds now: event bytes and commits.
  struct TailCacheStats {
    size_t bytes = 0;
    size_t commits = 0;
  };
  TailCacheStats tail_cache_stats() const;

 private:
  struct Topic;
  // An event of a batch, serialized by Append() on the caller's thread so
  // that the writer thread only copies bytes.
  struct PreparedEvent {
    // The event serialized, with room reserved for the fields the writer
    // appends (kAssignedFieldsMaxBytes): then a record's payload as is, and
    // what the tail cache holds.
    SharedBytes bytes;
    StoredEvent::Layout layout;
    uint32_t crc;
    DedupeIndex::Key key;
    bool has_id;
  };
  struct Batch {
    std::string topic;
    std::vector<PreparedEvent> events;
    absl::Status error;  // a refused batch, answered by the writer thread
    AppendDone done;
    absl::Time received;  // when Append() took it
  };
  // A batch's answer, held until its events are durable.
  struct Ack {
    AppendDone done;
    absl::StatusOr<std::vector<AppendResult>> result;
    absl::Time received;
  };
  // What one MakeDurable() hands the completer thread: the topics whose
  // durable end advanced (for the listener), then the batches answered.
  struct Completion {
    std::vector<std::pair<const Topic*, uint64_t>> advanced;
    std::vector<Ack> acks;
  };

  explicit FileEventLog(Options options);
  absl::StatusOr<std::unique_ptr<Topic>> OpenTopic(const std::string& name);
  absl::Status DiscoverTopics();
  const Topic* FindTopic(absl::string_view name) const;
  absl::Time Now() const;

  // Writer thread.
  void WriterLoop();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Topic*> GetOrCreateTopic(const std::string& name);
  void StartTopicCommit(Topic* topic);
  // `Events`: std::vector<Event> or RepeatedPtrField<Event>.
  template <typename Events>
  static void Prepare(Events& events, Batch* batch);
  template <typename Events>
  void Enqueue(const std::string& topic, Events& events, AppendDone done);
  // Takes the batch's event bytes.
  absl::StatusOr<std::vector<AppendResult>> AssignBatch(Topic* topic, Batch& batch);
  void WriteCommit(std::vector<Batch>* commit);
  // Syncs (or, if !sync, only publishes) what was written, then hands the
  // waiting batches' answers and the listener's calls to the completer.
  void MakeDurable(bool sync);

  // Completer thread: calls the listener and the batches' `done`, in commit
  // order, so that the writer starts the next commit as soon as its fsync
  // returns instead of first writing every answer to its socket.
  void CompleterLoop();
  bool HasCompletions() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(completions_mu_);
  void Fail(const absl::Status& cause);

  // Stamps the events of `topic`'s commit just written (offsets from
  // `first`) and adds them to the tail cache (writer thread).
  void CacheWritten(Topic* topic, uint64_t first);
  // Empties `topic`'s part of the tail cache into `evicted`.
  void DropCached(Topic* topic, std::vector<StoredEvent>* evicted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_mu_);
  // Serves ReadStored from the tail cache: false when `from` is not cached.
  bool ReadCached(const Topic& topic, uint64_t from, size_t max_events, size_t max_bytes,
                  std::vector<StoredEvent>* out) const;

  // Keeps the dedupe windows within dedupe_max_bytes (writer thread).
  void FitDedupeBudget();
  void UpdateDedupeStats(Topic* topic);

  const Options options_;
  std::unique_ptr<FileLock> lock_;

  mutable absl::Mutex mu_;
  std::vector<Batch> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const DurabilityListener> listener_ ABSL_GUARDED_BY(mu_);
  FailureListener failure_listener_ ABSL_GUARDED_BY(mu_);

  absl::Mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;

  // Topics are added by the writer thread and never removed.
  mutable absl::Mutex topics_mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Topic>> topics_ ABSL_GUARDED_BY(topics_mu_);

  // The tail cache: each topic's cached events (Topic::cache, consecutive
  // offsets, possibly not durable yet: reads stop at DurableEnd), and the
  // order they came in across topics, oldest first, for eviction.
  mutable absl::Mutex cache_mu_;
  // (topic, one past the last offset of a commit).
  std::deque<std::pair<Topic*, uint64_t>> cache_order_ ABSL_GUARDED_BY(cache_mu_);
  size_t cache_bytes_ ABSL_GUARDED_BY(cache_mu_) = 0;

  mutable absl::Mutex floors_mu_;
  absl::flat_hash_map<std::string, uint64_t> floors_ ABSL_GUARDED_BY(floors_mu_);

  // Writer-thread state.
  absl::Status failed_;           // sticky: the first write/fsync error
  std::vector<Topic*> touched_;   // topics with events in the current commit
  std::vector<Topic*> unsynced_;  // topics written since their last fsync
  std::vector<Ack> waiting_;      // answers waiting for durability
  absl::Time last_sync_;
  size_t dedupe_bytes_ = 0;  // sum of the topics' dedupe.MemoryBytes()

  // Written by the writer thread before it exits, read by Close().
  absl::Status final_status_;

  // From the writer to the completer, oldest first.
  absl::Mutex completions_mu_;
  std::vector<Completion> completions_ ABSL_GUARDED_BY(completions_mu_);
  // The writer has exited: the completer drains completions_ and exits.
  bool writer_done_ ABSL_GUARDED_BY(completions_mu_) = false;

  std::thread completer_;
  std::thread writer_;
  // Runs RunRetentionOnce() every retention_check_interval; null when that
  // is not a period. Last, so it stops before the state it reads goes.
  std::unique_ptr<relay::Worker> retention_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_FILE_EVENT_LOG_H_
