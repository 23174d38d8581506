#ifndef RELAY_BROKER_STORAGE_SEGMENT_H_
#define RELAY_BROKER_STORAGE_SEGMENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/storage/env.h"
#include "broker/storage/record.h"
#include "broker/storage/stored_event.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {

// One segment file of a topic log: the records of offsets
// [base_offset(), end_offset()), dense, in offset order, in a file named
// after its base offset. Holds the in-memory index of its records (file
// position of each, publish time runs) and the files to read and append.
//
// Thread safety: the index (every non-static method except ReadEvents,
// ReadStored and writer()) is NOT synchronized; the owning TopicLog guards it
// with its mutex. ReadEvents and ReadStored are thread-safe. writer() belongs
// to the one writer thread.
class Segment {
 public:
  // Called for each record indexed during recovery, in offset order.
  using RecordVisitor = std::function<void(const RecordMeta&)>;

  // What recovery found in a segment file.
  struct Recovery {
    uint64_t file_bytes = 0;
    uint64_t valid_bytes = 0;  // the indexed prefix
    // Why the prefix ends early; empty if it does not. Zeros after the
    // prefix are reserved space (WritableFile::SetReserveStep), no problem.
    std::string problem;
    // The zeros that end the file, after the valid prefix: reserved space
    // (file_bytes - valid_bytes - zero_tail_bytes bytes of a torn write or
    // damage come before them).
    uint64_t zero_tail_bytes = 0;
  };

  // "%020llu.log" of `base_offset`.
  static std::string FileName(uint64_t base_offset);

  // Parses a name made by FileName(); false for any other name.
  static bool ParseFileName(absl::string_view name, uint64_t* base_offset);

  // Creates an empty segment file in `dir`, open for appending.
  static absl::StatusOr<std::unique_ptr<Segment>> Create(Env* env, const std::string& dir,
                                                         uint64_t base_offset);

  // Scans the existing segment file in `dir` and indexes its longest valid
  // prefix: intact records whose offsets run densely from `base_offset` and
  // stay below `limit_offset`. Never modifies the file. `visit` (may be null)
  // sees each indexed record. Errors only when the file cannot be read.
  static absl::StatusOr<std::unique_ptr<Segment>> Recover(Env* env, const std::string& dir,
                                                          uint64_t base_offset,
                                                          uint64_t limit_offset,
                                                          const RecordVisitor& visit,
                                                          Recovery* recovery);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& path() const { return path_; }
  uint64_t base_offset() const { return base_offset_; }
  uint64_t end_offset() const { return base_offset_ + positions_.size(); }
  uint64_t records() const { return positions_.size(); }
  // Bytes of the indexed records.
  uint64_t bytes() const { return bytes_; }
  // Publish times of the first and last record; InfinitePast when empty.
  absl::Time first_time() const;
  absl::Time last_time() const;

  // Publish time of the record at `offset`.
  // REQUIRES: base_offset() <= offset < end_offset().
  absl::Time TimeOf(uint64_t offset) const;

  // The first offset whose publish time is >= t, or end_offset().
  uint64_t OffsetForTime(absl::Time t) const;

  // File position of the record at `offset` and one past its end.
  // REQUIRES: base_offset() <= offset < end_offset().
  uint64_t RecordStart(uint64_t offset) const;
  uint64_t RecordEnd(uint64_t offset) const;

  // Cuts the file to the indexed prefix (recovery of a torn tail).
  absl::Status TruncateToIndexed(Env* env);

  // Closes the file for appending and cuts it before the record at `offset`
  // (at the indexed end when offset >= end_offset()), reserved space
  // included: for a log that failed, whose records from `offset` on were
  // never durable. The index stays (readers stop at the durable end).
  absl::Status CutAt(Env* env, uint64_t offset);

  // Opens the file for appending after the indexed prefix.
  // REQUIRES: the file holds exactly the indexed prefix.
  absl::Status OpenForAppend(Env* env);

  // The file open for appending, or null when sealed. Writer thread only.
  WritableFile* writer() { return writer_.get(); }

  // Syncs and closes the writer: the segment takes no more records.
  absl::Status Seal();

  // Indexes records already written to the file at positions[begin, end)
  // (ascending, from bytes()), published at `publish_time`, the last ending
  // at `new_bytes`. Publish times must not decrease.
  void AddRecords(const std::vector<uint64_t>& positions, size_t begin, size_t end,
                  absl::Time publish_time, uint64_t new_bytes);

  // Reads and parses the `count` records from `first_offset`, which occupy
  // the file bytes [start, end), appending them to `*out` with `topic` set.
  // DATA_LOSS if they do not read back intact. Thread-safe.
  absl::Status ReadEvents(uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
                          const std::string& topic,
                          std::vector<::relay::events::v1::Event>* out) const;

  // ReadEvents(), keeping each record's payload as it is (StoredEvent).
  absl::Status ReadStored(uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
                          std::vector<StoredEvent>* out) const;

 private:
  // Reads the `count` records of ReadEvents() and hands each payload to
  // `take`, which returns false when it does not parse as the event of that
  // offset (DATA_LOSS then).
  absl::Status ForEachRecord(uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
                             const std::function<bool(uint64_t, absl::string_view)>& take) const;

  // From `offset` on, up to the next run, records were published at `time`.
  struct TimeRun {
    uint64_t offset;
    absl::Time time;
  };

  Segment(std::string path, uint64_t base_offset, std::unique_ptr<RandomAccessFile> reader);
  void Index(uint64_t position, absl::Time publish_time);

  const std::string path_;
  const uint64_t base_offset_;
  const std::unique_ptr<RandomAccessFile> reader_;
  std::unique_ptr<WritableFile> writer_;
  // File position of each record; 32 bits keeps the index small (segments
  // stay far below 4 GiB: see TopicLog::Options::segment_bytes).
  std::vector<uint32_t> positions_;
  std::vector<TimeRun> times_;  // ascending offsets, increasing times
  uint64_t bytes_ = 0;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_SEGMENT_H_
