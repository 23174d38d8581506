#include "broker/storage/topic_log.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/storage/crc32c.h"
#include "broker/storage/forwarding_env.h"
#include "broker/storage/record.h"
#include "broker/storage/segment_scan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

class TopicLogTest : public ::testing::Test {
 protected:
  TopicLog::Options LogOptions(uint64_t segment_bytes = 1024) {
    TopicLog::Options options;
    options.dir = dir_.Join("orders");
    options.name = "orders";
    options.segment_bytes = segment_bytes;
    return options;
  }

  std::unique_ptr<TopicLog> OpenLog(uint64_t segment_bytes = 1024,
                                    const Segment::RecordVisitor& visit = {}) {
    absl::StatusOr<std::unique_ptr<TopicLog>> log =
        TopicLog::Open(LogOptions(segment_bytes), visit);
    EXPECT_THAT(log, IsOk());
    return log.ok() ? *std::move(log) : nullptr;
  }

  // Appends `n` events published at `t` and syncs them.
  void AppendSynced(TopicLog* log, int n, absl::Time t = kT0) {
    std::vector<std::string> serialized;
    for (int i = 0; i < n; ++i) {
      uint64_t offset = log->written_end() + static_cast<uint64_t>(i);
      Event event;
      event.set_id(absl::StrCat("id-", offset));
      event.set_type("order.created");
      event.set_key(absl::StrCat("order-", offset % 5));
      event.set_data(std::string(60, static_cast<char>('a' + offset % 26)));
      serialized.push_back(event.SerializeAsString());
    }
    std::vector<EventBytes> events;
    for (const std::string& bytes : serialized) {
      events.push_back(EventBytes{bytes, crc32c::Value(bytes.data(), bytes.size())});
    }
    ASSERT_THAT(log->Append(events, t), IsOk());
    ASSERT_THAT(log->Sync(), IsOk());
  }

  std::vector<Event> ReadAll(const TopicLog& log, uint64_t from = 0) {
    absl::StatusOr<std::vector<Event>> events = log.Read(from, 1 << 20, 1 << 30);
    EXPECT_THAT(events, IsOk());
    return events.ok() ? *std::move(events) : std::vector<Event>();
  }

  // Writes 30 events in three appends with 1 KiB segments (at least three
  // segments), then scans the first, which a roll sealed.
  SegmentScan WriteThreeSegments() {
    {
      auto log = OpenLog(/*segment_bytes=*/1024);
      EXPECT_NE(log, nullptr);
      if (log == nullptr) return {};
      for (int i = 0; i < 3; ++i) AppendSynced(log.get(), 10);
      EXPECT_GE(log->Stats().segments, 3u);
    }
    return ScanSegmentFile(SegmentPath(0));
  }

  // Bytes of the records of segment `path`, without the reserved space
  // after them.
  static uint64_t RecordBytes(const std::string& path) {
    const SegmentScan scan = ScanSegmentFile(path);
    EXPECT_TRUE(scan.clean_end) << path;
    return scan.records_end;
  }

  // Whether the test directory's file system reserves space (fallocate).
  bool FileSystemReserves() {
    auto file = Env::Default()->NewAppendableFile(dir_.Join("probe"));
    EXPECT_THAT(file, IsOk());
    if (!file.ok()) return false;
    (*file)->SetReserveStep(4096);
    EXPECT_THAT((*file)->Append("x"), IsOk());
    absl::StatusOr<uint64_t> size = Env::Default()->GetFileSize(dir_.Join("probe"));
    return size.ok() && *size > 1;
  }

  std::string SegmentPath(uint64_t base) {
    return absl::StrCat(dir_.Join("orders"), "/", Segment::FileName(base));
  }

  TempDir dir_;
};

TEST(SegmentName, IsTheZeroPaddedBaseOffset) {
  EXPECT_EQ(Segment::FileName(0), "00000000000000000000.log");
  EXPECT_EQ(Segment::FileName(1234), "00000000000000001234.log");
  uint64_t base = 0;
  EXPECT_TRUE(Segment::ParseFileName("00000000000000001234.log", &base));
  EXPECT_EQ(base, 1234u);
  EXPECT_FALSE(Segment::ParseFileName("1234.log", &base));
  EXPECT_FALSE(Segment::ParseFileName("0000000000000000123x.log", &base));
  EXPECT_FALSE(Segment::ParseFileName("00000000000000001234.tmp", &base));
  EXPECT_FALSE(Segment::ParseFileName("LOCK", &base));
}

TEST_F(TopicLogTest, NewLogIsEmpty) {
  auto log = OpenLog();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->DurableEnd(), 0u);
  EXPECT_EQ(log->FirstOffset(), 0u);
  EXPECT_THAT(ReadAll(*log), SizeIs(0));
  EXPECT_EQ(log->OffsetForTime(kT0), 0u);
  TopicStats stats = log->Stats();
  EXPECT_EQ(stats.segments, 1u);
  EXPECT_EQ(stats.events, 0u);
}

TEST_F(TopicLogTest, AppendsAndReadsAcrossSegmentRolls) {
  auto log = OpenLog(/*segment_bytes=*/1024);
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 10; ++i) AppendSynced(log.get(), 10);
  EXPECT_EQ(log->DurableEnd(), 100u);
  TopicStats stats = log->Stats();
  EXPECT_GT(stats.segments, 5u);
  EXPECT_EQ(stats.events, 100u);

  std::vector<Event> events = ReadAll(*log);
  ASSERT_THAT(events, SizeIs(100));
  for (uint64_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].offset(), i);
    EXPECT_EQ(events[i].id(), absl::StrCat("id-", i));
    EXPECT_EQ(events[i].topic(), "orders");
    EXPECT_EQ(PublishTime(events[i]), kT0);
  }
  // Every segment file is named by its first offset and its records stay
  // under the roll size; only the active one keeps reserved space (zeros).
  absl::StatusOr<std::vector<std::string>> names = Env::Default()->ListDir(dir_.Join("orders"));
  ASSERT_THAT(names, IsOk());
  ASSERT_THAT(*names, SizeIs(stats.segments));
  uint64_t last_base = 0;
  for (const std::string& name : *names) {
    uint64_t base;
    ASSERT_TRUE(Segment::ParseFileName(name, &base)) << name;
    last_base = std::max(last_base, base);
    EXPECT_LE(RecordBytes(SegmentPath(base)), 1024u) << name;
    EXPECT_EQ(ReadAll(*log, base).at(0).offset(), base);
  }
  for (const std::string& name : *names) {
    uint64_t base;
    ASSERT_TRUE(Segment::ParseFileName(name, &base));
    absl::StatusOr<uint64_t> size = Env::Default()->GetFileSize(SegmentPath(base));
    ASSERT_THAT(size, IsOk());
    if (base != last_base) {
      EXPECT_EQ(*size, RecordBytes(SegmentPath(base))) << name;
    }
  }
  EXPECT_THAT(log->Seal(), IsOk());
  EXPECT_THAT(Env::Default()->GetFileSize(SegmentPath(last_base)),
              IsOkAndHolds(RecordBytes(SegmentPath(last_base))));
}

TEST_F(TopicLogTest, ReservedSpaceIsZerosThatReopeningCutsQuietly) {
  uint64_t good_size = 0;
  {
    auto log = OpenLog(/*segment_bytes=*/1 << 20);
    ASSERT_NE(log, nullptr);
    AppendSynced(log.get(), 5);
    good_size = log->Stats().bytes;
    if (!FileSystemReserves()) GTEST_SKIP() << "no fallocate on " << dir_.path();
    // The writer reserved space past its records: the file is longer.
    absl::StatusOr<uint64_t> size = Env::Default()->GetFileSize(SegmentPath(0));
    ASSERT_THAT(size, IsOk());
    EXPECT_GT(*size, good_size);
    EXPECT_EQ(RecordBytes(SegmentPath(0)), good_size);
    // Dropped without Seal(), as by a crash: the zeros stay.
  }
  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1 << 20);
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(out, Not(HasSubstr("torn")));
  EXPECT_EQ(log->recovery().truncated_bytes, 0u);
  EXPECT_EQ(log->DurableEnd(), 5u);
  AppendSynced(log.get(), 3);
  std::vector<Event> events = ReadAll(*log);
  ASSERT_THAT(events, SizeIs(8));
  EXPECT_EQ(events[7].offset(), 7u);
  EXPECT_EQ(events[7].id(), "id-7");
}

TEST_F(TopicLogTest, ReadHonoursMaxEventsAndMaxBytes) {
  auto log = OpenLog(/*segment_bytes=*/1 << 20);
  ASSERT_NE(log, nullptr);
  AppendSynced(log.get(), 10);
  AppendSynced(log.get(), 40);
  EXPECT_THAT(log->Read(10, 7, 1 << 20), IsOkAndHolds(SizeIs(7)));
  // Offsets 10..12 take the same room in the file.
  std::string contents;
  ASSERT_THAT(ReadFileToString(Env::Default(), SegmentPath(0), &contents), IsOk());
  RecordReader reader(contents);
  absl::string_view payload;
  for (int i = 0; i <= 10; ++i) ASSERT_TRUE(reader.Next(&payload));
  const size_t record_bytes = reader.valid_end() - reader.record_start();
  absl::StatusOr<std::vector<Event>> some = log->Read(10, 100, 3 * record_bytes);
  ASSERT_THAT(some, IsOk());
  EXPECT_EQ(some->size(), 3u);
  some = log->Read(10, 100, 3 * record_bytes - 1);
  ASSERT_THAT(some, IsOk());
  EXPECT_EQ(some->size(), 2u);
  // Always at least one event, however small max_bytes is.
  absl::StatusOr<std::vector<Event>> one = log->Read(20, 100, 1);
  ASSERT_THAT(one, IsOkAndHolds(SizeIs(1)));
  EXPECT_EQ((*one)[0].offset(), 20u);
  EXPECT_THAT(log->Read(50, 10, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->Read(1000, 10, 1 << 20), IsOkAndHolds(SizeIs(0)));
}

TEST_F(TopicLogTest, WrittenEventsAreInvisibleUntilDurable) {
  auto log = OpenLog();
  ASSERT_NE(log, nullptr);
  Event event;
  event.set_id("a");
  std::string bytes = event.SerializeAsString();
  EventBytes e{bytes, crc32c::Value(bytes.data(), bytes.size())};
  ASSERT_THAT(log->Append({&e, 1}, kT0), IsOk());
  EXPECT_EQ(log->written_end(), 1u);
  EXPECT_EQ(log->DurableEnd(), 0u);
  EXPECT_THAT(ReadAll(*log), SizeIs(0));
  log->MarkDurable();
  EXPECT_EQ(log->DurableEnd(), 1u);
  EXPECT_THAT(ReadAll(*log), SizeIs(1));
}

TEST_F(TopicLogTest, ReopenRebuildsTheIndex) {
  std::vector<Event> before;
  {
    auto log = OpenLog(/*segment_bytes=*/2048);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 7; ++i) AppendSynced(log.get(), 13, kT0 + absl::Seconds(i));
    before = ReadAll(*log);
  }
  std::vector<RecordMeta> visited;
  std::vector<std::string> ids;
  auto log = OpenLog(/*segment_bytes=*/2048, [&](const RecordMeta& meta) {
    visited.push_back(meta);
    ids.emplace_back(meta.id);
  });
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->recovery().truncated_bytes, 0u);
  EXPECT_EQ(log->DurableEnd(), 91u);
  EXPECT_EQ(log->written_end(), 91u);
  EXPECT_EQ(log->last_publish_time(), kT0 + absl::Seconds(6));
  std::vector<Event> after = ReadAll(*log);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].SerializeAsString(), before[i].SerializeAsString());
  }
  ASSERT_THAT(visited, SizeIs(91));
  for (uint64_t i = 0; i < visited.size(); ++i) {
    EXPECT_EQ(visited[i].offset, i);
    EXPECT_EQ(ids[i], absl::StrCat("id-", i));
  }
  // And it goes on from there.
  AppendSynced(log.get(), 1);
  EXPECT_EQ(log->DurableEnd(), 92u);
  EXPECT_EQ(ReadAll(*log, 91).at(0).id(), "id-91");
}

TEST_F(TopicLogTest, OffsetForTimeFindsTheFirstEventAtOrAfter) {
  auto log = OpenLog(/*segment_bytes=*/1024);
  ASSERT_NE(log, nullptr);
  // Offsets 10k..10k+9 published at kT0 + k seconds.
  for (int k = 0; k < 10; ++k) AppendSynced(log.get(), 10, kT0 + absl::Seconds(k));
  EXPECT_EQ(log->OffsetForTime(absl::InfinitePast()), 0u);
  EXPECT_EQ(log->OffsetForTime(kT0 - absl::Hours(1)), 0u);
  EXPECT_EQ(log->OffsetForTime(kT0), 0u);
  EXPECT_EQ(log->OffsetForTime(kT0 + absl::Milliseconds(1)), 10u);
  EXPECT_EQ(log->OffsetForTime(kT0 + absl::Seconds(3)), 30u);
  EXPECT_EQ(log->OffsetForTime(kT0 + absl::Seconds(9)), 90u);
  EXPECT_EQ(log->OffsetForTime(kT0 + absl::Seconds(10)), 100u);  // DurableEnd
  TopicStats stats = log->Stats();
  EXPECT_EQ(stats.first_time, kT0);
  EXPECT_EQ(stats.last_time, kT0 + absl::Seconds(9));
}

// An Env whose files cannot be opened for reading while `fail_readers` is
// set (as when the process is out of file descriptors).
class ReaderFailingEnv final : public ForwardingEnv {
 public:
  using ForwardingEnv::ForwardingEnv;
  bool fail_readers = false;

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    if (fail_readers) return absl::ResourceExhaustedError("Too many open files");
    return ForwardingEnv::NewRandomAccessFile(path);
  }
};

// A roll whose new segment is created but cannot be opened fails the
// append; the log's owner then cuts what was not synced. The new, empty
// file is not left behind: a restart took its base offset for the log's
// next one and the records cut off before it for a damaged segment, with a
// hole of offsets the groups would skip.
TEST_F(TopicLogTest, ASegmentThatCouldNotBeOpenedIsNotLeftBehind) {
  ReaderFailingEnv env(Env::Default());
  TopicLog::Options options = LogOptions(/*segment_bytes=*/1024);
  options.env = &env;
  {
    absl::StatusOr<std::unique_ptr<TopicLog>> log = TopicLog::Open(options, {});
    ASSERT_THAT(log, IsOk());
    AppendSynced(log->get(), 5);
    env.fail_readers = true;
    std::vector<std::string> serialized;
    std::vector<EventBytes> events;
    for (int i = 0; i < 10; ++i) {
      Event event;
      event.set_id(absl::StrCat("more-", i));
      event.set_data(std::string(60, 'z'));
      serialized.push_back(event.SerializeAsString());
    }
    for (const std::string& bytes : serialized) {
      events.push_back(EventBytes{bytes, crc32c::Value(bytes.data(), bytes.size())});
    }
    EXPECT_THAT((*log)->Append(events, kT0), Not(IsOk()));  // the roll failed
    EXPECT_THAT((*log)->DropUnsynced(), IsOk());
  }
  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1024);
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(out, Not(HasSubstr("damaged")));
  EXPECT_EQ(log->recovery().damaged_segments, 0u);
  EXPECT_EQ(log->written_end(), 5u);
  EXPECT_THAT(ReadAll(*log), SizeIs(5));
}

TEST_F(TopicLogTest, ReservedSpaceLeftOnAnOlderSegmentIsNoDamage) {
  // A crash between sealing a full segment (synced) and cutting its
  // reserved space leaves zeros after its last record.
  const SegmentScan first = WriteThreeSegments();
  ASSERT_TRUE(first.clean_end);
  const uint64_t first_size = first.records_end;
  ASSERT_EQ(first.contents.size(), first_size);  // sealed: no reserved space
  ASSERT_THAT(Env::Default()->TruncateFile(SegmentPath(0), first_size + 1024), IsOk());
  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1024);
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(out, Not(HasSubstr("damaged")));
  EXPECT_EQ(log->recovery().damaged_segments, 0u);
  EXPECT_EQ(log->recovery().unreadable_bytes, 0u);
  EXPECT_THAT(Env::Default()->GetFileSize(SegmentPath(0)), IsOkAndHolds(first_size));
  std::vector<Event> events = ReadAll(*log);
  ASSERT_THAT(events, SizeIs(30));
  for (uint64_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].offset(), i);
}

TEST_F(TopicLogTest, ZerosInPlaceOfAnOlderSegmentsLastRecordsAreDamage) {
  // An older segment was synced whole before the next began: zeros where
  // its last records should be are lost data, not reserved space.
  const SegmentScan first = WriteThreeSegments();
  ASSERT_GE(first.records, 2u);
  const std::string& contents = first.contents;
  const uint64_t records = first.records;
  const size_t last_start = first.last_start;
  {
    std::fstream file(SegmentPath(0), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(last_start));
    const std::string zeros(contents.size() - last_start, '\0');
    file.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    ASSERT_TRUE(file.good());
  }
  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1024);
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(out, HasSubstr("damaged segment"));
  EXPECT_THAT(out, HasSubstr("zeros from byte"));
  EXPECT_EQ(log->recovery().damaged_segments, 1u);
  EXPECT_EQ(log->recovery().unreadable_bytes, contents.size() - last_start);
  // The file is kept as it is, and the records before the zeros are read.
  EXPECT_THAT(Env::Default()->GetFileSize(SegmentPath(0)), IsOkAndHolds(contents.size()));
  std::vector<Event> events = ReadAll(*log);
  ASSERT_THAT(events, SizeIs(records - 1));
  EXPECT_EQ(events.back().offset(), records - 2);
  // Offset records - 1 is lost; the next segment reads from its base.
  std::vector<Event> after = ReadAll(*log, records);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.front().offset(), records);
}

TEST_F(TopicLogTest, AnOlderSegmentCutAtARecordBoundaryIsDamage) {
  const SegmentScan first = WriteThreeSegments();
  ASSERT_GE(first.records, 2u);
  ASSERT_THAT(Env::Default()->TruncateFile(SegmentPath(0), first.last_start), IsOk());
  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1024);
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("end of file from byte ", first.last_start, " where offsets ",
                                     first.records - 1, "..", first.records)));
  EXPECT_EQ(log->recovery().damaged_segments, 1u);
  EXPECT_THAT(ReadAll(*log), SizeIs(first.records - 1));
}

TEST_F(TopicLogTest, TornTailOfTheLastSegmentIsCutOnReopen) {
  // Half a record: a header that promises more than the file holds, at the
  // end of the file or inside the space reserved after the records.
  for (bool reserved : {false, true}) {
    SCOPED_TRACE(reserved ? "inside reserved space" : "at the end of the file");
    TempDir dir;
    TopicLog::Options options = LogOptions(/*segment_bytes=*/1 << 20);
    options.dir = dir.Join("orders");
    const std::string segment = absl::StrCat(options.dir, "/", Segment::FileName(0));
    uint64_t good_size = 0;
    {
      absl::StatusOr<std::unique_ptr<TopicLog>> log = TopicLog::Open(options);
      ASSERT_THAT(log, IsOk());
      AppendSynced(log->get(), 5);
      good_size = (*log)->Stats().bytes;
    }
    ASSERT_THAT(Env::Default()->TruncateFile(segment, good_size), IsOk());
    std::string torn;
    AppendRecord(std::string(100, 'x'), &torn);
    torn.resize(30);
    {
      auto file = Env::Default()->NewAppendableFile(segment);
      ASSERT_THAT(file, IsOk());
      ASSERT_THAT((*file)->Append(torn), IsOk());
    }
    if (reserved) {
      ASSERT_THAT(Env::Default()->TruncateFile(segment, good_size + 4096), IsOk());
    }

    ::testing::internal::CaptureStdout();
    absl::StatusOr<std::unique_ptr<TopicLog>> log = TopicLog::Open(options);
    std::string err = ::testing::internal::GetCapturedStdout();
    ASSERT_THAT(log, IsOk());
    // The reserved zeros are not counted as cut.
    EXPECT_THAT(err, HasSubstr("cut_bytes=30"));
    EXPECT_THAT(err, HasSubstr(reserved ? "record CRC mismatch" : "torn record payload"));
    EXPECT_EQ((*log)->recovery().truncated_bytes, 30u);
    EXPECT_THAT(Env::Default()->GetFileSize(segment), IsOkAndHolds(good_size));
    EXPECT_EQ((*log)->DurableEnd(), 5u);
    AppendSynced(log->get(), 1);
    EXPECT_THAT(ReadAll(**log), SizeIs(6));
  }
}

TEST_F(TopicLogTest, CorruptionInsideAnOlderSegmentKeepsItsValidPrefix) {
  {
    auto log = OpenLog(/*segment_bytes=*/1024);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 5; ++i) AppendSynced(log.get(), 10);
  }
  // Flip a byte in the 4th record of the first segment.
  std::string contents;
  ASSERT_THAT(ReadFileToString(Env::Default(), SegmentPath(0), &contents), IsOk());
  RecordReader reader(contents);
  absl::string_view payload;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(reader.Next(&payload));
  size_t fourth = reader.record_start();
  contents[fourth + 20] ^= 0x40;
  ASSERT_THAT(Env::Default()->TruncateFile(SegmentPath(0), 0), IsOk());
  {
    auto file = Env::Default()->NewAppendableFile(SegmentPath(0));
    ASSERT_THAT(file, IsOk());
    ASSERT_THAT((*file)->Append(contents), IsOk());
  }

  ::testing::internal::CaptureStdout();
  auto log = OpenLog(/*segment_bytes=*/1024);
  std::string err = ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(err, HasSubstr("kept the valid prefix"));
  EXPECT_EQ(log->recovery().damaged_segments, 1u);
  EXPECT_EQ(log->recovery().truncated_bytes, 0u);
  // The damaged file is left as it was, for a human to look at.
  EXPECT_THAT(Env::Default()->GetFileSize(SegmentPath(0)), IsOkAndHolds(contents.size()));
  EXPECT_EQ(log->DurableEnd(), 50u);

  // A read stops at the hole; reading from inside it starts at the next segment.
  std::vector<Event> events = ReadAll(*log);
  ASSERT_THAT(events, SizeIs(3));
  EXPECT_EQ(events[2].offset(), 2u);
  std::vector<Event> rest = ReadAll(*log, 3);
  ASSERT_FALSE(rest.empty());
  EXPECT_GT(rest.front().offset(), 3u);
  EXPECT_EQ(rest.back().offset(), 49u);
  EXPECT_EQ(rest.size(), 50u - rest.front().offset());
  AppendSynced(log.get(), 1);
  EXPECT_EQ(log->DurableEnd(), 51u);
}

TEST_F(TopicLogTest, GarbageOnlySegmentRecoversAsEmpty) {
  ASSERT_THAT(Env::Default()->CreateDir(dir_.Join("orders")), IsOk());
  {
    auto file = Env::Default()->NewAppendableFile(SegmentPath(0));
    ASSERT_THAT(file, IsOk());
    ASSERT_THAT((*file)->Append(std::string(100, '\x7f')), IsOk());
  }
  ::testing::internal::CaptureStdout();
  auto log = OpenLog();
  ::testing::internal::GetCapturedStdout();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->recovery().truncated_bytes, 100u);
  EXPECT_EQ(log->DurableEnd(), 0u);
  AppendSynced(log.get(), 2);
  EXPECT_THAT(ReadAll(*log), SizeIs(2));
}

TEST_F(TopicLogTest, RetentionDeletesOldSegmentsBelowTheFloor) {
  auto log = OpenLog(/*segment_bytes=*/1024);
  ASSERT_NE(log, nullptr);
  for (int k = 0; k < 10; ++k) AppendSynced(log.get(), 10, kT0 + absl::Hours(k));
  const uint32_t segments = log->Stats().segments;
  ASSERT_GT(segments, 5u);

  TopicLog::RetentionPolicy policy;
  policy.now = kT0 + absl::Hours(10);
  policy.max_age = absl::Hours(100);  // nothing is old enough
  EXPECT_THAT(log->DeleteOldSegments(policy), IsOk());
  EXPECT_EQ(log->Stats().segments, segments);

  policy.max_age = absl::Hours(5);  // offsets published before kT0+5h may go...
  policy.floor = 20;                // ...but only segments ending at or below 20
  absl::StatusOr<TopicLog::RetentionResult> result = log->DeleteOldSegments(policy);
  ASSERT_THAT(result, IsOk());
  EXPECT_GT(result->deleted_segments, 0u);
  EXPECT_EQ(result->forced_deleted_events, 0u);
  EXPECT_LE(log->FirstOffset(), 20u);
  EXPECT_GT(log->FirstOffset(), 0u);
  EXPECT_FALSE(Env::Default()->GetFileSize(SegmentPath(0)).ok());

  policy.floor.reset();  // no floor: the age rule alone
  ASSERT_THAT(log->DeleteOldSegments(policy), IsOk());
  const uint64_t first = log->FirstOffset();
  EXPECT_GT(first, 20u);
  EXPECT_LE(first, 50u);
  // The first retained segment holds events of kT0+4h or later.
  EXPECT_GE(PublishTime(ReadAll(*log).back()), kT0 + absl::Hours(9));
  EXPECT_EQ(ReadAll(*log).front().offset(), first);
  EXPECT_EQ(log->Read(0, 1, 1 << 20)->at(0).offset(), first);
}

TEST_F(TopicLogTest, RetentionNeverDeletesTheActiveSegment) {
  auto log = OpenLog(/*segment_bytes=*/1 << 20);
  ASSERT_NE(log, nullptr);
  AppendSynced(log.get(), 10, kT0);
  TopicLog::RetentionPolicy policy;
  policy.now = kT0 + absl::Hours(1000);
  policy.max_age = absl::Seconds(1);
  policy.max_bytes = 0;
  policy.hard_max_bytes = 0;
  EXPECT_THAT(log->DeleteOldSegments(policy), IsOk());
  EXPECT_EQ(log->Stats().events, 10u);
}

TEST_F(TopicLogTest, HardCapDeletesAboveTheFloorAndCountsIt) {
  auto log = OpenLog(/*segment_bytes=*/1024);
  ASSERT_NE(log, nullptr);
  for (int k = 0; k < 10; ++k) AppendSynced(log.get(), 10, kT0);
  const uint64_t bytes = log->Stats().bytes;
  TopicLog::RetentionPolicy policy;
  policy.now = kT0;
  policy.max_bytes = 0;  // wants everything gone...
  policy.floor = 0;      // ...but no group has consumed anything
  EXPECT_THAT(log->DeleteOldSegments(policy),
              IsOkAndHolds(::testing::Field(&TopicLog::RetentionResult::deleted_segments, 0u)));
  policy.hard_max_bytes = bytes / 2;
  ::testing::internal::CaptureStdout();
  absl::StatusOr<TopicLog::RetentionResult> result = log->DeleteOldSegments(policy);
  std::string err = ::testing::internal::GetCapturedStdout();
  ASSERT_THAT(result, IsOk());
  EXPECT_GT(result->deleted_segments, 0u);
  EXPECT_EQ(result->forced_deleted_events, log->FirstOffset());
  EXPECT_EQ(result->deleted_events, log->FirstOffset());
  EXPECT_LE(log->Stats().bytes, bytes / 2);
  EXPECT_THAT(err, HasSubstr("hard cap"));
}

}  // namespace
}  // namespace relay::broker
