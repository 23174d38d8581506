#include "broker/storage/record.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/storage/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::broker {
namespace {

using ::relay::events::v1::Event;
using ::relay::testing::IsOk;

Event MakeEvent(uint64_t offset) {
  Event event;
  event.set_id(absl::StrCat("evt-", offset));
  event.set_type("order.created");
  event.set_key(absl::StrCat("order-", offset % 7));
  event.set_source("order-service");
  (*event.mutable_headers())["correlation_id"] = absl::StrCat("order-", offset % 7);
  event.set_data(std::string(40 + offset % 13, 'd'));
  event.set_offset(offset);
  ToTimestamp(absl::FromUnixSeconds(1700000000) + absl::Milliseconds(offset),
              event.mutable_publish_time());
  return event;
}

std::string Frame(const std::vector<Event>& events) {
  std::string data;
  for (const Event& e : events) EXPECT_THAT(AppendEventRecord(e, &data), IsOk());
  return data;
}

// Reads every record of `data`; returns their payloads.
std::vector<std::string> ReadAll(RecordReader* reader) {
  std::vector<std::string> payloads;
  absl::string_view payload;
  while (reader->Next(&payload)) payloads.emplace_back(payload);
  return payloads;
}

TEST(Record, RoundTripsEvents) {
  std::vector<Event> events;
  for (uint64_t i = 0; i < 20; ++i) events.push_back(MakeEvent(i));
  std::string data = Frame(events);

  RecordReader reader(data);
  std::vector<std::string> payloads = ReadAll(&reader);
  EXPECT_EQ(reader.stop(), RecordReader::Stop::kEnd);
  EXPECT_EQ(reader.valid_end(), data.size());
  ASSERT_EQ(payloads.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    Event parsed;
    ASSERT_TRUE(parsed.ParseFromString(payloads[i]));
    EXPECT_EQ(parsed.SerializeAsString(), events[i].SerializeAsString());
    RecordMeta meta;
    ASSERT_TRUE(ParseRecordMeta(payloads[i], &meta));
    EXPECT_EQ(meta.offset, i);
    EXPECT_EQ(meta.id, events[i].id());
    EXPECT_EQ(meta.type, "order.created");
    EXPECT_EQ(meta.key, events[i].key());
    EXPECT_EQ(meta.publish_time, PublishTime(events[i]));
  }
}

TEST(Record, EventBytesWithAssignedFieldsParseAsTheWholeEvent) {
  Event event = MakeEvent(300);
  Event producer_fields = event;
  producer_fields.clear_offset();
  producer_fields.clear_publish_time();
  std::string bytes = producer_fields.SerializeAsString();
  // Also when the producer's bytes carry stale values: the assigned ones win.
  Event stale = producer_fields;
  stale.set_offset(7);
  ToTimestamp(absl::FromUnixSeconds(1) + absl::Nanoseconds(5), stale.mutable_publish_time());
  std::string stale_bytes = stale.SerializeAsString();

  std::string data;
  for (const std::string* b : {&bytes, &stale_bytes}) {
    AssignedFields fields(PublishTime(event));
    fields.set_offset(event.offset());
    AppendEventRecord(EventBytes{*b, crc32c::Value(b->data(), b->size())}, fields, &data);
  }
  RecordReader reader(data);
  std::vector<std::string> payloads = ReadAll(&reader);
  EXPECT_EQ(reader.stop(), RecordReader::Stop::kEnd);
  ASSERT_THAT(payloads, ::testing::SizeIs(2));
  for (const std::string& payload : payloads) {
    Event parsed;
    ASSERT_TRUE(parsed.ParseFromString(payload));
    EXPECT_EQ(parsed.SerializeAsString(), event.SerializeAsString());
    RecordMeta meta;
    ASSERT_TRUE(ParseRecordMeta(payload, &meta));
    EXPECT_EQ(meta.offset, 300u);
    EXPECT_EQ(meta.publish_time, PublishTime(event));
    EXPECT_EQ(meta.id, "evt-300");
  }
}

// Found by record_fuzz: a publish_time that appears twice, the second time
// without seconds, is one merged Timestamp for protobuf (seconds from the
// first, nanos from the second), but ParseRecordMeta took the second alone,
// so recovery indexed another time than Read returned.
TEST(Record, MetaMergesARepeatedPublishTimeAsProtobufDoes) {
  Event event = MakeEvent(5);
  event.mutable_publish_time()->set_seconds(1700000000);
  event.mutable_publish_time()->set_nanos(0);
  std::string payload = event.SerializeAsString();
  // publish_time (field 10) again, holding only nanos = 7.
  payload += std::string("\x52\x02\x10\x07", 4);
  // and again, nanos as a varint above 32 bits: protobuf keeps the low 32 (= 9).
  payload += std::string("\x52\x06\x10\x89\x80\x80\x80\x10", 8);

  Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(payload));
  ASSERT_EQ(parsed.publish_time().seconds(), 1700000000);
  ASSERT_EQ(parsed.publish_time().nanos(), 9);
  RecordMeta meta;
  ASSERT_TRUE(ParseRecordMeta(payload, &meta));
  EXPECT_EQ(meta.publish_time, PublishTime(parsed));
  EXPECT_EQ(meta.offset, 5u);
}

TEST(Record, AssignedFieldsEncodeExtremeValues) {
  for (absl::Time t : {absl::UnixEpoch(), absl::FromUnixSeconds(-62135596800),
                       absl::FromUnixSeconds(253402300799) + absl::Nanoseconds(999999999)}) {
    for (uint64_t offset : {uint64_t{0}, uint64_t{1} << 63, ~uint64_t{0}}) {
      AssignedFields fields(t);
      fields.set_offset(offset);
      std::string data;
      AppendEventRecord(EventBytes{"", 0}, fields, &data);
      RecordReader reader(data);
      absl::string_view payload;
      ASSERT_TRUE(reader.Next(&payload));
      RecordMeta meta;
      ASSERT_TRUE(ParseRecordMeta(payload, &meta));
      EXPECT_EQ(meta.offset, offset);
      EXPECT_EQ(meta.publish_time, t);
      EXPECT_LE(payload.size(), kAssignedFieldsMaxBytes);
    }
  }
}

TEST(Record, EmptyDataIsACleanEnd) {
  RecordReader reader("");
  absl::string_view payload;
  EXPECT_FALSE(reader.Next(&payload));
  EXPECT_EQ(reader.stop(), RecordReader::Stop::kEnd);
  EXPECT_EQ(reader.valid_end(), 0u);
}

TEST(Record, RawPayloadRoundTrips) {
  std::string data;
  AppendRecord("", &data);
  AppendRecord("abc", &data);
  RecordReader reader(data);
  EXPECT_THAT(ReadAll(&reader), ::testing::ElementsAre("", "abc"));
  EXPECT_EQ(reader.stop(), RecordReader::Stop::kEnd);
}

TEST(Record, TornTailAtEveryByteOfTheLastRecordEndsAtTheValidPrefix) {
  std::vector<Event> events = {MakeEvent(0), MakeEvent(1), MakeEvent(2)};
  std::string data = Frame(events);
  std::string prefix = Frame({events[0], events[1]});
  for (size_t cut = prefix.size() + 1; cut < data.size(); ++cut) {
    absl::string_view torn(data.data(), cut);
    RecordReader reader(torn);
    EXPECT_EQ(ReadAll(&reader).size(), 2u) << "cut at " << cut;
    EXPECT_EQ(reader.valid_end(), prefix.size()) << "cut at " << cut;
    EXPECT_EQ(reader.stop(), cut - prefix.size() < kRecordHeaderBytes
                                 ? RecordReader::Stop::kTornHeader
                                 : RecordReader::Stop::kTornPayload)
        << "cut at " << cut;
  }
}

TEST(Record, ZerosToTheEndAreACleanEnd) {
  // Space reserved ahead of the writer (WritableFile::SetReserveStep), or a
  // file system that grew the file with zeros when the power went.
  for (size_t zeros : {1, 7, 8, 64, 4096}) {
    std::string data = Frame({MakeEvent(0)});
    size_t good = data.size();
    data.append(zeros, '\0');
    RecordReader reader(data);
    EXPECT_EQ(ReadAll(&reader).size(), 1u) << zeros;
    EXPECT_EQ(reader.valid_end(), good) << zeros;
    EXPECT_EQ(reader.stop(), RecordReader::Stop::kZeroTail) << zeros;
    EXPECT_TRUE(reader.clean_end()) << zeros;
  }
}

TEST(Record, ZerosWithAnythingAfterThemAreDamage) {
  std::string data = Frame({MakeEvent(0)});
  size_t good = data.size();
  data.append(64, '\0');
  data.push_back('x');
  RecordReader reader(data);
  EXPECT_EQ(ReadAll(&reader).size(), 1u);
  EXPECT_EQ(reader.valid_end(), good);
  EXPECT_EQ(reader.stop(), RecordReader::Stop::kBadCrc);
  EXPECT_FALSE(reader.clean_end());
}

TEST(Record, EveryFlippedBitIsDetected) {
  std::string data = Frame({MakeEvent(0), MakeEvent(1)});
  size_t first = Frame({MakeEvent(0)}).size();
  for (size_t byte = first; byte < data.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = data;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      RecordReader reader(bad);
      std::vector<std::string> payloads = ReadAll(&reader);
      // The length field may now claim more (torn) or absurdly much; the CRC
      // catches every other flip. Either way only the first record is valid.
      ASSERT_EQ(payloads.size(), 1u) << "byte " << byte << " bit " << bit;
      EXPECT_EQ(reader.valid_end(), first);
      EXPECT_FALSE(reader.clean_end());
    }
  }
}

TEST(Record, RandomGarbageNeverCrashesNorReadsOutside) {
  std::mt19937 rng(42);
  std::string valid = Frame({MakeEvent(0), MakeEvent(1), MakeEvent(2)});
  for (int round = 0; round < 3000; ++round) {
    std::string data;
    switch (round % 3) {
      case 0: {  // pure noise
        data.resize(rng() % 200);
        for (char& c : data) c = static_cast<char>(rng());
        break;
      }
      case 1: {  // valid records with a few random bytes changed
        data = valid;
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
          data[rng() % data.size()] = static_cast<char>(rng());
        }
        break;
      }
      case 2: {  // a plausible header over a random payload (CRC happens to be checked)
        std::string payload(rng() % 64, '\0');
        for (char& c : payload) c = static_cast<char>(rng());
        AppendRecord(payload, &data);
        break;
      }
    }
    // A copy in its own allocation lets AddressSanitizer see any overrun.
    std::vector<char> bytes(data.begin(), data.end());
    RecordReader reader(absl::string_view(bytes.data(), bytes.size()));
    absl::string_view payload;
    size_t count = 0;
    while (reader.Next(&payload)) {
      ASSERT_GE(payload.data(), bytes.data());
      ASSERT_LE(payload.data() + payload.size(), bytes.data() + bytes.size());
      RecordMeta meta;
      ParseRecordMeta(payload, &meta);  // must not crash either
      Event event;
      (void)event.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
      ++count;
    }
    ASSERT_LE(reader.valid_end(), bytes.size());
    ASSERT_NE(reader.stop(), RecordReader::Stop::kNotYet);
  }
}

TEST(Record, ParseRecordMetaRefusesMalformedEvents) {
  RecordMeta meta;
  EXPECT_TRUE(ParseRecordMeta("", &meta));  // an empty Event is valid
  EXPECT_FALSE(
      ParseRecordMeta("\x0a\x05"
                      "ab",
                      &meta));                   // id longer than the payload
  EXPECT_FALSE(ParseRecordMeta("\x48", &meta));  // offset tag without its varint
  EXPECT_FALSE(ParseRecordMeta(absl::string_view("\x00\x01", 2), &meta));  // field 0
}

TEST(Record, RefusesOversizedEvents) {
  Event event = MakeEvent(0);
  event.set_data(std::string(kMaxRecordPayloadBytes + 1, 'x'));
  std::string data = "keep";
  EXPECT_FALSE(AppendEventRecord(event, &data).ok());
  EXPECT_EQ(data, "keep");
}

}  // namespace
}  // namespace relay::broker
