#ifndef RELAY_BROKER_STORAGE_RECORD_H_
#define RELAY_BROKER_STORAGE_RECORD_H_

// The record format of segment files. A segment is a sequence of records:
//
//   [u32 payload length, little-endian]
//   [u32 Mask(crc32c(payload)), little-endian]
//   [payload: a serialized relay.events.v1.Event, offset and publish_time set]
//
// There is no padding and no file header: a segment is valid up to the first
// record that is short (a torn write), too long, or whose CRC does not match.
// Zeros from a record boundary to the end are space the writer reserved
// (WritableFile::SetReserveStep): a clean end. No record is all zeros (an
// empty payload's masked CRC is not 0).
//
//   std::string buf;
//   absl::Status s = AppendEventRecord(event, &buf);
//   RecordReader reader(buf);
//   absl::string_view payload;
//   while (reader.Next(&payload)) { ... }
//   if (!reader.clean_end()) { cut at reader.valid_end() }

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {

inline constexpr size_t kRecordHeaderBytes = 8;

// Payloads above this size are refused when writing and read as corruption.
inline constexpr size_t kMaxRecordPayloadBytes = size_t{64} << 20;

// Appends one record holding `payload` to `*dst`.
// REQUIRES: payload.size() <= kMaxRecordPayloadBytes.
void AppendRecord(absl::string_view payload, std::string* dst);

// Appends one record holding `event` serialized, straight into `*dst` (no
// intermediate copy). INVALID_ARGUMENT, and `*dst` unchanged, if the event
// serializes to more than kMaxRecordPayloadBytes.
absl::Status AppendEventRecord(const ::relay::events::v1::Event& event, std::string* dst);

// The event log's fast path: an event is serialized once, on the appending
// thread, without the fields the log assigns; the log's writer thread then
// frames those bytes followed by `offset` (field 9) and `publish_time` (field
// 10). Protobuf parsers accept fields in any order and the last value of a
// field wins, so the payload parses as the complete Event.
struct EventBytes {
  absl::string_view bytes;  // a serialized Event, normally without offset/publish_time
  uint32_t crc = 0;         // crc32c::Value(bytes)
};

// At most this many bytes follow EventBytes::bytes in a record's payload.
inline constexpr size_t kAssignedFieldsMaxBytes = 32;

// Fields 9 (offset) and 10 (publish_time) of an Event, encoded with every
// value explicit; the time once for a whole append, the offset per event.
class AssignedFields {
 public:
  explicit AssignedFields(absl::Time publish_time);
  void set_offset(uint64_t offset);

  absl::string_view offset_field() const { return absl::string_view(offset_, offset_size_); }
  absl::string_view time_field() const { return absl::string_view(time_, time_size_); }

 private:
  char offset_[12];
  size_t offset_size_ = 0;
  char time_[kAssignedFieldsMaxBytes - sizeof(offset_)];
  size_t time_size_ = 0;
};

// Appends one record: `event.bytes` followed by `fields`.
// REQUIRES: event.bytes.size() + kAssignedFieldsMaxBytes <= kMaxRecordPayloadBytes.
void AppendEventRecord(const EventBytes& event, const AssignedFields& fields, std::string* dst);

// Reads records from a span of bytes that starts at a record boundary.
// Never reads outside `data`, whatever the bytes are. Not thread-safe.
class RecordReader {
 public:
  // Why reading stopped.
  enum class Stop {
    kNotYet,       // Next() has not returned false yet
    kEnd,          // clean end: the data ends exactly after a record
    kZeroTail,     // clean end: only zero bytes follow the last record
    kTornHeader,   // fewer than kRecordHeaderBytes left
    kTornPayload,  // the payload runs past the end of the data
    kBadLength,    // length above kMaxRecordPayloadBytes
    kBadCrc,       // CRC mismatch
  };

  // `data` must outlive the reader.
  explicit RecordReader(absl::string_view data) : data_(data) {}

  // Sets `*payload` to the next record's payload (a view into the data) and
  // returns true, or returns false at the end of the valid prefix.
  bool Next(absl::string_view* payload);

  // Position in the data of the record Next() last returned.
  size_t record_start() const { return record_start_; }

  // Position just past the last record Next() returned: the end of the valid
  // prefix once Next() has returned false.
  size_t valid_end() const { return pos_; }

  Stop stop() const { return stop_; }

  // Whether reading stopped at kEnd or kZeroTail.
  bool clean_end() const { return stop_ == Stop::kEnd || stop_ == Stop::kZeroTail; }

  // "clean end", "torn header", ... for log lines.
  static absl::string_view StopName(Stop stop);

 private:
  absl::string_view data_;
  size_t pos_ = 0;
  size_t record_start_ = 0;
  Stop stop_ = Stop::kNotYet;
};

// publish_time of `event` as an absl::Time (the Unix epoch when unset).
absl::Time PublishTime(const ::relay::events::v1::Event& event);

// Sets `*ts` to `t`.
void ToTimestamp(absl::Time t, ::google::protobuf::Timestamp* ts);

// The fields of a stored event that recovery needs, parsed without building
// an Event (fast path for scanning segments).
struct RecordMeta {
  uint64_t offset = 0;
  absl::Time publish_time = absl::UnixEpoch();
  absl::string_view id;    // a view into the payload
  absl::string_view type;  // a view into the payload
  absl::string_view key;   // a view into the payload
};

// Parses `payload` as a serialized Event, keeping only the fields of
// RecordMeta. False if the payload is not a well-formed Event.
bool ParseRecordMeta(absl::string_view payload, RecordMeta* meta);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_RECORD_H_
