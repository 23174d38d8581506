#include "broker/storage/file_event_log.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "broker/storage/record.h"
#include "broker/storage/segment.h"
#include "broker/storage/segment_scan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(60);
const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

// A clock that only moves when told to.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  std::function<absl::Time()> AsFunction() {
    return [this] { return Now(); };
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = kT0;
};

std::vector<Event> MakeEvents(absl::string_view prefix, int n, size_t data_bytes = 64) {
  std::vector<Event> events(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Event& e = events[static_cast<size_t>(i)];
    e.set_id(absl::StrCat(prefix, "-", i));
    e.set_type("order.created");
    e.set_key(absl::StrCat("order-", i % 10));
    e.set_source("order-service");
    e.set_topic("ignored: the log clears it");
    (*e.mutable_headers())["correlation_id"] = e.key();
    e.set_data(std::string(data_bytes, static_cast<char>('a' + i % 26)));
  }
  return events;
}

// Appends and waits for `done`.
absl::StatusOr<std::vector<AppendResult>> AppendAndWait(EventLog* log, const std::string& topic,
                                                        std::vector<Event> events) {
  absl::Notification done;
  absl::StatusOr<std::vector<AppendResult>> out = absl::UnknownError("done never called");
  log->Append(topic, std::move(events), [&](absl::StatusOr<std::vector<AppendResult>> r) {
    out = std::move(r);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(kWait)) return absl::DeadlineExceededError("no done");
  return out;
}

std::vector<uint64_t> Offsets(const std::vector<AppendResult>& results) {
  std::vector<uint64_t> offsets;
  for (const AppendResult& r : results) offsets.push_back(r.offset);
  return offsets;
}

class FileEventLogTest : public ::testing::Test {
 protected:
  FileEventLog::Options LogOptions() {
    FileEventLog::Options options;
    options.data_dir = dir_.Join("data");
    options.clock = clock_.AsFunction();
    options.retention_check_interval = absl::ZeroDuration();  // tests call RunRetentionOnce
    return options;
  }

  std::unique_ptr<FileEventLog> Open(const FileEventLog::Options& options) {
    absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options);
    EXPECT_THAT(log, IsOk());
    return log.ok() ? *std::move(log) : nullptr;
  }
  std::unique_ptr<FileEventLog> Open() { return Open(LogOptions()); }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(FileEventLogTest, OffsetsAreDenseFromZeroPerTopic) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(
      AppendAndWait(log.get(), "orders", MakeEvents("a", 3)),
      IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0u), Field(&AppendResult::offset, 1u),
                               Field(&AppendResult::offset, 2u))));
  EXPECT_THAT(AppendAndWait(log.get(), "payments", MakeEvents("b", 2)),
              IsOkAndHolds(
                  ElementsAre(Field(&AppendResult::offset, 0u), Field(&AppendResult::offset, 1u))));
  auto more = AppendAndWait(log.get(), "orders", MakeEvents("c", 2));
  ASSERT_THAT(more, IsOk());
  EXPECT_THAT(Offsets(*more), ElementsAre(3u, 4u));
  EXPECT_EQ(log->DurableEnd("orders"), 5u);
  EXPECT_EQ(log->DurableEnd("payments"), 2u);
  EXPECT_EQ(log->DurableEnd("unknown"), 0u);
  EXPECT_EQ(log->FirstOffset("orders"), 0u);

  std::vector<TopicStats> topics = log->ListTopics();
  ASSERT_THAT(topics, SizeIs(2));
  EXPECT_EQ(topics[0].name, "orders");
  EXPECT_EQ(topics[0].events, 5u);
  EXPECT_EQ(topics[0].end_offset, 5u);
  EXPECT_EQ(topics[0].first_time, kT0);
  EXPECT_GT(topics[0].bytes, 5u * 64u);
  EXPECT_EQ(topics[1].name, "payments");
  EXPECT_THAT(log->Close(), IsOk());
}

TEST_F(FileEventLogTest, ReadReturnsWhatWasAppendedWithTopicOffsetAndPublishTime) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> sent = MakeEvents("e", 20);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", sent), IsOk());
  absl::StatusOr<std::vector<Event>> got = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(got, IsOkAndHolds(SizeIs(20)));
  for (size_t i = 0; i < sent.size(); ++i) {
    const Event& e = (*got)[i];
    EXPECT_EQ(e.offset(), i);
    EXPECT_EQ(e.topic(), "orders");
    EXPECT_EQ(PublishTime(e), kT0);
    Event expected = sent[i];
    expected.set_topic("orders");
    expected.set_offset(i);
    ToTimestamp(kT0, expected.mutable_publish_time());
    EXPECT_EQ(e.SerializeAsString(), expected.SerializeAsString()) << i;
  }
  EXPECT_THAT(log->Read("orders", 5, 3, 1 << 20), IsOkAndHolds(SizeIs(3)));
  EXPECT_THAT(log->Read("orders", 5, 100, 1), IsOkAndHolds(SizeIs(1)));
  // The room offsets 5..7 take in the segment file.
  std::string contents;
  ASSERT_THAT(ReadFileToString(Env::Default(),
                               dir_.Join("data/topics/orders/") + Segment::FileName(0), &contents),
              IsOk());
  RecordReader reader(contents);
  absl::string_view payload;
  size_t three_records = 0;
  for (int i = 0; i < 8; ++i) {
    size_t before = reader.valid_end();
    ASSERT_TRUE(reader.Next(&payload));
    if (i >= 5) three_records += reader.valid_end() - before;
  }
  EXPECT_THAT(log->Read("orders", 5, 100, three_records), IsOkAndHolds(SizeIs(3)));
  EXPECT_THAT(log->Read("orders", 5, 100, three_records - 1), IsOkAndHolds(SizeIs(2)));
  EXPECT_THAT(log->Read("orders", 20, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->Read("orders", 5, 0, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->Read("nope", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
}

// ReadStored() gives what Read() gives, as stored bytes: the events
// written last to a topic being read from the tail cache (the same bytes to
// every reader), the rest from the files: what came before its first read,
// what the cache let go, and every topic nobody reads.
TEST_F(FileEventLogTest, ReadStoredServesTheTailFromMemoryAndTheRestFromTheFiles) {
  FileEventLog::Options options = LogOptions();
  std::vector<Event> first = MakeEvents("a", 10);
  // Room for about a commit and a half of ten.
  options.tail_cache_bytes = 15 * (first[0].ByteSizeLong() + 20);
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", first), IsOk());
  ASSERT_THAT(log->ReadStored("orders", 0, 1, 1 << 20), IsOkAndHolds(SizeIs(1)));
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 10)), IsOk());
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("c", 10)), IsOk());
  ASSERT_THAT(AppendAndWait(log.get(), "payments", MakeEvents("d", 3)), IsOk());

  for (uint64_t from = 0; from < 30; ++from) {
    absl::StatusOr<std::vector<Event>> events = log->Read("orders", from, 100, 1 << 20);
    absl::StatusOr<std::vector<StoredEvent>> stored = log->ReadStored("orders", from, 100, 1 << 20);
    ASSERT_THAT(events, IsOkAndHolds(SizeIs(30 - from)));
    ASSERT_THAT(stored, IsOkAndHolds(SizeIs(30 - from))) << from;
    for (size_t i = 0; i < events->size(); ++i) {
      const StoredEvent& s = (*stored)[i];
      EXPECT_EQ(s.offset(), from + i);
      EXPECT_EQ(s.type(), (*events)[i].type());
      EXPECT_EQ(s.key(), (*events)[i].key());
      EXPECT_EQ(s.ToEvent("orders").SerializeAsString(), (*events)[i].SerializeAsString())
          << from + i;
    }
  }
  // The newest are shared from memory; the first commit was written before
  // anyone read the topic, the second was evicted by the third: both are
  // read back into fresh bytes, as is the topic nobody read.
  auto read_twice = [&](const std::string& topic, uint64_t offset) {
    std::vector<StoredEvent> a = *log->ReadStored(topic, offset, 1, 1 << 20);
    std::vector<StoredEvent> b = *log->ReadStored(topic, offset, 1, 1 << 20);
    return a.front().bytes().data() == b.front().bytes().data();
  };
  EXPECT_TRUE(read_twice("orders", 29));
  EXPECT_TRUE(read_twice("orders", 20));
  EXPECT_FALSE(read_twice("orders", 19));
  EXPECT_FALSE(read_twice("orders", 10));
  EXPECT_FALSE(read_twice("orders", 0));
  EXPECT_FALSE(read_twice("payments", 0));
  // Limits hold on both paths.
  EXPECT_THAT(log->ReadStored("orders", 25, 3, 1 << 20), IsOkAndHolds(SizeIs(3)));
  EXPECT_THAT(log->ReadStored("orders", 25, 100, 1), IsOkAndHolds(SizeIs(1)));
  EXPECT_THAT(log->ReadStored("orders", 0, 100, 1), IsOkAndHolds(SizeIs(1)));
  EXPECT_THAT(log->ReadStored("orders", 30, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->ReadStored("orders", 5, 0, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->ReadStored("nope", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->ReadStored("payments", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(3)));
  EXPECT_THAT(log->Close(), IsOk());
}

// The cache follows the readers: a topic's commits are cached while
// ReadStored() read it in the last 5 s; when its readers pause, its cached
// events and its place in the eviction order go (the order does not grow
// with every pause), and caching resumes with the next read.
TEST_F(FileEventLogTest, TailCacheFollowsTheTopicsReaders) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  auto shared = [&](uint64_t offset) {
    std::vector<StoredEvent> a = *log->ReadStored("orders", offset, 1, 1 << 20);
    std::vector<StoredEvent> b = *log->ReadStored("orders", offset, 1, 1 << 20);
    return a.front().bytes().data() == b.front().bytes().data();
  };
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 1)), IsOk());
  EXPECT_EQ(log->tail_cache_stats().commits, 0u);  // nobody read it yet
  uint64_t next = 1;
  for (int pause = 0; pause < 3; ++pause) {
    ASSERT_THAT(log->ReadStored("orders", 0, 1, 1 << 20), IsOkAndHolds(SizeIs(1)));
    for (int i = 0; i < 5; ++i) {
      ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents(absl::StrCat(pause, "-", i), 2)),
                  IsOk());
    }
    EXPECT_EQ(log->tail_cache_stats().commits, 5u) << pause;
    EXPECT_TRUE(shared(next + 9)) << pause;
    clock_.Advance(absl::Seconds(6));  // the readers pause
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents(absl::StrCat("p", pause), 1)),
                IsOk());
    EXPECT_EQ(log->tail_cache_stats().commits, 0u) << pause;
    EXPECT_EQ(log->tail_cache_stats().bytes, 0u) << pause;
    next += 11;
    EXPECT_FALSE(shared(next - 1)) << pause;  // read from the files
  }
}

TEST_F(FileEventLogTest, ReadStoredWithoutATailCacheReadsTheFiles) {
  FileEventLog::Options options = LogOptions();
  options.tail_cache_bytes = 0;
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 5)), IsOk());
  absl::StatusOr<std::vector<StoredEvent>> stored = log->ReadStored("orders", 2, 100, 1 << 20);
  ASSERT_THAT(stored, IsOkAndHolds(SizeIs(3)));
  EXPECT_EQ((*stored)[0].offset(), 2u);
  EXPECT_EQ((*stored)[0].ToEvent("orders").id(), "a-2");
  std::vector<StoredEvent> again = *log->ReadStored("orders", 2, 1, 1 << 20);
  EXPECT_NE(again.front().bytes().data(), (*stored)[0].bytes().data());
}

TEST_F(FileEventLogTest, EmptyBatchAnswersWithNoResults) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", {}), IsOkAndHolds(SizeIs(0)));
}

TEST_F(FileEventLogTest, DuplicateWithinABatchGetsTheFirstOffset) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("x", 3);
  events.push_back(events[1]);
  auto results = AppendAndWait(log.get(), "orders", events);
  ASSERT_THAT(results, IsOkAndHolds(SizeIs(4)));
  EXPECT_THAT(Offsets(*results), ElementsAre(0u, 1u, 2u, 1u));
  EXPECT_FALSE((*results)[1].duplicate);
  EXPECT_TRUE((*results)[3].duplicate);
  EXPECT_EQ(log->DurableEnd("orders"), 3u);
}

TEST_F(FileEventLogTest, DuplicateAcrossBatchesAndCommitsGetsTheFirstOffset) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("x", 5)), IsOk());
  // Same ids again, plus a new one: only the new one is appended.
  std::vector<Event> again = MakeEvents("x", 6);
  auto results = AppendAndWait(log.get(), "orders", again);
  ASSERT_THAT(results, IsOk());
  EXPECT_THAT(Offsets(*results), ElementsAre(0u, 1u, 2u, 3u, 4u, 5u));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE((*results)[static_cast<size_t>(i)].duplicate);
  EXPECT_FALSE((*results)[5].duplicate);
  EXPECT_EQ(log->DurableEnd("orders"), 6u);
  // The same id in another topic is another event.
  EXPECT_THAT(AppendAndWait(log.get(), "payments", MakeEvents("x", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, false))));

  // Two batches queued together (one commit) with the same id.
  absl::Mutex mu;
  std::vector<AppendResult> seen;
  int answered = 0;
  for (int k = 0; k < 2; ++k) {
    log->Append("orders", MakeEvents("y", 1), [&](absl::StatusOr<std::vector<AppendResult>> r) {
      absl::MutexLock lock(&mu);
      ASSERT_THAT(r, IsOkAndHolds(SizeIs(1)));
      seen.push_back((*r)[0]);
      ++answered;
    });
  }
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                      +[](int* n) { return *n == 2; }, &answered),
                                  kWait));
  EXPECT_EQ(seen[0].offset, 6u);
  EXPECT_EQ(seen[1].offset, 6u);
  EXPECT_NE(seen[0].duplicate, seen[1].duplicate);
}

TEST_F(FileEventLogTest, DedupeSurvivesReopen) {
  {
    auto log = Open();
    ASSERT_NE(log, nullptr);
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("x", 10)), IsOk());
    ASSERT_THAT(log->Close(), IsOk());
  }
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> retry = MakeEvents("x", 10);
  auto results = AppendAndWait(log.get(), "orders", {retry[7]});
  ASSERT_THAT(results, IsOkAndHolds(SizeIs(1)));
  EXPECT_EQ((*results)[0].offset, 7u);
  EXPECT_TRUE((*results)[0].duplicate);
  EXPECT_EQ(log->DurableEnd("orders"), 10u);
}

TEST_F(FileEventLogTest, DedupeForgetsIdsOutsideTheWindow) {
  FileEventLog::Options options = LogOptions();
  options.dedupe_window = absl::Hours(1);
  {
    auto log = Open(options);
    ASSERT_NE(log, nullptr);
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("old", 1)), IsOk());
    clock_.Advance(absl::Minutes(59));
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("new", 1)), IsOk());
    // Still inside the window.
    EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("old", 1)),
                IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, true))));
    clock_.Advance(absl::Minutes(2));
    // "old-0" was published 61 minutes ago: a new event now.
    auto results = AppendAndWait(log.get(), "orders", MakeEvents("old", 1));
    ASSERT_THAT(results, IsOkAndHolds(SizeIs(1)));
    EXPECT_FALSE((*results)[0].duplicate);
    EXPECT_EQ((*results)[0].offset, 2u);
  }
  clock_.Advance(absl::Minutes(58));
  // Reopened 59 minutes after "new-0" and 119 after the first "old-0": the
  // window rebuilt from the records holds "new-0" and the second "old-0".
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("new", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 1u))));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("old", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 2u))));
  clock_.Advance(absl::Minutes(2));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("new", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, false))));
}

TEST_F(FileEventLogTest, DedupeWindowsShrinkToFitTheMemoryBudget) {
  FileEventLog::Options options = LogOptions();
  // Room for about 1,000 ids across all topics.
  options.dedupe_max_bytes = 1000 * DedupeIndex::kBytesPerId;
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "quiet", MakeEvents("q", 100)), IsOk());
  for (int batch = 0; batch < 10; ++batch) {
    ASSERT_THAT(AppendAndWait(log.get(), "busy", MakeEvents(absl::StrCat("b", batch), 300)),
                IsOk());
  }
  uint64_t total = 0;
  for (const TopicStats& t : log->ListTopics()) {
    total += t.dedupe_bytes;
    if (t.name == "busy") {
      // The largest window gave up its oldest ids, and says so.
      EXPECT_GT(t.dedupe_evicted, 2000u);
      EXPECT_LT(t.dedupe_ids, 1000u);
    } else {
      EXPECT_EQ(t.dedupe_evicted, 0u);
      EXPECT_EQ(t.dedupe_ids, 100u);
    }
  }
  EXPECT_LE(total, options.dedupe_max_bytes);
  // The newest ids are still deduplicated; the oldest are not.
  EXPECT_THAT(AppendAndWait(log.get(), "busy", MakeEvents("b9", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, true))));
  EXPECT_THAT(AppendAndWait(log.get(), "busy", MakeEvents("b0", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, false))));
}

TEST_F(FileEventLogTest, ConcurrentAppendsGetDistinctDenseOffsetsAndEveryCallback) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  constexpr int kThreads = 4;
  constexpr int kBatches = 50;
  constexpr int kPerBatch = 20;
  absl::Mutex mu;
  std::vector<uint64_t> offsets[2];
  int answered = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const int topic = (t + b) % 2;
        log->Append(topic == 0 ? "orders" : "payments",
                    MakeEvents(absl::StrCat("t", t, "b", b), kPerBatch, 16),
                    [&, topic](absl::StatusOr<std::vector<AppendResult>> r) {
                      absl::MutexLock lock(&mu);
                      ++answered;
                      ASSERT_THAT(r, IsOkAndHolds(SizeIs(kPerBatch)));
                      for (const AppendResult& a : *r) {
                        EXPECT_FALSE(a.duplicate);
                        offsets[topic].push_back(a.offset);
                      }
                    });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(
                                +[](int* n) { return *n == kThreads * kBatches; }, &answered),
                            kWait));
  }
  const size_t total = kThreads * kBatches * kPerBatch;
  ASSERT_EQ(offsets[0].size() + offsets[1].size(), total);
  for (int topic = 0; topic < 2; ++topic) {
    std::vector<uint64_t> sorted = offsets[topic];
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], i) << "topic " << topic;
  }
  EXPECT_EQ(log->DurableEnd("orders"), offsets[0].size());
  EXPECT_EQ(log->DurableEnd("payments"), offsets[1].size());
}

TEST_F(FileEventLogTest, ReadsRunSafelyAlongsideAppendsAndRetention) {
  FileEventLog::Options options = LogOptions();
  options.segment_bytes = 8 << 10;
  options.retention_bytes = 64 << 10;
  options.hard_max_bytes = 64 << 10;
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  constexpr int kBatches = 200;
  constexpr int kPerBatch = 20;
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      const uint64_t first = log->FirstOffset("orders");
      absl::StatusOr<std::vector<Event>> events = log->Read("orders", first, 1 << 20, 1 << 30);
      const uint64_t end_after = log->DurableEnd("orders");
      ASSERT_THAT(events, IsOk());
      for (size_t i = 0; i < events->size(); ++i) {
        const Event& e = (*events)[i];
        // Offsets are consecutive, the content is the one published there,
        // and nothing beyond the durable end ever shows.
        if (i > 0) {
          ASSERT_EQ(e.offset(), (*events)[i - 1].offset() + 1);
        }
        ASSERT_EQ(e.id(), absl::StrCat("b", e.offset() / kPerBatch, "-", e.offset() % kPerBatch));
        ASSERT_LT(e.offset(), end_after);
      }
      ++reads;
    }
  });
  std::thread retention([&] {
    while (!done.load()) ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  });
  absl::Mutex mu;
  int answered = 0;
  for (int b = 0; b < kBatches; ++b) {
    log->Append("orders", MakeEvents(absl::StrCat("b", b), kPerBatch, 16),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  EXPECT_THAT(r, IsOk());
                  absl::MutexLock lock(&mu);
                  ++answered;
                });
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](int* n) { return *n == kBatches; }, &answered),
                                    kWait));
  }
  const absl::Time deadline = absl::Now() + kWait;
  while (reads.load() < 10 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  done = true;
  reader.join();
  retention.join();
  EXPECT_GE(reads.load(), 10);
  EXPECT_EQ(log->DurableEnd("orders"), uint64_t{kBatches * kPerBatch});
  EXPECT_GT(log->FirstOffset("orders"), 0u);  // retention did run meanwhile
}

TEST_F(FileEventLogTest, DurabilityListenerSeesIncreasingEndsBeforeTheAcks) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  absl::Mutex mu;
  std::vector<std::string> trace;  // "ack:<end>" and "durable:<topic>:<end>" in call order
  uint64_t acked_orders = 0;
  log->SetDurabilityListener([&](const std::string& topic, uint64_t end) {
    absl::MutexLock lock(&mu);
    trace.push_back(absl::StrCat("durable:", topic, ":", end));
  });
  for (int b = 0; b < 30; ++b) {
    log->Append("orders", MakeEvents(absl::StrCat("b", b), 10),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  ASSERT_THAT(r, IsOk());
                  absl::MutexLock lock(&mu);
                  acked_orders = std::max(acked_orders, r->back().offset + 1);
                  trace.push_back(absl::StrCat("ack:", r->back().offset + 1));
                });
  }
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(
      mu.AwaitWithTimeout(absl::Condition(
                              +[](uint64_t* acked) { return *acked == 300; }, &acked_orders),
                          kWait));
  uint64_t last_end = 0;
  for (const std::string& entry : trace) {
    uint64_t value = std::stoull(entry.substr(entry.rfind(':') + 1));
    if (entry.rfind("ack:", 0) == 0) {
      // Delivery starts first: the listener has announced what is acked.
      EXPECT_LE(value, last_end) << "ack before the listener announced its events";
    } else {
      EXPECT_GT(value, last_end) << entry;  // strictly increasing
      last_end = value;
    }
  }
  EXPECT_EQ(last_end, 300u);
}

// The callbacks run on a thread of their own: the writer goes on with the
// next commit (and its fsync) while they write answers to sockets. They
// still come in commit order.
TEST_F(FileEventLogTest, ASlowCallbackDoesNotHoldBackTheNextCommit) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  absl::Notification release;
  absl::Mutex mu;
  std::vector<std::string> answered;
  log->Append("orders", MakeEvents("a", 5), [&](absl::StatusOr<std::vector<AppendResult>> r) {
    EXPECT_THAT(r, IsOk());
    release.WaitForNotificationWithTimeout(kWait);
    absl::MutexLock lock(&mu);
    answered.push_back("a");
  });
  ASSERT_TRUE(::relay::testing::WaitFor([&] { return log->DurableEnd("orders") == 5; }));
  log->Append("orders", MakeEvents("b", 5), [&](absl::StatusOr<std::vector<AppendResult>> r) {
    EXPECT_THAT(r, IsOk());
    absl::MutexLock lock(&mu);
    answered.push_back("b");
  });
  // The second commit is durable while the first one's callback still runs.
  EXPECT_TRUE(::relay::testing::WaitFor([&] { return log->DurableEnd("orders") == 10; }));
  EXPECT_THAT(log->ReadStored("orders", 5, 10, 1 << 20), IsOkAndHolds(SizeIs(5)));
  release.Notify();
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(
      absl::Condition(
          +[](std::vector<std::string>* a) { return a->size() == 2; }, &answered),
      kWait));
  EXPECT_THAT(answered, ElementsAre("a", "b"));
}

TEST_F(FileEventLogTest, OffsetForTimeUsesPublishTimes) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  for (int k = 0; k < 5; ++k) {
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents(absl::StrCat("k", k), 4)), IsOk());
    clock_.Advance(absl::Minutes(1));
  }
  EXPECT_EQ(log->OffsetForTime("orders", kT0 - absl::Hours(1)), 0u);
  EXPECT_EQ(log->OffsetForTime("orders", kT0 + absl::Seconds(90)), 8u);
  EXPECT_EQ(log->OffsetForTime("orders", kT0 + absl::Minutes(4)), 16u);
  EXPECT_EQ(log->OffsetForTime("orders", kT0 + absl::Hours(1)), 20u);
  EXPECT_EQ(log->OffsetForTime("unknown", kT0), 0u);
}

TEST_F(FileEventLogTest, PublishTimeNeverGoesBackwards) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 1)), IsOk());
  clock_.Advance(-absl::Hours(1));  // the wall clock jumps back
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)), IsOk());
  absl::StatusOr<std::vector<Event>> events = log->Read("orders", 0, 10, 1 << 20);
  ASSERT_THAT(events, IsOkAndHolds(SizeIs(2)));
  EXPECT_EQ(PublishTime((*events)[1]), kT0);
}

TEST_F(FileEventLogTest, InvalidTopicFailsOnlyItsBatch) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  for (const char* bad : {"..", ".", "Orders", "a/b", ""}) {
    EXPECT_THAT(AppendAndWait(log.get(), bad, MakeEvents("x", 1)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("topic")))
        << bad;
  }
  EXPECT_THAT(AppendAndWait(log.get(), std::string(256, 'a'), MakeEvents("x", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("topic")));
  EXPECT_THAT(AppendAndWait(log.get(), "orders.dlq", MakeEvents("x", 1)), IsOk());
  // The dead-letter topic of a topic at the clients' 128-character limit.
  const std::string long_dlq = std::string(128, 'a') + ".dlq";
  EXPECT_THAT(AppendAndWait(log.get(), long_dlq, MakeEvents("x", 1)), IsOk());
  EXPECT_THAT(log->ListTopics(), ElementsAre(Field(&TopicStats::name, long_dlq),
                                             Field(&TopicStats::name, "orders.dlq")));
}

TEST_F(FileEventLogTest, OversizedEventFailsItsBatchAndChangesNothing) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("big", 2);
  events[1].set_data(std::string(kMaxRecordPayloadBytes, 'x'));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", events),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("larger")));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("big", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, false))));
  EXPECT_EQ(log->DurableEnd("orders"), 1u);
}

TEST_F(FileEventLogTest, TopicsAreDiscoveredOnReopen) {
  {
    auto log = Open();
    ASSERT_NE(log, nullptr);
    ASSERT_THAT(AppendAndWait(log.get(), "payments", MakeEvents("p", 2)), IsOk());
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("o", 3)), IsOk());
  }
  // Not topics: a file, and a directory with an invalid name.
  ASSERT_THAT(Env::Default()->CreateDir(dir_.Join("data/topics/Not-A-Topic")), IsOk());
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<TopicStats> topics = log->ListTopics();
  ASSERT_THAT(topics, SizeIs(2));
  EXPECT_EQ(topics[0].name, "orders");
  EXPECT_EQ(topics[0].events, 3u);
  EXPECT_EQ(topics[1].name, "payments");
  EXPECT_EQ(log->DurableEnd("payments"), 2u);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("o2", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 3u))));
}

TEST_F(FileEventLogTest, ACleanCloseLeavesNoReservedSpace) {
  const std::string segment = dir_.Join("data/topics/orders/") + Segment::FileName(0);
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("o", 3)), IsOk());
  // The records end before the file does: the writer reserved space.
  const SegmentScan scan = ScanSegmentFile(segment);
  EXPECT_EQ(scan.records, 3u);
  EXPECT_TRUE(scan.clean_end);
  const uint64_t record_bytes = scan.records_end;
  if (scan.contents.size() == record_bytes) GTEST_SKIP() << "no fallocate on " << dir_.path();
  ASSERT_THAT(log->Close(), IsOk());
  // Sealed: the file is its records and nothing else.
  EXPECT_THAT(Env::Default()->GetFileSize(segment), IsOkAndHolds(record_bytes));
}

TEST_F(FileEventLogTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(FileEventLog::Open(LogOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("locked")));
}

TEST_F(FileEventLogTest, BadOptionsAreRefused) {
  FileEventLog::Options options = LogOptions();
  options.segment_bytes = 10;
  EXPECT_THAT(FileEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("segment_bytes")));
  options = LogOptions();
  options.hard_max_bytes = options.retention_bytes - 1;
  EXPECT_THAT(FileEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hard_max_bytes")));
  options = LogOptions();
  options.data_dir.clear();
  EXPECT_THAT(FileEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_dir")));
}

TEST_F(FileEventLogTest, CloseDrainsQueuedAppendsThenRefusesNewOnes) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  absl::Mutex mu;
  int ok = 0;
  for (int b = 0; b < 100; ++b) {
    log->Append("orders", MakeEvents(absl::StrCat("b", b), 5),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  absl::MutexLock lock(&mu);
                  if (r.ok()) ++ok;
                });
  }
  ASSERT_THAT(log->Close(), IsOk());
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(ok, 100);  // every queued batch was answered, successfully, before Close returned
  }
  EXPECT_EQ(log->DurableEnd("orders"), 500u);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("late", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
  EXPECT_THAT(log->Close(), IsOk());  // idempotent
  EXPECT_THAT(log->Read("orders", 0, 1000, 1 << 30), IsOkAndHolds(SizeIs(500)));
}

TEST_F(FileEventLogTest, EveryFsyncPolicyAcksAndPersists) {
  for (FsyncPolicy policy : {FsyncPolicy::kBatch, FsyncPolicy::kInterval, FsyncPolicy::kNone}) {
    TempDir dir;
    FileEventLog::Options options = LogOptions();
    options.data_dir = dir.Join("data");
    options.fsync_policy = policy;
    options.fsync_interval = absl::Milliseconds(5);
    {
      auto log = Open(options);
      ASSERT_NE(log, nullptr);
      for (int b = 0; b < 5; ++b) {
        ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents(absl::StrCat("b", b), 10)),
                    IsOkAndHolds(SizeIs(10)));
      }
      EXPECT_EQ(log->DurableEnd("orders"), 50u);
    }
    auto log = Open(options);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->DurableEnd("orders"), 50u) << static_cast<int>(policy);
  }
}

class RetentionTest : public FileEventLogTest {
 protected:
  FileEventLog::Options RetentionOptions() {
    FileEventLog::Options options = LogOptions();
    options.segment_bytes = 4096;  // ~25 events of ~160 bytes
    options.retention_age = absl::Hours(24);
    return options;
  }

  // Appends `n` events in batches of 10 to `topic`.
  void Fill(FileEventLog* log, const std::string& topic, int n) {
    for (int b = 0; b < n / 10; ++b) {
      ASSERT_THAT(AppendAndWait(log, topic, MakeEvents(absl::StrCat(topic, b), 10, 100)), IsOk());
    }
  }
};

TEST_F(RetentionTest, DeletesOldSegmentsOnlyBelowTheFloor) {
  auto log = Open(RetentionOptions());
  ASSERT_NE(log, nullptr);
  Fill(log.get(), "orders", 200);
  Fill(log.get(), "payments", 200);
  const uint32_t segments = log->ListTopics()[0].segments;
  ASSERT_GE(segments, 6u);

  ASSERT_THAT(log->RunRetentionOnce(), IsOk());  // nothing is a day old yet
  EXPECT_EQ(log->ListTopics()[0].segments, segments);

  clock_.Advance(absl::Hours(25));
  log->SetRetentionFloor("orders", 100);  // a group still needs offset 100 on
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  std::vector<TopicStats> topics = log->ListTopics();
  const uint64_t first = log->FirstOffset("orders");
  EXPECT_GT(first, 0u);
  EXPECT_LE(first, 100u);
  EXPECT_EQ(topics[0].first_offset, first);
  EXPECT_EQ(topics[0].events, 200u - first);
  EXPECT_EQ(topics[0].forced_deleted_events, 0u);
  EXPECT_THAT(log->Read("orders", 0, 1, 1 << 20),
              IsOkAndHolds(ElementsAre(::testing::Property(&Event::offset, first))));
  // No floor on payments: everything old goes but the active segment.
  EXPECT_EQ(topics[1].segments, 1u);
  EXPECT_GT(log->FirstOffset("payments"), 150u);
  EXPECT_EQ(log->DurableEnd("payments"), 200u);

  log->SetRetentionFloor("orders", 200);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  EXPECT_EQ(log->ListTopics()[0].segments, 1u);
  EXPECT_EQ(log->DurableEnd("orders"), 200u);
}

TEST_F(RetentionTest, DeletesBySizeWhileAboveRetentionBytes) {
  FileEventLog::Options options = RetentionOptions();
  options.retention_bytes = 12 * 1024;
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  Fill(log.get(), "orders", 300);
  ASSERT_GT(log->ListTopics()[0].bytes, 12u * 1024u);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  TopicStats stats = log->ListTopics()[0];
  EXPECT_LE(stats.bytes, 12u * 1024u);
  EXPECT_GT(stats.bytes, 12u * 1024u - 4096u);  // only as much as needed went
  EXPECT_EQ(stats.end_offset, 300u);
  EXPECT_EQ(stats.first_offset + stats.events, 300u);
  // The tail cache (32 MiB) still holds the deleted events: reads start at
  // the first retained offset all the same.
  ASSERT_GT(stats.first_offset, 0u);
  EXPECT_THAT(log->Read("orders", 0, 1, 1 << 20),
              IsOkAndHolds(ElementsAre(::testing::Property(&Event::offset, stats.first_offset))));
  absl::StatusOr<std::vector<StoredEvent>> stored = log->ReadStored("orders", 0, 1, 1 << 20);
  ASSERT_THAT(stored, IsOkAndHolds(SizeIs(1)));
  EXPECT_EQ((*stored)[0].offset(), stats.first_offset);
}

TEST_F(RetentionTest, HardCapDeletesAboveTheFloorLogsAndCounts) {
  FileEventLog::Options options = RetentionOptions();
  options.retention_bytes = 8 * 1024;
  options.hard_max_bytes = 16 * 1024;
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  log->SetRetentionFloor("orders", 0);  // a group that never acked anything
  Fill(log.get(), "orders", 300);
  ::testing::internal::CaptureStdout();
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  std::string err = ::testing::internal::GetCapturedStdout();
  TopicStats stats = log->ListTopics()[0];
  EXPECT_LE(stats.bytes, 16u * 1024u);
  EXPECT_GT(stats.bytes, 8u * 1024u);  // the floor still holds below the hard cap
  EXPECT_GT(stats.first_offset, 0u);
  EXPECT_EQ(stats.forced_deleted_events, stats.first_offset);
  EXPECT_THAT(err, HasSubstr("WARN"));
  EXPECT_THAT(err, HasSubstr("hard cap"));
}

TEST_F(RetentionTest, BackgroundPassRuns) {
  FileEventLog::Options options = RetentionOptions();
  options.retention_check_interval = absl::Milliseconds(10);
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  Fill(log.get(), "orders", 200);
  clock_.Advance(absl::Hours(25));
  absl::Time deadline = absl::Now() + kWait;
  while (log->FirstOffset("orders") == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition, with a deadline
  }
  EXPECT_GT(log->FirstOffset("orders"), 0u);
}

}  // namespace
}  // namespace relay::broker
