#include "broker/storage/record.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "broker/storage/crc32c.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/wire_format_lite.h"

namespace relay::broker {
namespace {

using ::google::protobuf::internal::WireFormatLite;
using ::google::protobuf::io::CodedInputStream;

inline void EncodeLE32(uint32_t v, char* p) {
  p[0] = static_cast<char>(v & 0xffu);
  p[1] = static_cast<char>((v >> 8) & 0xffu);
  p[2] = static_cast<char>((v >> 16) & 0xffu);
  p[3] = static_cast<char>((v >> 24) & 0xffu);
}

inline uint32_t DecodeLE32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}

inline void EncodeHeader(const char* payload, size_t size, char* header) {
  EncodeLE32(static_cast<uint32_t>(size), header);
  EncodeLE32(crc32c::Mask(crc32c::Value(payload, size)), header + 4);
}

// Field numbers of relay.events.v1.Event and google.protobuf.Timestamp.
constexpr int kIdField = 1;
constexpr int kTypeField = 3;
constexpr int kKeyField = 4;
constexpr int kOffsetField = 9;
constexpr int kPublishTimeField = 10;
constexpr int kSecondsField = 1;
constexpr int kNanosField = 2;

// A google.protobuf.Timestamp as the full parser sees it.
struct TimestampFields {
  int64_t seconds = 0;
  int32_t nanos = 0;
};

// Merges one occurrence of a Timestamp field into `*t`, as protobuf does
// with a message field that appears more than once: a field it holds
// overrides, one it lacks keeps the earlier value. int32 nanos keep the low
// 32 bits of the varint, as protobuf's parser does.
bool MergeTimestamp(CodedInputStream* in, TimestampFields* t) {
  uint32_t length;
  if (!in->ReadVarint32(&length)) return false;
  if (static_cast<int>(length) < 0 || static_cast<int>(length) > in->BytesUntilLimit()) {
    return false;
  }
  CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(length));
  while (true) {
    uint32_t tag = in->ReadTag();
    if (tag == 0) break;
    int field = WireFormatLite::GetTagFieldNumber(tag);
    auto wire_type = WireFormatLite::GetTagWireType(tag);
    if ((field == kSecondsField || field == kNanosField) &&
        wire_type == WireFormatLite::WIRETYPE_VARINT) {
      uint64_t v;
      if (!in->ReadVarint64(&v)) return false;
      if (field == kSecondsField) {
        t->seconds = static_cast<int64_t>(v);
      } else {
        t->nanos = static_cast<int32_t>(static_cast<uint32_t>(v));
      }
    } else if (!WireFormatLite::SkipField(in, tag)) {
      return false;
    }
  }
  if (in->BytesUntilLimit() != 0) return false;
  in->PopLimit(limit);
  return true;
}

// google.protobuf.Timestamp's valid range; anything else is refused.
bool ToTime(const TimestampFields& ts, absl::Time* t) {
  if (ts.seconds < -62135596800 || ts.seconds > 253402300799 || ts.nanos < 0 ||
      ts.nanos > 999999999) {
    return false;
  }
  *t = absl::FromUnixSeconds(ts.seconds) + absl::Nanoseconds(ts.nanos);
  return true;
}

}  // namespace

void AppendRecord(absl::string_view payload, std::string* dst) {
  size_t start = dst->size();
  dst->resize(start + kRecordHeaderBytes + payload.size());
  char* p = dst->data() + start;
  if (!payload.empty()) std::memcpy(p + kRecordHeaderBytes, payload.data(), payload.size());
  EncodeHeader(p + kRecordHeaderBytes, payload.size(), p);
}

absl::Status AppendEventRecord(const ::relay::events::v1::Event& event, std::string* dst) {
  size_t size = event.ByteSizeLong();
  if (size > kMaxRecordPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("event ", event.id(), " serializes to ", size,
                                                   " bytes, above the limit of ",
                                                   kMaxRecordPayloadBytes));
  }
  size_t start = dst->size();
  dst->resize(start + kRecordHeaderBytes + size);
  char* p = dst->data() + start;
  event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(p + kRecordHeaderBytes));
  EncodeHeader(p + kRecordHeaderBytes, size, p);
  return absl::OkStatus();
}

namespace {

inline char* EncodeVarint(uint64_t v, char* p) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

}  // namespace

AssignedFields::AssignedFields(absl::Time publish_time) {
  ::google::protobuf::Timestamp ts;
  ToTimestamp(publish_time, &ts);
  char timestamp[24];
  char* t = timestamp;
  *t++ = static_cast<char>(WireFormatLite::MakeTag(kSecondsField, WireFormatLite::WIRETYPE_VARINT));
  t = EncodeVarint(static_cast<uint64_t>(ts.seconds()), t);
  *t++ = static_cast<char>(WireFormatLite::MakeTag(kNanosField, WireFormatLite::WIRETYPE_VARINT));
  t = EncodeVarint(static_cast<uint64_t>(static_cast<int64_t>(ts.nanos())), t);
  const size_t timestamp_size = static_cast<size_t>(t - timestamp);

  char* p = time_;
  *p++ = static_cast<char>(
      WireFormatLite::MakeTag(kPublishTimeField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  p = EncodeVarint(timestamp_size, p);
  std::memcpy(p, timestamp, timestamp_size);
  time_size_ = static_cast<size_t>(p - time_) + timestamp_size;
  set_offset(0);
}

void AssignedFields::set_offset(uint64_t offset) {
  char* p = offset_;
  *p++ = static_cast<char>(WireFormatLite::MakeTag(kOffsetField, WireFormatLite::WIRETYPE_VARINT));
  p = EncodeVarint(offset, p);
  offset_size_ = static_cast<size_t>(p - offset_);
}

void AppendEventRecord(const EventBytes& event, const AssignedFields& fields, std::string* dst) {
  const absl::string_view offset = fields.offset_field();
  const absl::string_view time = fields.time_field();
  const size_t size = event.bytes.size() + offset.size() + time.size();
  size_t start = dst->size();
  dst->resize(start + kRecordHeaderBytes + size);
  char* p = dst->data() + start;
  char* body = p + kRecordHeaderBytes;
  if (!event.bytes.empty()) std::memcpy(body, event.bytes.data(), event.bytes.size());
  char* tail = body + event.bytes.size();
  std::memcpy(tail, offset.data(), offset.size());
  std::memcpy(tail + offset.size(), time.data(), time.size());
  // The CRC of the producer's bytes was computed off this thread: extend it.
  uint32_t crc = crc32c::Extend(event.crc, tail, offset.size() + time.size());
  EncodeLE32(static_cast<uint32_t>(size), p);
  EncodeLE32(crc32c::Mask(crc), p + 4);
}

bool RecordReader::Next(absl::string_view* payload) {
  if (stop_ != Stop::kNotYet) return false;
  size_t left = data_.size() - pos_;
  if (left == 0) {
    stop_ = Stop::kEnd;
    return false;
  }
  if (data_[pos_] == '\0' && data_.find_first_not_of('\0', pos_) == absl::string_view::npos) {
    stop_ = Stop::kZeroTail;
    return false;
  }
  if (left < kRecordHeaderBytes) {
    stop_ = Stop::kTornHeader;
    return false;
  }
  const char* header = data_.data() + pos_;
  uint32_t length = DecodeLE32(header);
  uint32_t masked_crc = DecodeLE32(header + 4);
  if (length > kMaxRecordPayloadBytes) {
    stop_ = Stop::kBadLength;
    return false;
  }
  if (length > left - kRecordHeaderBytes) {
    stop_ = Stop::kTornPayload;
    return false;
  }
  const char* body = header + kRecordHeaderBytes;
  if (crc32c::Unmask(masked_crc) != crc32c::Value(body, length)) {
    stop_ = Stop::kBadCrc;
    return false;
  }
  record_start_ = pos_;
  pos_ += kRecordHeaderBytes + length;
  *payload = absl::string_view(body, length);
  return true;
}

absl::string_view RecordReader::StopName(Stop stop) {
  switch (stop) {
    case Stop::kNotYet:
      return "not stopped";
    case Stop::kEnd:
      return "clean end";
    case Stop::kZeroTail:
      return "zeros to the end";
    case Stop::kTornHeader:
      return "torn record header";
    case Stop::kTornPayload:
      return "torn record payload";
    case Stop::kBadLength:
      return "impossible record length";
    case Stop::kBadCrc:
      return "record CRC mismatch";
  }
  return "unknown";
}

absl::Time PublishTime(const ::relay::events::v1::Event& event) {
  return absl::FromUnixSeconds(event.publish_time().seconds()) +
         absl::Nanoseconds(event.publish_time().nanos());
}

void ToTimestamp(absl::Time t, ::google::protobuf::Timestamp* ts) {
  int64_t seconds = absl::ToUnixSeconds(t);
  if (absl::FromUnixSeconds(seconds) > t) --seconds;  // floor, also before 1970
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

bool ParseRecordMeta(absl::string_view payload, RecordMeta* meta) {
  *meta = RecordMeta();
  if (payload.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return false;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(payload.data()),
                      static_cast<int>(payload.size()));
  TimestampFields publish_time;
  bool has_publish_time = false;
  while (in.CurrentPosition() < static_cast<int>(payload.size())) {
    // 0 here is a malformed (e.g. truncated) tag, not the end.
    uint32_t tag = in.ReadTag();
    if (tag == 0) return false;
    int field = WireFormatLite::GetTagFieldNumber(tag);
    auto wire_type = WireFormatLite::GetTagWireType(tag);
    if (field == 0) return false;
    absl::string_view* text = nullptr;  // the string field this tag carries, if kept
    if (wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (field == kIdField) text = &meta->id;
      if (field == kTypeField) text = &meta->type;
      if (field == kKeyField) text = &meta->key;
    }
    if (text != nullptr) {
      uint32_t length;
      if (!in.ReadVarint32(&length)) return false;
      if (static_cast<int>(length) < 0 || static_cast<int>(length) > in.BytesUntilLimit()) {
        return false;
      }
      // A repeated field: the last value wins, as in protobuf's parser.
      *text = payload.substr(static_cast<size_t>(in.CurrentPosition()), length);
      if (!in.Skip(static_cast<int>(length))) return false;
    } else if (field == kOffsetField && wire_type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&meta->offset)) return false;
    } else if (field == kPublishTimeField &&
               wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!MergeTimestamp(&in, &publish_time)) return false;
      has_publish_time = true;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return !has_publish_time || ToTime(publish_time, &meta->publish_time);
}

}  // namespace relay::broker
