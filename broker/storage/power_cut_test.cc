// Crash safety of FileEventLog, through FaultInjectionEnv: a power cut keeps
// only what was synced (or a torn prefix of the rest), and a failing disk
// stops the log without acknowledging anything it could lose.

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "broker/storage/fault_injection_env.h"
#include "broker/storage/file_event_log.h"
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
using ::relay::testing::WaitFor;
using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(60);
const std::vector<std::string> kTopics = {"orders", "payments", "inventory"};

// The event a producer sends for `id`: its content follows from the id, so
// the test can check what comes back without keeping copies.
Event MakeEvent(const std::string& id) {
  Event event;
  event.set_id(id);
  event.set_type("order.created");
  event.set_key(absl::StrCat("key-", id.size() % 7));
  event.set_source("power-cut-test");
  (*event.mutable_headers())["correlation_id"] = id;
  event.set_data(std::string(20 + std::hash<std::string>()(id) % 200, id.back()));
  return event;
}

std::vector<Event> MakeBatch(const std::string& prefix, int n) {
  std::vector<Event> events;
  for (int i = 0; i < n; ++i) events.push_back(MakeEvent(absl::StrCat(prefix, "-", i)));
  return events;
}

// The fields the producer set, for comparing what was sent to what is stored.
std::string ProducerFields(Event event) {
  event.clear_topic();
  event.clear_offset();
  event.clear_publish_time();
  return event.SerializeAsString();
}

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

class PowerCutTest : public ::testing::Test {
 protected:
  FileEventLog::Options LogOptions(FsyncPolicy policy = FsyncPolicy::kBatch) {
    FileEventLog::Options options;
    options.data_dir = dir_.Join("data");
    options.env = &env_;
    options.fsync_policy = policy;
    options.segment_bytes = 16 << 10;  // many rolls
    options.retention_check_interval = absl::ZeroDuration();
    return options;
  }

  std::unique_ptr<FileEventLog> Open(const FileEventLog::Options& options) {
    absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options);
    EXPECT_THAT(log, IsOk());
    return log.ok() ? *std::move(log) : nullptr;
  }

  // The power goes: nothing more reaches the disk, the process dies (the log
  // is destroyed without being able to write), then `drop` decides what of
  // the unsynced data the disk kept.
  template <typename Drop>
  void PowerCut(std::unique_ptr<FileEventLog>* log, Drop drop) {
    env_.SetFilesystemActive(false);
    log->reset();
    ASSERT_THAT(drop(), IsOk());
    env_.SetFilesystemActive(true);
  }

  // Every event of `topic`, checking offsets are dense and ids unique.
  std::vector<Event> ReadTopic(const FileEventLog& log, const std::string& topic) {
    absl::StatusOr<std::vector<Event>> events = log.Read(topic, 0, 1 << 30, size_t{1} << 40);
    EXPECT_THAT(events, IsOk());
    if (!events.ok()) return {};
    std::set<std::string> ids;
    for (size_t i = 0; i < events->size(); ++i) {
      EXPECT_EQ((*events)[i].offset(), i) << topic;
      EXPECT_TRUE(ids.insert((*events)[i].id()).second) << "id stored twice: " << (*events)[i].id();
    }
    EXPECT_EQ(events->size(), log.DurableEnd(topic));
    return *std::move(events);
  }

  TempDir dir_;
  FaultInjectionEnv env_{Env::Default()};
};

struct Acked {
  std::string topic;
  uint64_t offset;
  std::string id;
};

// Several producers on several topics; the power goes at a random moment.
// `drop_mode` 0 drops every unsynced byte, else keeps a random prefix of the
// unsynced tails (torn records) with that seed.
class AckedEventsSurvivePowerCut : public PowerCutTest,
                                   public ::testing::WithParamInterface<int> {};

TEST_P(AckedEventsSurvivePowerCut, EveryAckedEventIsThereWithItsContent) {
  const int drop_mode = GetParam();
  auto log = Open(LogOptions());
  ASSERT_NE(log, nullptr);

  absl::Mutex mu;
  std::vector<Acked> acked;
  int acked_batches = 0;
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      for (int b = 0; !stop.load(); ++b) {
        const std::string& topic = kTopics[static_cast<size_t>(t + b) % kTopics.size()];
        std::vector<Event> batch =
            MakeBatch(absl::StrCat("p", t, "b", b), 1 + (t * 7 + b * 13) % 40);
        if (b % 5 == 4) batch.push_back(batch.front());  // a duplicate now and then
        std::vector<std::string> ids;
        for (const Event& e : batch) ids.push_back(e.id());
        absl::StatusOr<std::vector<AppendResult>> results =
            AppendAndWait(log.get(), topic, std::move(batch));
        if (!results.ok()) return;  // the power is gone
        absl::MutexLock lock(&mu);
        for (size_t i = 0; i < ids.size(); ++i) {
          acked.push_back(Acked{topic, (*results)[i].offset, ids[i]});
        }
        ++acked_batches;
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](int* n) { return *n >= 150; }, &acked_batches),
                                    kWait));
  }
  // The power goes while the producers are still appending.
  env_.SetFilesystemActive(false);
  stop = true;
  for (std::thread& producer : producers) producer.join();
  log.reset();
  ASSERT_THAT(drop_mode == 0 ? env_.DropUnsyncedData()
                             : env_.DropRandomUnsyncedData(static_cast<uint32_t>(drop_mode)),
              IsOk());
  env_.SetFilesystemActive(true);

  log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  std::map<std::string, std::vector<Event>> stored;
  for (const std::string& topic : kTopics) stored[topic] = ReadTopic(*log, topic);
  absl::MutexLock lock(&mu);
  ASSERT_GE(acked.size(), 150u);
  for (const Acked& a : acked) {
    const std::vector<Event>& events = stored[a.topic];
    ASSERT_LT(a.offset, events.size()) << "lost acked " << a.id << " of " << a.topic;
    const Event& event = events[a.offset];
    ASSERT_EQ(event.id(), a.id);
    EXPECT_EQ(ProducerFields(event), ProducerFields(MakeEvent(a.id))) << a.id;
  }
  // The log goes on where the recovered data ends.
  for (const std::string& topic : kTopics) {
    const uint64_t end = log->DurableEnd(topic);
    EXPECT_THAT(AppendAndWait(log.get(), topic, MakeBatch(absl::StrCat("after-", topic), 2)),
                IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, end),
                                         Field(&AppendResult::offset, end + 1))));
  }
  EXPECT_THAT(log->Close(), IsOk());
}

INSTANTIATE_TEST_SUITE_P(DropModes, AckedEventsSurvivePowerCut, ::testing::Values(0, 1, 2, 3));

TEST_F(PowerCutTest, RetriedBatchAfterACutIsDedupedAgainstWhatSurvived) {
  auto log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("a", 10)), IsOk());
  PowerCut(&log, [&] { return env_.DropUnsyncedData(); });
  log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  // The producer never saw the ack (say) and sends the batch again.
  absl::StatusOr<std::vector<AppendResult>> retry =
      AppendAndWait(log.get(), "orders", MakeBatch("a", 10));
  ASSERT_THAT(retry, IsOkAndHolds(SizeIs(10)));
  EXPECT_THAT(*retry, Each(Field(&AppendResult::duplicate, true)));
  EXPECT_EQ(log->DurableEnd("orders"), 10u);
}

// Writes that landed only partly: every cut inside the last record.
TEST_F(PowerCutTest, TornRecordIsCutOnReopen) {
  const std::vector<uint64_t> keeps = {1, 4, 7, 8, 9, 12, 30, 60};
  for (uint64_t keep : keeps) {
    TempDir dir;
    FileEventLog::Options options = LogOptions();
    options.data_dir = dir.Join("data");
    auto log = Open(options);
    ASSERT_NE(log, nullptr);
    ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("synced", 5)), IsOk());
    const std::string segment = dir.Join("data/topics/orders/") + Segment::FileName(0);
    const uint64_t good = ScanSegmentFile(segment).records_end;  // without the reserved space
    // The next write reaches the page cache, and the power goes during its
    // fsync: not acked.
    env_.HoldSyncs(true);
    absl::Notification answered;
    log->Append("orders", MakeBatch("torn", 1),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  EXPECT_FALSE(r.ok());
                  answered.Notify();
                });
    ASSERT_TRUE(WaitFor([&] { return env_.held_syncs() == 1; }, kWait));
    const uint64_t unsynced = env_.UnsyncedBytes(segment);
    ASSERT_GT(unsynced, 60u);
    env_.SetFilesystemActive(false);
    env_.HoldSyncs(false);  // the fsync fails on the dead disk
    ASSERT_TRUE(answered.WaitForNotificationWithTimeout(kWait));
    log.reset();
    ASSERT_THAT(env_.DropUnsyncedDataKeeping(keep), IsOk());
    env_.SetFilesystemActive(true);
    // The file keeps its reserved space (zeros) after the kept bytes, so a
    // kept byte that is 0 is indistinguishable from it: the cut counts the
    // torn bytes up to the last non-zero one.
    const std::string contents = ScanSegmentFile(segment).contents;
    const uint64_t torn = std::max<uint64_t>(contents.find_last_not_of('\0') + 1, good) - good;

    ::testing::internal::CaptureStdout();
    log = Open(options);
    std::string err = ::testing::internal::GetCapturedStdout();
    ASSERT_NE(log, nullptr);
    EXPECT_THAT(err, HasSubstr(absl::StrCat("cut_bytes=", torn))) << keep;
    EXPECT_LE(torn, keep);
    // Cut back to the synced records, whatever the count says.
    EXPECT_THAT(Env::Default()->GetFileSize(segment), IsOkAndHolds(good)) << keep;
    EXPECT_EQ(log->DurableEnd("orders"), 5u) << keep;
    std::vector<Event> events = ReadTopic(*log, "orders");
    ASSERT_THAT(events, SizeIs(5));
    EXPECT_EQ(events[4].id(), "synced-4");
    EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("torn", 1)),
                IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 5u))));
    EXPECT_THAT(log->Close(), IsOk());
  }
}

TEST_F(PowerCutTest, FsyncErrorFailsTheBatchAndStopsTheLog) {
  auto log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  std::vector<std::string> heard;
  absl::Mutex mu;
  log->SetDurabilityListener([&](const std::string& topic, uint64_t end) {
    absl::MutexLock lock(&mu);
    heard.push_back(absl::StrCat(topic, ":", end));
  });
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("ok", 3)), IsOk());
  // A reader of the topic: its next commits go to the tail cache.
  ASSERT_THAT(log->ReadStored("orders", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(3)));
  env_.SetSyncError(absl::InternalError("EIO on fsync"));
  ::testing::internal::CaptureStdout();
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("lost", 2)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO on fsync")));
  std::string err = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(err, HasSubstr("ERROR"));
  env_.SetSyncError(absl::OkStatus());
  // Stopped for good, even though the disk looks fine again.
  EXPECT_THAT(AppendAndWait(log.get(), "payments", MakeBatch("later", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("storage failure")));
  // Nothing unsynced became visible.
  EXPECT_EQ(log->DurableEnd("orders"), 3u);
  EXPECT_THAT(log->Read("orders", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(3)));
  // Not from the tail cache either, which took the two events when they
  // were written, before the fsync failed.
  EXPECT_THAT(log->ReadStored("orders", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(3)));
  EXPECT_THAT(log->ReadStored("orders", 3, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
  {
    absl::MutexLock lock(&mu);
    EXPECT_THAT(heard, ElementsAre("orders:3"));  // never the failed end
  }
  EXPECT_THAT(log->Close(), StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO")));
}

// After a failed fsync the kernel may keep the unsynced pages in its cache,
// no longer dirty (here: the env still holds the bytes), and a later fsync
// of a new descriptor succeeds without writing them. A broker restarted
// without a reboot then recovered them, served them as durable and answered
// the publisher's retry as a duplicate: an ack for events a power cut
// would lose. The failed log cuts them off at once.
TEST_F(PowerCutTest, AfterAFailedFsyncARestartDoesNotTakeTheUnsyncedTailForDurable) {
  auto log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("ok", 3)), IsOk());
  env_.SetSyncError(absl::InternalError("EIO on fsync"));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("lost", 2)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO on fsync")));
  env_.SetSyncError(absl::OkStatus());
  EXPECT_THAT(log->Close(), StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO")));
  log.reset();

  log = Open(LogOptions());  // the process restarts; the machine did not
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->DurableEnd("orders"), 3u);
  // The publisher's retry is stored anew, not answered as a duplicate.
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("lost", 2)),
              IsOkAndHolds(ElementsAre(
                  AllOf(Field(&AppendResult::offset, 3u), Field(&AppendResult::duplicate, false)),
                  AllOf(Field(&AppendResult::offset, 4u),
                        Field(&AppendResult::duplicate, false)))));
  // And it is durable: a power cut now keeps all five.
  PowerCut(&log, [&] { return env_.DropUnsyncedData(); });
  log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(ReadTopic(*log, "orders").size(), 5u);
}

TEST_F(PowerCutTest, WriteErrorFailsTheBatchAndStopsTheLog) {
  auto log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  env_.SetWriteError(absl::ResourceExhaustedError("ENOSPC"));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("x", 2)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("ENOSPC")));
  env_.SetWriteError(absl::OkStatus());
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("y", 2)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ENOSPC")));
  EXPECT_EQ(log->DurableEnd("orders"), 0u);
  log.reset();
  // Reopening recovers a clean, usable log.
  log = Open(LogOptions());
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("y", 2)),
              IsOkAndHolds(
                  ElementsAre(Field(&AppendResult::offset, 0u), Field(&AppendResult::offset, 1u))));
}

TEST_F(PowerCutTest, WithoutFsyncAckedEventsCanBeLost) {
  auto log = Open(LogOptions(FsyncPolicy::kNone));
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("fast", 20)), IsOk());
  EXPECT_EQ(log->DurableEnd("orders"), 20u);  // acked and readable...
  PowerCut(&log, [&] { return env_.DropUnsyncedData(); });
  log = Open(LogOptions(FsyncPolicy::kNone));
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->DurableEnd("orders"), 0u);  // ...and gone: that is what kNone trades
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("fast", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0u))));
}

// The group commit: batches queued while the writer is busy share one write
// and one fsync per topic.
TEST_F(PowerCutTest, QueuedBatchesShareOneWriteAndOneFsyncPerTopic) {
  FileEventLog::Options options = LogOptions();
  options.segment_bytes = 1 << 20;  // no roll: a roll is a write and a sync more
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeBatch("warm", 1)), IsOk());
  ASSERT_THAT(AppendAndWait(log.get(), "payments", MakeBatch("warm", 1)), IsOk());

  // Hold the writer thread inside the first batch's fsync while the next
  // batches queue up.
  env_.HoldSyncs(true);
  // Released before the log closes (declared after it), also on failure.
  absl::Cleanup release_syncs = [this] { env_.HoldSyncs(false); };
  log->Append("orders", MakeBatch("first", 1),
              [&](absl::StatusOr<std::vector<AppendResult>> r) { EXPECT_THAT(r, IsOk()); });
  ASSERT_TRUE(WaitFor([&] { return env_.held_syncs() == 1; }));
  const int64_t writes = env_.writes();
  const int64_t syncs = env_.syncs();
  absl::Mutex mu;
  int answered = 0;
  for (int b = 0; b < 100; ++b) {
    log->Append(b % 2 == 0 ? "orders" : "payments", MakeBatch(absl::StrCat("b", b), 5),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  EXPECT_THAT(r, IsOk());
                  absl::MutexLock lock(&mu);
                  ++answered;
                });
  }
  env_.HoldSyncs(false);
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](int* n) { return *n == 100; }, &answered),
                                    kWait));
  }
  EXPECT_EQ(env_.writes() - writes, 2);  // one per topic
  EXPECT_EQ(env_.syncs() - syncs, 3);    // the first batch's, then one per topic
  EXPECT_EQ(log->DurableEnd("orders"), 252u);
  EXPECT_EQ(log->DurableEnd("payments"), 251u);
}

}  // namespace
}  // namespace relay::broker
