#ifndef RELAY_BROKER_STORAGE_JETSTREAM_EVENT_LOG_H_
#define RELAY_BROKER_STORAGE_JETSTREAM_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/storage/event_log.h"
#include "common/worker.h"

// The NATS C client's handles (nats.h), kept out of this header.
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __natsMsg natsMsg;
typedef struct jsPubAck jsPubAck;
typedef struct jsPubAckErr jsPubAckErr;

namespace relay::broker {

// JetStreamEventLog is the EventLog on NATS JetStream: each topic is a
// stream (file storage, `replicas` copies) with one subject
// (docs/JETSTREAM.md).
//
// - Names: stream "RELAY_" + topic with '.' written 'D', subject "relay." +
//   stream; topics above 249 characters get a hashed stream name and their
//   full name in the stream's description (broker/storage/jetstream_names.h).
// - Offsets: a Relay offset is the stream sequence minus one (offsets start
//   at 0, sequences at 1). Dense while nothing but limits deletes messages.
// - Append: a writer thread publishes the queued batches' events in order,
//   asynchronously (js_PublishMsgAsync, at most kMaxInFlight unanswered),
//   without waiting for acks in between (but for a while after a topic's
//   order chain was read, docs/JETSTREAM.md#order); a completer thread answers each
//   batch, in order, once all its events have their PubAck (a quorum of
//   the stream's replicas stored them) or an error. Payload: the
//   serialized Event (topic, offset and publish_time cleared, as the file
//   log stores it); header Nats-Msg-Id carries the event id (in a
//   header-safe form, broker/storage/jetstream_names.h). Publishes have a
//   connection of their own, one, which keeps the order: a topic's events
//   are stored in the order appended (docs/JETSTREAM.md#append).
// - Dedupe: JetStream's own duplicate window (the stream's `duplicates` =
//   dedupe_window). A duplicate's PubAck carries the original sequence and
//   duplicate=true; nothing is stored. Repeats within a batch, and of ids
//   the log saw stored lately, are answered so by the log itself, unsent
//   (docs/JETSTREAM.md#order).
// - Read: gets by sequence, up to kReadWindow in flight, replies in any
//   order: direct gets (any replica answers, no JSON) on single-replica
//   streams, the leader's message get (JSON, base64 payload) on replicated
//   ones, where a follower could miss an acknowledged message. A read
//   within the acknowledged range the log knows asks nothing else; one
//   past it (or finding the front deleted) first fetches the stream state.
// - OffsetForTime: binary search with js_GetMsg (log2(msgs) requests).
//   publish_time is JetStream's stored timestamp.
// - Retention: a pass every retention_check_interval (or
//   RunRetentionOnce()) purges each stream from the front, up to
//   min(the topic's retention floor, what retention_age and retention_bytes
//   would delete), with one js_PurgeStream up to a sequence. JetStream's
//   own limits stay the hard cap and ignore floors: max_bytes =
//   hard_max_bytes, max_age = max_age (off by default); events they delete
//   at or above a floor are logged and counted
//   (docs/JETSTREAM.md#retention).
// - DurableEnd / FirstOffset come from a per-topic cache, advanced by the
//   acks and refreshed from the stream state on Open, Read, OffsetForTime
//   and ListTopics. Appends by another broker on the same stream show up
//   only on such a refresh.
//
// A publish that fails (no ack within request_timeout, no JetStream leader)
// fails its batch with UNAVAILABLE naming the first failed event: events
// before it may or may not be stored, none after it is (a retry with the
// same ids is deduplicated). Each publish expects the stream's last
// sequence to be the one its predecessor gets (Nats-Expected-Last-Sequence),
// so nothing is stored past an event that was not (after the chain was read
// again, publishes go alone until none of the log's older publishes can
// still take a place); after a failure the log
// refuses the topic's batches until its publishes in flight are answered,
// then reads the stream's last sequence again; and a batch of an
// AppendOrigin that had a batch fail is refused (docs/JETSTREAM.md#order).
// The log stays usable: the connections reconnect forever, waiting
// reconnect_wait between attempts.
//
// Thread-safe. `done` and the durability listener run on the completer
// thread with no lock of the log held; they must not block or call Close(). After
// Close(), Append calls `done` (UNAVAILABLE) inline on the caller's thread,
// and Read fails with UNAVAILABLE (the connection is gone; FileEventLog
// still reads): the broker closes its log only after its last reader
// stopped (BrokerServer::Shutdown).
//
//   JetStreamEventLog::Options options;
//   options.servers = "nats://n1:4222,nats://n2:4222,nats://n3:4222";
//   options.replicas = 3;
//   absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
class JetStreamEventLog final : public EventLog {
 public:
  // Publishes of the writer that may await their ack at once.
  static constexpr size_t kMaxInFlight = 8192;
  // ... and their payload bytes at most (one publish always may).
  static constexpr size_t kMaxInFlightBytes = size_t{64} << 20;
  // Gets a Read may have unanswered.
  static constexpr uint64_t kReadWindow = 256;

  struct Options {
    // Comma-separated NATS URLs, e.g. "nats://127.0.0.1:4222". Required.
    std::string servers;
    // Copies of each stream, in [1, 5] (a quorum of them acks a publish).
    int replicas = 1;
    // JetStream's duplicate window of each stream: how long an event id is
    // remembered. Positive; at most max_age when that is set.
    absl::Duration dedupe_window = absl::Hours(24);
    // The stream's max_bytes (discard old): the hard cap, which ignores
    // retention floors. 0: no cap.
    uint64_t hard_max_bytes = uint64_t{4} << 30;
    // The stream's max_age; zero: none. Ignores retention floors too.
    absl::Duration max_age = absl::ZeroDuration();
    // Retention by the log's own pass, which keeps every event at or after
    // the topic's retention floor: events stored longer ago than
    // retention_age (JetStream's stored time against `clock`), and the
    // oldest while the stream holds more than retention_bytes (estimated
    // from the stream's average message size). Zero turns a rule off.
    absl::Duration retention_age = absl::Hours(24 * 7);
    uint64_t retention_bytes = uint64_t{1} << 30;
    // Period of the retention pass; zero or infinite: none.
    absl::Duration retention_check_interval = absl::Seconds(10);
    // The retention pass's "now" (absl::Now when empty). Tests inject one.
    std::function<absl::Time()> clock;
    // Open() fails when no server answers within this.
    absl::Duration connect_timeout = absl::Seconds(5);
    // Wait for each JetStream request and each publish's ack.
    absl::Duration request_timeout = absl::Seconds(5);
    // Pause between reconnect attempts (which go on forever).
    absl::Duration reconnect_wait = absl::Seconds(1);
  };

  // Connects, checks that JetStream answers and loads the state of the
  // existing Relay streams, then starts the writer thread.
  // INVALID_ARGUMENT for bad options; UNAVAILABLE "cannot reach NATS at
  // <servers>: ..." when no server answers within connect_timeout, or when
  // JetStream does not.
  static absl::StatusOr<std::unique_ptr<JetStreamEventLog>> Open(Options options);

  JetStreamEventLog(const JetStreamEventLog&) = delete;
  JetStreamEventLog& operator=(const JetStreamEventLog&) = delete;
  // Close()s.
  ~JetStreamEventLog() override;

  void Append(const std::string& topic, std::vector<Event> events, AppendDone done) override;
  void Append(const std::string& topic, std::vector<Event> events, AppendDone done,
              const std::shared_ptr<AppendOrigin>& origin) override;
  uint64_t DurableEnd(absl::string_view topic) const override;
  uint64_t FirstOffset(absl::string_view topic) const override;
  // UNAVAILABLE when JetStream does not answer.
  absl::StatusOr<std::vector<Event>> Read(absl::string_view topic, uint64_t from, size_t max_events,
                                          size_t max_bytes) const override;
  // DurableEnd when JetStream does not answer (and logs it).
  uint64_t OffsetForTime(absl::string_view topic, absl::Time t) const override;
  // Every Relay stream on the server; the cached state when it does not
  // answer (and logs it).
  std::vector<TopicStats> ListTopics() const override;
  void SetDurabilityListener(DurabilityListener listener) override;
  void SetRetentionFloor(const std::string& topic, uint64_t offset) override;
  // Stops the retention pass, publishes the queued batches (or, when NATS
  // is unreachable, fails them at once), waits for every answer, flushes
  // and closes the connections. Returns OK.
  absl::Status Close() override;

  // Publishes sent and not answered yet, over every topic.
  size_t publishes_in_flight() ABSL_LOCKS_EXCLUDED(acks_mu_);

  // Runs one retention pass over every Relay stream now. Returns the first
  // error (JetStream did not answer a listing or a purge); the other
  // streams are still handled.
  absl::Status RunRetentionOnce();

 private:
  struct Chain;
  struct Batch {
    std::string topic;
    std::vector<std::string> payloads;  // serialized events
    std::vector<std::string> ids;
    // Per event: the index of an earlier event of the batch with the same
    // id (it is not sent, and gets that one's offset as a duplicate), or
    // kNotARepeat. Empty when no id repeats.
    std::vector<size_t> repeat_of;
    absl::Status error;  // a refused batch, answered by the writer thread
    AppendDone done;
    std::shared_ptr<AppendOrigin> origin;  // may be null
    const Chain* chain = nullptr;          // its topic's, once published
    uint64_t chain_epoch = 0;              // the chain's epoch then
    // Filled while it is published; guarded by acks_mu_ once in in_flight_.
    std::vector<AppendResult> results;
    std::vector<bool> acked;
    size_t failed_at = SIZE_MAX;  // the first event that failed, if any
    absl::Status failure;         // that event's error
    bool stream_missing = false;  // an ack said the stream is gone
    size_t pending = 0;           // events not answered yet
  };
  // What the log knows of a topic's stream.
  struct StreamState {
    // Created, or seen on the server; false again after a publish no
    // stream answered (Doubt: the next append checks), offsets kept.
    bool exists = false;
    uint64_t first_seq = 0;  // JetStream's FirstSeq (0 or last_seq+1 when empty)
    uint64_t last_seq = 0;
    uint64_t msgs = 0;
    uint64_t bytes = 0;
    bool direct = false;  // direct gets are as current as the leader (one replica)
  };

  static constexpr size_t kNotARepeat = SIZE_MAX;
  // The writer's order of a topic's publishes (docs/JETSTREAM.md#order).
  struct Chain {
    // Not read yet, or an answer did not fit (an error, a duplicate,
    // another sequence): the publishes still in flight fail, and once none
    // is, the writer reads the stream's last sequence before it sends more.
    bool broken = true;
    // The stream's last sequence once every publish sent so far is stored.
    uint64_t last_seq = 0;
    // A publish since the chain was read is stored where it expected, at
    // or past sent_end (or once careful_until passed): the log's
    // publishes from before cannot go in any more. Until then the writer
    // sends one publish of the topic at a time (PublishEvent).
    bool anchored = false;
    // When the chain was read again after it broke: the count it had (the
    // older publishes expected places below it), and a time after which
    // none of them is taken to be still on its way.
    uint64_t sent_end = 0;
    absl::Time careful_until = absl::InfinitePast();
    // Moved by ForgetChain: batches of an older epoch are not remembered.
    uint64_t epoch = 0;
    size_t awaiting = 0;  // publishes of the topic without an answer
  };
  // Message ids the log saw stored (acked, or answered as duplicates) with
  // their topic's chain and sequence, the oldest forgotten beyond
  // `capacity` (one entry per id: an id stored in two topics is
  // remembered for the later). A repeat of a remembered id within
  // dedupe_window is answered as a duplicate without a publish: the
  // publishes sent behind a duplicate would expect it to move the stream's
  // end, which it does not, and fail.
  class IdMemory {
   public:
    struct Entry {
      const Chain* chain;  // its topic's
      uint64_t seq;
      absl::Time at;
      uint64_t generation;  // matches its place in order_
    };
    explicit IdMemory(size_t capacity) : capacity_(capacity) {}
    void Put(const Chain* chain, const std::string& id, uint64_t seq, absl::Time at);
    const Entry* Find(const Chain* chain, absl::string_view id) const;
    void Forget(const Chain* chain);

   private:
    const size_t capacity_;
    uint64_t generation_ = 0;
    absl::flat_hash_map<std::string, Entry> entries_;
    std::deque<std::pair<std::string, uint64_t>> order_;
  };
  // One Relay topic's stream as the server describes it.
  struct RelayStream {
    std::string topic;
    std::string stream;
    StreamState state;
    uint64_t bytes = 0;
    // Of the first and last messages; InfinitePast when empty, as in
    // TopicStats.
    absl::Time first_time = absl::InfinitePast();
    absl::Time last_time = absl::InfinitePast();
  };

  explicit JetStreamEventLog(Options options);
  absl::Status Connect();
  absl::Status LoadStreams();
  // Every stream that holds a Relay topic (one js_Streams request; other
  // streams on the server are left out). UNAVAILABLE when it is not
  // answered.
  absl::StatusOr<std::vector<RelayStream>> ListRelayStreams() const;

  // Writer thread.
  void WriterLoop();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `taken` into in_flight_ and publishes their events.
  void Publish(std::vector<Batch>& taken);
  // Completer thread: answers in_flight_'s batches in order.
  void CompleterLoop();
  bool HeadAnsweredOrDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(acks_mu_);
  void PublishEvent(Batch& batch, size_t index, const std::string& stream,
                    const std::string& subject, Chain* chain);
  // Condition of the probe's wait (PublishEvent), under acks_mu_.
  static bool ChainIdle(Chain* chain);
  // The chain of `topic`, read from the stream when it is broken (or new); UNAVAILABLE while a
  // broken chain has publishes in flight, or when the stream does not answer. Writer thread.
  absl::StatusOr<Chain*> ReadyChain(const std::string& topic) ABSL_LOCKS_EXCLUDED(acks_mu_);
  // Remembers what `batch` stored or found stored: in recent_ids_, and
  // when the batch failed (it will be retried) in failed_batch_ids_.
  void RememberStored(const Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(acks_mu_);
  // Its chain and the ids remembered of it go (its stream may be gone).
  void ForgetChain(const std::string& topic) ABSL_LOCKS_EXCLUDED(acks_mu_);
  // The stream of `topic` was made anew (the cache holds its new state):
  // ForgetChain, and a warning.
  void MadeAnew(const std::string& topic) ABSL_LOCKS_EXCLUDED(acks_mu_);
  // Event `index` of `batch` is answered (`error` OK: acked, its result
  // set); the batch's first failure is kept.
  void Answer(Batch& batch, size_t index, absl::Status error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(acks_mu_);
  // What `done` gets for a published batch; updates the stream cache.
  absl::StatusOr<std::vector<AppendResult>> Outcome(Batch& batch);
  // The C client's ack callback (its reply thread): `closure` is the log.
  static void OnPublishAck(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                           void* closure);
  bool RoomInFlight() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(acks_mu_);
  // Answers every publish awaiting its ack with UNAVAILABLE `why`.
  void FailAwaiting(absl::string_view why) ABSL_LOCKS_EXCLUDED(acks_mu_);
  absl::Status EnsureStream(const std::string& topic);

  // What one Read returns: consecutive offsets, at most max_events and
  // about max_bytes (at least one event).
  class ReadResult {
   public:
    // skip_leading_holes: events missing before the first one found are
    // skipped (else the read ends there, empty).
    ReadResult(absl::string_view topic, std::string stream, size_t max_events, size_t max_bytes,
               bool skip_leading_holes);
    // Adds the event stored at `seq`. False when no later event fits (this
    // one is added unless it is over max_bytes). DATA_LOSS when the payload
    // is not an Event.
    absl::StatusOr<bool> Add(uint64_t seq, const char* data, int size, absl::Time stored);
    bool empty() const { return events_.empty(); }
    bool skip_leading_holes() const { return skip_leading_holes_; }
    const std::string& topic() const { return topic_; }
    const std::string& stream() const { return stream_; }
    std::vector<Event> Take() { return std::move(events_); }

   private:
    const std::string topic_;
    const std::string stream_;
    const size_t max_events_;
    const size_t max_bytes_;
    const bool skip_leading_holes_;
    size_t bytes_ = 0;
    std::vector<Event> events_;
  };
  // Read() within `state`.
  absl::StatusOr<std::vector<Event>> ReadRange(absl::string_view topic, const StreamState& state,
                                               uint64_t from, size_t max_events, size_t max_bytes,
                                               bool skip_leading_holes) const;
  // Gets `first`..`last` into `out`, `window` requests in flight: direct
  // gets (any replica; only when that is current) or the stream leader's
  // message get. Each skipped leading hole moves `last` one further, up to
  // `end` (the stream's last sequence).
  absl::Status ReadPipelined(ReadResult& out, uint64_t first, uint64_t last, uint64_t end,
                             uint64_t window, bool direct) const;

  // Asks the server for the stream of `topic`; NOT_FOUND when it has none.
  // Updates the cache.
  absl::StatusOr<StreamState> FetchStreamState(absl::string_view topic) const;
  // The first sequence of `stream` (in `state`'s range) stored at or after
  // `t`; last_seq + 1 when none. log2(msgs) js_GetMsg requests.
  absl::StatusOr<uint64_t> FirstSeqAtOrAfter(const std::string& stream, const StreamState& state,
                                             absl::Time t) const;
  void Remember(absl::string_view topic, const StreamState& state) const;
  StreamState Cached(absl::string_view topic) const;
  // The next append of `topic` checks its stream (EnsureStream) again; what
  // is cached of its offsets stays until the server says otherwise.
  void Doubt(absl::string_view topic);

  // Retention of one stream; `first_seq`, `last_seq`, `msgs`, `bytes` are
  // its state from the pass's listing.
  uint64_t ForcedDeleted(absl::string_view topic) const;
  absl::Status RetainStream(const std::string& topic, const std::string& stream,
                            const StreamState& state, uint64_t bytes, absl::Time now);

  const Options options_;
  natsConnection* nc_ = nullptr;          // owned; thread-safe (nats.c)
  jsCtx* js_ = nullptr;                   // owned; thread-safe (nats.c)
  natsConnection* publish_nc_ = nullptr;  // owned; the writer's publishes only
  jsCtx* publish_js_ = nullptr;           // owned; on publish_nc_, acks to OnPublishAck
  // The replies of every Read's gets, on one subscription for the
  // connection's life (docs/JETSTREAM.md#read).
  class ReadReplies;
  std::unique_ptr<ReadReplies> replies_;
  int64_t max_payload_ = 0;  // the server's max_payload, read on Open

  // Lock order: close_mu_ → mu_; acks_mu_, streams_mu_ and floors_mu_
  // are leaves.
  absl::Mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;

  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(close_mu_);
  std::vector<Batch> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const DurabilityListener> listener_ ABSL_GUARDED_BY(mu_);

  // Batches taken by the writer, in order, until the completer answers
  // them; the publishes awaiting their ack: message → its batch and index.
  absl::Mutex acks_mu_;
  std::deque<std::unique_ptr<Batch>> in_flight_ ABSL_GUARDED_BY(acks_mu_);
  bool writer_done_ ABSL_GUARDED_BY(acks_mu_) = false;  // it took its last batch
  struct Awaiting {
    Batch* batch;
    size_t index;
    size_t bytes;
    Chain* chain;
    uint64_t expected_last_seq;
    bool probe;  // sent alone, the chain not anchored yet
  };
  absl::flat_hash_map<const natsMsg*, Awaiting> awaiting_ ABSL_GUARDED_BY(acks_mu_);
  size_t awaiting_bytes_ ABSL_GUARDED_BY(acks_mu_) = 0;
  // Per topic; node map: Awaiting holds pointers.
  absl::node_hash_map<std::string, Chain> chains_ ABSL_GUARDED_BY(acks_mu_);
  // What every batch stored lately, and apart (so that a busy topic does
  // not push them out before the retry comes) what failed batches stored.
  IdMemory recent_ids_ ABSL_GUARDED_BY(acks_mu_){16384};
  IdMemory failed_batch_ids_ ABSL_GUARDED_BY(acks_mu_){65536};

  mutable absl::Mutex streams_mu_;
  mutable absl::flat_hash_map<std::string, StreamState> streams_ ABSL_GUARDED_BY(streams_mu_);

  // What retention knows per topic: the floor, and what the limits deleted
  // at or above it.
  struct Retained {
    std::optional<uint64_t> floor;
    // The first offset the last pass saw: events between it and the next
    // pass's first offset that it did not purge went by the limits.
    std::optional<uint64_t> first_offset;
    uint64_t forced_deleted_events = 0;
  };
  mutable absl::Mutex floors_mu_;
  absl::flat_hash_map<std::string, Retained> retained_ ABSL_GUARDED_BY(floors_mu_);

  std::thread writer_;
  std::thread completer_;
  // Runs RunRetentionOnce() every retention_check_interval; null when that
  // is not a period. Stopped first by Close(), while the connection is up.
  std::unique_ptr<relay::Worker> retention_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_JETSTREAM_EVENT_LOG_H_
