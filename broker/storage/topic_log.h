#ifndef RELAY_BROKER_STORAGE_TOPIC_LOG_H_
#define RELAY_BROKER_STORAGE_TOPIC_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "broker/storage/env.h"
#include "broker/storage/event_log.h"
#include "broker/storage/record.h"
#include "broker/storage/segment.h"
#include "broker/storage/stored_event.h"

namespace relay::broker {

// TopicLog is the segmented, append-only log of one topic: files
// `<dir>/%020llu.log` named by the base offset of their first record, a new
// one started when the current one would pass Options::segment_bytes.
// Offsets are dense from 0. Open() scans every segment and rebuilds the
// in-memory index; the torn or corrupt tail of the last segment is cut off,
// corruption inside an older segment keeps its valid prefix (the offsets
// after it become a hole that reads skip). Both are logged (common/log.h).
//
// Thread safety: one writer thread calls the writer methods (Append, Sync,
// MarkDurable, written_end, last_publish_time); readers and retention may run
// on any thread at the same time. Readers only see durable records.
//
//   TopicLog::Options options;
//   options.dir = "/data/topics/orders";
//   options.name = "orders";
//   absl::StatusOr<std::unique_ptr<TopicLog>> log = TopicLog::Open(options);
//   std::string bytes = event.SerializeAsString();
//   EventBytes e{bytes, crc32c::Value(bytes.data(), bytes.size())};
//   status = (*log)->Append({&e, 1}, absl::Now());  // offset (*log)->written_end()
//   status = (*log)->Sync();  // DurableEnd() moves past the event
class TopicLog {
 public:
  struct Options {
    Env* env = Env::Default();
    std::string dir;   // the topic's directory, created if missing
    std::string name;  // the topic, set on events read back
    // A segment rolls before a record would take it past this size (a single
    // larger record gets a segment of its own). At most 1 GiB.
    uint64_t segment_bytes = uint64_t{64} << 20;
    // The active segment keeps this much disk space reserved past its last
    // record (WritableFile::SetReserveStep; at most segment_bytes), so that
    // a small commit's fdatasync writes no inode. 0: plain appends.
    uint64_t reserve_bytes = uint64_t{1} << 20;
  };

  // What Open() found and repaired.
  struct RecoveryStats {
    uint64_t truncated_bytes = 0;   // cut from the tail of the last segment
    uint64_t unreadable_bytes = 0;  // kept but unindexed in older segments
    uint32_t damaged_segments = 0;  // segments whose valid prefix ended early
  };

  // Opens the log in options.dir, recovering what is there. `visit` (may be
  // null) sees every indexed record in offset order, e.g. to rebuild a
  // dedupe index. Errors on I/O failure only, never on bad data.
  static absl::StatusOr<std::unique_ptr<TopicLog>> Open(Options options,
                                                        const Segment::RecordVisitor& visit = {});

  TopicLog(const TopicLog&) = delete;
  TopicLog& operator=(const TopicLog&) = delete;
  ~TopicLog();

  const std::string& name() const { return options_.name; }
  const RecoveryStats& recovery() const { return recovery_; }

  // ---- Writer thread only.

  // The offset the next appended event must carry.
  uint64_t written_end() const { return written_end_; }
  // Publish time of the last record written (InfinitePast if none).
  absl::Time last_publish_time() const { return last_publish_time_; }

  // Writes `events` after the last record, as offsets written_end() and on,
  // published at `publish_time`, rolling segments as needed: one write(2)
  // per segment touched. Not durable nor readable until Sync() or
  // MarkDurable(). On error the log must not be appended to again.
  // REQUIRES: publish_time >= last_publish_time(); each event's bytes fit
  //           kMaxRecordPayloadBytes with the assigned fields.
  absl::Status Append(absl::Span<const EventBytes> events, absl::Time publish_time);

  // Syncs the written records and makes them readable (DurableEnd moves).
  absl::Status Sync();

  // Makes the written records readable without syncing them (FsyncPolicy::kNone).
  void MarkDurable();

  // Syncs and closes the active segment, cutting its reserved space: the
  // log's clean stop. Appends fail from then on; reads go on.
  absl::Status Seal();

  // After a failed write or sync: cuts what was written past the durable
  // end off the active segment's file, a failed write's partial records
  // too (a short write, then ENOSPC or EFBIG). Those bytes may sit in the page
  // cache, no longer dirty, after a failed fsync, and a broker restarted
  // without a reboot would recover them and serve them as durable (and
  // answer a retry of their events as a duplicate). Appends fail from then
  // on; reads go on.
  absl::Status DropUnsynced();

  // ---- Any thread.

  // One past the last durable record.
  uint64_t DurableEnd() const;
  // Oldest retained offset.
  uint64_t FirstOffset() const;

  // Durable events from `from` (clamped up to FirstOffset, or to the end of
  // a hole), at most `max_events` and about `max_bytes` of records (at least
  // one event if any), with consecutive offsets.
  absl::StatusOr<std::vector<Event>> Read(uint64_t from, size_t max_events, size_t max_bytes) const;

  // Read(), as the records' payloads (no Event built).
  absl::StatusOr<std::vector<StoredEvent>> ReadStored(uint64_t from, size_t max_events,
                                                      size_t max_bytes) const;

  // The first retained offset published at or after `t`, or DurableEnd().
  uint64_t OffsetForTime(absl::Time t) const;

  // Counts, bytes and range; forced_deleted_events is left 0.
  TopicStats Stats() const;

  // What retention may delete, see DeleteOldSegments.
  struct RetentionPolicy {
    absl::Time now;
    absl::Duration max_age = absl::InfiniteDuration();
    uint64_t max_bytes = UINT64_MAX;
    uint64_t hard_max_bytes = UINT64_MAX;
    std::optional<uint64_t> floor;  // none: no floor
  };
  struct RetentionResult {
    uint32_t deleted_segments = 0;
    uint64_t deleted_events = 0;
    uint64_t forced_deleted_events = 0;  // at or above the floor
  };

  // Deletes whole segments, oldest first, never the active (last) one nor
  // one with records not yet durable, while the oldest segment is older than
  // max_age (its last record) or the log is above max_bytes, provided it ends
  // at or below the floor. While the log is above hard_max_bytes, deletes
  // regardless of the floor and counts the events at or above it as forced.
  absl::StatusOr<RetentionResult> DeleteOldSegments(const RetentionPolicy& policy);

 private:
  explicit TopicLog(Options options);
  absl::Status Recover(const Segment::RecordVisitor& visit);
  // Writes buffer_[0, n) to the active segment and indexes positions_[first, last).
  absl::Status WriteBuffered(size_t n, size_t first, size_t last, absl::Time publish_time);
  absl::Status Roll(uint64_t base_offset);
  // Has the active segment's writer reserve space ahead (Options::reserve_bytes).
  void ReserveAhead();
  // Reads what Read() would return, as ranges of records of one segment:
  // read(segment, first offset, count, first record's start, end).
  using RangeReader =
      std::function<absl::Status(const Segment&, uint64_t, size_t, uint64_t, uint64_t)>;
  absl::Status ReadRanges(uint64_t from, size_t max_events, size_t max_bytes,
                          const RangeReader& read) const;
  // Index of the segment holding `offset`, or of the first one after it.
  size_t FindSegment(uint64_t offset) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Options options_;
  RecoveryStats recovery_;

  // Writer-thread state.
  std::shared_ptr<Segment> active_;
  uint64_t written_end_ = 0;
  absl::Time last_publish_time_ = absl::InfinitePast();
  std::string buffer_;               // framed records of one Append
  std::vector<uint64_t> positions_;  // their positions in their segment

  mutable absl::Mutex mu_;
  // Oldest first; never empty after Open. Segments are shared with readers
  // so that retention can drop one while a read is still using its file.
  std::vector<std::shared_ptr<Segment>> segments_ ABSL_GUARDED_BY(mu_);
  uint64_t durable_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t indexed_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_TOPIC_LOG_H_
