// Fuzz target: the record format of segment files (broker/storage/record.h).
//
// The input is read twice: as a record stream (what a segment file holds)
// and, framed with a valid CRC, as the payload of one record (so that the
// fuzzer gets past the CRC into the event parsers). Properties:
//  - RecordReader never reads outside its data and stops with a reason;
//  - ParseRecordMeta (recovery's fast parser) agrees with the full Event
//    parser on offset, id, type, key and publish time whenever both accept
//    a payload;
//  - a decoded event round-trips through both writers (AppendEventRecord of
//    an Event, and the log writer's EventBytes + AssignedFields path).

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/storage/crc32c.h"
#include "broker/storage/record.h"
#include "google/protobuf/util/message_differencer.h"
#include "relay/events/v1/event.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay::broker {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::relay::events::v1::Event;

// The one payload of `framed`, which must hold exactly one intact record.
absl::string_view OnlyPayload(const std::string& framed) {
  RecordReader reader(framed);
  absl::string_view payload;
  FUZZ_CHECK(reader.Next(&payload));
  absl::string_view more;
  FUZZ_CHECK(!reader.Next(&more));
  FUZZ_CHECK(reader.stop() == RecordReader::Stop::kEnd);
  return payload;
}

bool InTimestampRange(absl::Time t) {
  return t >= absl::FromUnixSeconds(-62135596800) && t < absl::FromUnixSeconds(253402300800);
}

void CheckPayload(absl::string_view payload) {
  RecordMeta meta;
  const bool meta_ok = ParseRecordMeta(payload, &meta);
  Event event;
  const bool event_ok = event.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  if (meta_ok && event_ok) {
    FUZZ_CHECK(meta.offset == event.offset());
    FUZZ_CHECK(meta.id == event.id());
    FUZZ_CHECK(meta.type == event.type());
    FUZZ_CHECK(meta.key == event.key());
    FUZZ_CHECK(meta.publish_time == PublishTime(event));
  }
  if (!event_ok) return;

  // Written as an Event, read back equal.
  std::string framed;
  FUZZ_CHECK(AppendEventRecord(event, &framed).ok());
  Event again;
  absl::string_view back = OnlyPayload(framed);
  FUZZ_CHECK(again.ParseFromArray(back.data(), static_cast<int>(back.size())));
  FUZZ_CHECK(MessageDifferencer::Equals(event, again));

  // Written as the log writer does: producer bytes, then offset and time.
  const absl::Time publish_time = PublishTime(event);
  if (!InTimestampRange(publish_time)) return;  // the writer stamps the clock's time
  Event bare = event;
  bare.clear_offset();
  bare.clear_publish_time();
  const std::string bytes = bare.SerializeAsString();
  AssignedFields fields(publish_time);
  fields.set_offset(event.offset());
  std::string fast;
  AppendEventRecord(EventBytes{bytes, crc32c::Value(bytes.data(), bytes.size())}, fields, &fast);
  absl::string_view fast_payload = OnlyPayload(fast);
  Event stamped;
  FUZZ_CHECK(stamped.ParseFromArray(fast_payload.data(), static_cast<int>(fast_payload.size())));
  FUZZ_CHECK(stamped.offset() == event.offset());
  FUZZ_CHECK(PublishTime(stamped) == publish_time);
  RecordMeta stamped_meta;
  FUZZ_CHECK(ParseRecordMeta(fast_payload, &stamped_meta));
  FUZZ_CHECK(stamped_meta.offset == event.offset());
  FUZZ_CHECK(stamped_meta.publish_time == publish_time);
  FUZZ_CHECK(stamped_meta.id == event.id());
}

}  // namespace
}  // namespace relay::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ::relay::broker::RecordReader;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  RecordReader reader(input);
  absl::string_view payload;
  size_t records = 0;
  while (reader.Next(&payload)) {
    FUZZ_CHECK(payload.data() >= input.data() &&
               payload.data() + payload.size() <= input.data() + input.size());
    FUZZ_CHECK(reader.record_start() + ::relay::broker::kRecordHeaderBytes + payload.size() ==
               reader.valid_end());
    ::relay::broker::CheckPayload(payload);
    ++records;
  }
  FUZZ_CHECK(reader.stop() != RecordReader::Stop::kNotYet);
  FUZZ_CHECK(reader.valid_end() <= input.size());
  FUZZ_CHECK((reader.stop() == RecordReader::Stop::kEnd) == (reader.valid_end() == input.size()));
  // A zero tail is zeros only, and at least one.
  FUZZ_CHECK(reader.stop() != RecordReader::Stop::kZeroTail ||
             (reader.valid_end() < input.size() &&
              input.find_first_not_of('\0', reader.valid_end()) == absl::string_view::npos));

  if (records == 0 && input.size() <= ::relay::broker::kMaxRecordPayloadBytes) {
    std::string framed;
    ::relay::broker::AppendRecord(input, &framed);
    FUZZ_CHECK(::relay::broker::OnlyPayload(framed) == input);
    ::relay::broker::CheckPayload(input);
  }
  return 0;
}
