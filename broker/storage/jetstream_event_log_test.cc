#include "broker/storage/jetstream_event_log.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "broker/storage/jetstream_names.h"
#include "broker/storage/record.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::NatsServer;
using ::relay::testing::StatusIs;
using ::relay::testing::WaitFor;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(60);

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

// An Append whose answer can be waited for.
class PendingAppend {
 public:
  PendingAppend(EventLog* log, const std::string& topic, std::vector<Event> events,
                const std::shared_ptr<AppendOrigin>& origin = nullptr) {
    log->Append(
        topic, std::move(events),
        [this](absl::StatusOr<std::vector<AppendResult>> r) {
          out_ = std::move(r);
          done_.Notify();
        },
        origin);
  }
  absl::StatusOr<std::vector<AppendResult>> Wait() {
    if (!done_.WaitForNotificationWithTimeout(kWait)) return absl::DeadlineExceededError("no done");
    return out_;
  }

 private:
  absl::Notification done_;
  absl::StatusOr<std::vector<AppendResult>> out_ = absl::UnknownError("done never called");
};

absl::StatusOr<std::vector<AppendResult>> AppendAndWait(
    EventLog* log, const std::string& topic, std::vector<Event> events,
    const std::shared_ptr<AppendOrigin>& origin = nullptr) {
  return PendingAppend(log, topic, std::move(events), origin).Wait();
}

std::vector<uint64_t> Offsets(const std::vector<AppendResult>& results) {
  std::vector<uint64_t> offsets;
  for (const AppendResult& r : results) offsets.push_back(r.offset);
  return offsets;
}

std::vector<std::string> Ids(const std::vector<Event>& events) {
  std::vector<std::string> ids;
  for (const Event& e : events) ids.push_back(e.id());
  return ids;
}

// The stream of `topic`, made by hand before a log does (StreamByHand).
void MakeStreamByHand(const std::string& urls, const std::string& topic,
                      int32_t max_msg_size = -1) {
  ASSERT_THAT(testing::AddStream(urls, {StreamNameForTopic(topic), SubjectForTopic(topic),
                                        StreamDescriptionForTopic(topic), max_msg_size}),
              IsOk());
}

class JetStreamEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start();
    ASSERT_THAT(nats, IsOk());
    nats_ = *std::move(nats);
  }

  JetStreamEventLog::Options LogOptions() {
    JetStreamEventLog::Options options;
    options.servers = nats_->urls();
    options.request_timeout = absl::Seconds(5);
    options.reconnect_wait = absl::Milliseconds(100);
    return options;
  }

  std::unique_ptr<JetStreamEventLog> Open(const JetStreamEventLog::Options& options) {
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
    EXPECT_THAT(log, IsOk());
    return log.ok() ? *std::move(log) : nullptr;
  }
  std::unique_ptr<JetStreamEventLog> Open() { return Open(LogOptions()); }

  // Only JetStream's own byte limit (8000) deletes, never the log's pass.
  JetStreamEventLog::Options HardCapOptions() {
    JetStreamEventLog::Options options = LogOptions();
    options.retention_bytes = 0;
    options.hard_max_bytes = 8000;
    options.retention_check_interval = absl::ZeroDuration();
    return options;
  }

  std::unique_ptr<NatsServer> nats_;
};

TEST_F(JetStreamEventLogTest, AppendThenReadRoundTripsWithOffsetsFromZero) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  const absl::Time before = absl::Now();
  std::vector<Event> sent = MakeEvents("a", 3);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", sent), IsOkAndHolds(SizeIs(3)));
  ASSERT_THAT(
      AppendAndWait(log.get(), "payments", MakeEvents("p", 2)),
      IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0), Field(&AppendResult::offset, 1))));

  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOkAndHolds(SizeIs(3)));
  for (size_t i = 0; i < 3; ++i) {
    const Event& e = (*read)[i];
    EXPECT_EQ(e.offset(), i);
    EXPECT_EQ(e.topic(), "orders");
    EXPECT_GE(PublishTime(e), before - absl::Seconds(1));
    EXPECT_LE(PublishTime(e), absl::Now() + absl::Seconds(1));
    Event expected = sent[i];
    expected.set_topic("orders");
    expected.set_offset(i);
    *expected.mutable_publish_time() = e.publish_time();
    EXPECT_EQ(e.SerializeAsString(), expected.SerializeAsString()) << i;
  }
  EXPECT_THAT(log->Read("orders", 2, 100, 1 << 20), IsOkAndHolds(SizeIs(1)));
  EXPECT_THAT(log->Read("orders", 3, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
  EXPECT_THAT(log->Read("unknown", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(0)));
}

TEST_F(JetStreamEventLogTest, BatchesKeepTheirOrderAcrossTopicsBeyondTheInFlightWindow) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  // Batches queued at once on two topics, more events than may await their
  // ack together: each topic's offsets follow the order of its batches and
  // of the events within each.
  constexpr int kBatches = 6;
  constexpr size_t kEvents = 2000;
  static_assert(kBatches * kEvents > JetStreamEventLog::kMaxInFlight);
  const std::string topics[] = {"orders", "payments"};
  std::vector<std::string> expected[2];
  std::vector<absl::Notification> done(kBatches);
  std::vector<absl::StatusOr<std::vector<AppendResult>>> results(kBatches);
  for (int b = 0; b < kBatches; ++b) {
    std::vector<Event> events = MakeEvents(absl::StrCat("b", b), static_cast<int>(kEvents));
    for (const std::string& id : Ids(events)) expected[b % 2].push_back(id);
    log->Append(topics[b % 2], std::move(events),
                [&, b](absl::StatusOr<std::vector<AppendResult>> r) {
                  results[b] = std::move(r);
                  done[b].Notify();
                });
  }
  for (int b = 0; b < kBatches; ++b) {
    ASSERT_TRUE(done[b].WaitForNotificationWithTimeout(kWait));
    ASSERT_THAT(results[b], IsOk());
    for (size_t i = 0; i < kEvents; ++i) {
      ASSERT_EQ((*results[b])[i].offset, (b / 2) * kEvents + i) << "batch " << b;
      ASSERT_FALSE((*results[b])[i].duplicate);
    }
  }
  for (int t = 0; t < 2; ++t) {
    EXPECT_EQ(log->DurableEnd(topics[t]), expected[t].size());
    absl::StatusOr<std::vector<Event>> read = log->Read(topics[t], 0, 100000, 1 << 26);
    ASSERT_THAT(read, IsOk());
    EXPECT_EQ(Ids(*read), expected[t]) << topics[t];
  }
}

TEST_F(JetStreamEventLogTest, ASilentServerFailsTheBatchInTimeAndTheLogRecovers) {
  JetStreamEventLog::Options options = LogOptions();
  options.request_timeout = absl::Seconds(1);
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 2)), IsOk());

  // The server takes the publishes into its socket and answers none.
  nats_->Pause(0);
  std::vector<Event> events = MakeEvents("s", 3);
  absl::StatusOr<std::vector<AppendResult>> r = AppendAndWait(log.get(), "orders", events);
  nats_->Resume(0);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable,
                          HasSubstr("publish to topic orders failed at event 0 of 3")));

  // Once it answers again, the same events go in (once, whatever the
  // server had taken while silent) and new ones after them.
  ASSERT_TRUE(WaitFor([&] { return AppendAndWait(log.get(), "orders", events).ok(); }, kWait));
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("n", 1)), IsOk());
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("a-0", "a-1", "s-0", "s-1", "s-2", "n-0"));
}

TEST_F(JetStreamEventLogTest, DuplicateIdsGetTheOriginalOffsetAndStoreNothing) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> first = MakeEvents("d", 4);
  first.insert(first.begin() + 3, first[1]);  // a repeat within the batch, then a new event
  absl::StatusOr<std::vector<AppendResult>> r = AppendAndWait(log.get(), "orders", first);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Offsets(*r), ElementsAre(0, 1, 2, 1, 3));
  EXPECT_FALSE((*r)[0].duplicate);
  EXPECT_TRUE((*r)[3].duplicate);
  EXPECT_FALSE((*r)[4].duplicate);

  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("other", 2)), IsOk());
  // A later batch repeating old ids: JetStream answers with the original
  // sequence, so the original offset comes back.
  std::vector<Event> again = MakeEvents("d", 3);
  again.erase(again.begin());
  r = AppendAndWait(log.get(), "orders", again);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Offsets(*r), ElementsAre(1, 2));
  EXPECT_TRUE((*r)[0].duplicate);
  EXPECT_TRUE((*r)[1].duplicate);

  EXPECT_EQ(log->DurableEnd("orders"), 6u);
  EXPECT_THAT(log->Read("orders", 0, 100, 1 << 20), IsOkAndHolds(SizeIs(6)));
  std::vector<TopicStats> topics = log->ListTopics();
  ASSERT_THAT(topics, SizeIs(1));
  EXPECT_EQ(topics[0].events, 6u);
}

// A retry of events the stream already holds, which this log never saw
// acked (another broker stored them, or their acks were lost): the
// duplicates tell the log where the stream ends, and readers see them.
TEST_F(JetStreamEventLogTest, DuplicatesPastTheKnownEndMoveTheDurableEnd) {
  auto other = Open();
  auto log = Open();
  ASSERT_NE(other, nullptr);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 1)), IsOk());
  ASSERT_EQ(log->DurableEnd("orders"), 1u);
  std::vector<Event> events = MakeEvents("b", 3);
  ASSERT_THAT(AppendAndWait(other.get(), "orders", events), IsOk());
  EXPECT_EQ(log->DurableEnd("orders"), 1u);  // nothing told it yet

  absl::Mutex mu;
  std::vector<uint64_t> ends;
  log->SetDurabilityListener([&](const std::string&, uint64_t end) {
    absl::MutexLock lock(&mu);
    ends.push_back(end);
  });
  EXPECT_THAT(AppendAndWait(log.get(), "orders", events),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, true),
                                       Field(&AppendResult::duplicate, true),
                                       Field(&AppendResult::duplicate, true))));
  EXPECT_EQ(log->DurableEnd("orders"), 4u);
  // The groups are woken to read them; the listener runs right after the
  // append's callback, on the log's thread.
  EXPECT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mu);
    return !ends.empty();
  }));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(ends, ElementsAre(4u));
}

// A retry whose first events the stream already holds, which this log
// never saw stored (another broker stored them, or a try whose answers were
// lost). Duplicates do not move the stream's end. Right after the log read
// where the stream ends (here: its first append; a broker that took over,
// or after a failure) it sends one publish at a time until one is stored,
// so it learns the duplicates one by one and the batch goes in at once.
// Into a running chain, the duplicates break it, the first try fails, and
// the second answers them from what the first learned.
TEST_F(JetStreamEventLogTest, ARetryBehindDuplicatesTheLogNeverSawGoesInAtTheSecondTryAtMost) {
  auto other = Open();
  auto log = Open();
  ASSERT_NE(other, nullptr);
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("x", 3);
  ASSERT_THAT(AppendAndWait(other.get(), "orders", {events[0], events[1]}), IsOk());
  absl::StatusOr<std::vector<AppendResult>> r = AppendAndWait(log.get(), "orders", events);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Offsets(*r), ElementsAre(0, 1, 2));
  EXPECT_TRUE((*r)[0].duplicate);
  EXPECT_TRUE((*r)[1].duplicate);
  EXPECT_FALSE((*r)[2].duplicate);

  // A third broker: `other` would first fail on the end it knows.
  auto third = Open();
  ASSERT_NE(third, nullptr);
  events = MakeEvents("y", 3);
  ASSERT_THAT(AppendAndWait(third.get(), "orders", {events[0], events[1]}), IsOk());
  ASSERT_THAT(AppendAndWait(third.get(), "orders", MakeEvents("z", 1)), IsOk());
  EXPECT_THAT(AppendAndWait(log.get(), "orders", events),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("failed at event 2 of 3")));
  r = AppendAndWait(log.get(), "orders", events);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Offsets(*r), ElementsAre(3, 4, 6));
  EXPECT_TRUE((*r)[0].duplicate);
  EXPECT_TRUE((*r)[1].duplicate);
  EXPECT_FALSE((*r)[2].duplicate);
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("x-0", "x-1", "x-2", "y-0", "y-1", "z-0", "y-2"));
}

// The stream deleted and made again by someone else while the log runs:
// the next publish finds the stream's end before events it acknowledged,
// and the ids it remembers of the old stream are not answered from any
// more (they would be "duplicates" of events the new stream does not hold).
TEST_F(JetStreamEventLogTest, AStreamMadeAgainByAnotherHandForgetsTheOldOnesIds) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("a", 2);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", events), IsOk());
  ASSERT_THAT(testing::DeleteStream(nats_->urls(), StreamNameForTopic("orders")), IsOk());
  MakeStreamByHand(nats_->urls(), "orders");

  // It expected the old end.
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("wrong last sequence")));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0))));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", {events[0]}),
              IsOkAndHolds(ElementsAre(
                  AllOf(Field(&AppendResult::offset, 1), Field(&AppendResult::duplicate, false)))));
  EXPECT_EQ(log->DurableEnd("orders"), 2u);
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("b-0", "a-0"));
}

// A stream deleted by hand before the log first publishes to it (the log
// loaded it when it opened): the read of where it ends finds none, and the
// next append makes it anew.
TEST_F(JetStreamEventLogTest, AStreamDeletedBeforeTheFirstPublishIsMadeAgain) {
  {
    auto first = Open();
    ASSERT_NE(first, nullptr);
    ASSERT_THAT(AppendAndWait(first.get(), "orders", MakeEvents("a", 2)), IsOk());
  }
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(testing::DeleteStream(nats_->urls(), StreamNameForTopic("orders")), IsOk());

  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot read where the stream")));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0))));
}

// An event the stream refuses while the later events of its batch are
// already on their way (here: over the stream's max_msg_size, set by hand;
// a leader election can fail any event alone): nothing after it is stored,
// so that no retry can store it after an event that followed it
// (docs/JETSTREAM.md#order).
TEST_F(JetStreamEventLogTest, NothingAfterAnEventTheStreamRefusedIsStored) {
  MakeStreamByHand(nats_->urls(), "orders", /*max_msg_size=*/1024);
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("e", 4);
  events[1].set_data(std::string(2000, 'x'));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", events),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("failed at event 1 of 4")));
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("e-0"));  // e-2 and e-3 were stored too before
  EXPECT_EQ(log->DurableEnd("orders"), 1u);

  // Again without the event the stream cannot take: what got in is a
  // duplicate, and the rest follows it.
  events.erase(events.begin() + 1);
  absl::StatusOr<std::vector<AppendResult>> r = AppendAndWait(log.get(), "orders", events);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Offsets(*r), ElementsAre(0, 1, 2));
  EXPECT_TRUE((*r)[0].duplicate);
  EXPECT_FALSE((*r)[1].duplicate);
  read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("e-0", "e-2", "e-3"));
}

// The batches of one publish stream (an AppendOrigin) after one that
// failed are not stored, whether they were sent before the failure was
// known or appended after it: the client sends them again after it, in
// order, on a new stream.
TEST_F(JetStreamEventLogTest, AfterABatchOfAnOriginFailsItsLaterBatchesAreNotStored) {
  MakeStreamByHand(nats_->urls(), "orders", /*max_msg_size=*/1024);
  auto log = Open();
  ASSERT_NE(log, nullptr);
  auto origin = std::make_shared<AppendOrigin>();
  std::vector<Event> first = MakeEvents("f", 2);
  first[1].set_data(std::string(2000, 'x'));
  std::vector<Event> second = MakeEvents("g", 2);
  PendingAppend a(log.get(), "orders", first, origin);
  PendingAppend b(log.get(), "orders", second, origin);
  EXPECT_THAT(a.Wait(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("failed at event 1")));
  // Refused before it was sent, or sent and refused behind the failed one.
  EXPECT_THAT(b.Wait(),
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AnyOf(HasSubstr("an earlier batch of this publish stream"),
                                        HasSubstr("publish to topic orders failed at event 0"))));
  EXPECT_TRUE(origin->failed());
  // Appended after the failure: refused, though the topic takes batches
  // again.
  EXPECT_THAT(AppendAndWait(log.get(), "orders", second, origin),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("an earlier batch of this publish stream was not stored")));
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("f-0"));

  auto again = std::make_shared<AppendOrigin>();
  first.pop_back();  // the event the stream cannot take
  ASSERT_THAT(AppendAndWait(log.get(), "orders", first, again), IsOk());
  ASSERT_THAT(AppendAndWait(log.get(), "orders", second, again), IsOk());
  read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Ids(*read), ElementsAre("f-0", "g-0", "g-1"));
}

TEST_F(JetStreamEventLogTest, EventsWithoutIdAreNeverDuplicates) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("n", 2);
  for (Event& e : events) e.clear_id();
  EXPECT_THAT(AppendAndWait(log.get(), "orders", events),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::duplicate, false),
                                       Field(&AppendResult::duplicate, false))));
  EXPECT_EQ(log->DurableEnd("orders"), 2u);
}

TEST_F(JetStreamEventLogTest, DurableEndFirstOffsetAndTheListenerFollowTheAcks) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  absl::Mutex mu;
  std::vector<uint64_t> ends;
  log->SetDurabilityListener([&](const std::string& topic, uint64_t end) {
    absl::MutexLock lock(&mu);
    if (topic == "orders") ends.push_back(end);
  });
  EXPECT_EQ(log->DurableEnd("orders"), 0u);
  EXPECT_EQ(log->FirstOffset("orders"), 0u);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 3)), IsOk());
  EXPECT_EQ(log->DurableEnd("orders"), 3u);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 2)), IsOk());
  EXPECT_EQ(log->DurableEnd("orders"), 5u);
  EXPECT_EQ(log->FirstOffset("orders"), 0u);
  // A batch of duplicates only stores nothing and notifies nothing.
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 2)), IsOk());
  absl::MutexLock lock(&mu);
  EXPECT_THAT(ends, ElementsAre(3, 5));
}

TEST_F(JetStreamEventLogTest, ReadHonoursMaxEventsAndMaxBytes) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 10, 1000)), IsOk());
  EXPECT_THAT(log->Read("orders", 0, 4, 1 << 20), IsOkAndHolds(SizeIs(4)));
  EXPECT_THAT(log->Read("orders", 0, 0, 1 << 20), IsOkAndHolds(SizeIs(0)));
  // Each event is a bit over 1000 bytes: 3500 bytes hold three.
  EXPECT_THAT(log->Read("orders", 0, 100, 3500), IsOkAndHolds(SizeIs(3)));
  // At least one event, however small max_bytes.
  absl::StatusOr<std::vector<Event>> one = log->Read("orders", 7, 100, 1);
  ASSERT_THAT(one, IsOkAndHolds(SizeIs(1)));
  EXPECT_EQ((*one)[0].offset(), 7u);
}

// A publish that no stream answers (no leader for a moment, or the stream
// deleted by hand) does not make the log forget where the topic's events
// are; the next append checks the stream, and a stream that is really gone
// is created anew, its offsets starting over (loudly).
TEST_F(JetStreamEventLogTest, APublishNoStreamAnswersKeepsTheOffsetsUntilTheStreamIsChecked) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 3)), IsOk());
  EXPECT_EQ(log->DurableEnd("orders"), 3u);

  ASSERT_THAT(testing::DeleteStream(nats_->urls(), StreamNameForTopic("orders")), IsOk());

  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("publish to topic orders")));
  // It forgot them before: groups then saw the end fall to 0.
  EXPECT_EQ(log->DurableEnd("orders"), 3u);
  EXPECT_EQ(log->FirstOffset("orders"), 0u);

  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("c", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0))));
  EXPECT_EQ(log->DurableEnd("orders"), 1u);
  EXPECT_EQ(log->FirstOffset("orders"), 0u);
}

// Publishes that no stream answers (here: the topic's stream listens on
// another subject, as in a leader election) while more of the topic's are
// in flight: a failed batch completed while later batches' answers were
// still coming reset the topic's count of unanswered publishes to zero, the
// later answers counted it below zero, and the topic refused every batch
// after for good ("18446744073709551615 publishes to topic orders are not
// answered yet"). Here the answers' burst is mostly taken before the first
// batch completes, so this shows the topic usable after such failures more
// often than it catches that interleaving.
TEST_F(JetStreamEventLogTest, AnswersFromNoStreamWhileManyAreInFlightLeaveTheTopicUsable) {
  // Before the log: its Close() answers what is still queued, into these.
  std::vector<std::unique_ptr<PendingAppend>> pending;
  auto log = Open();
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 1)), IsOk());
  const std::string stream = StreamNameForTopic("orders");
  ASSERT_THAT(testing::SetStreamSubject(nats_->urls(), stream, "elsewhere"), IsOk());
  // The server holds its answers until every batch is sent: they then come
  // in one burst, the later batches' while the first failed one completes.
  nats_->Pause(0);
  for (int i = 0; i < 4; ++i) {
    pending.push_back(std::make_unique<PendingAppend>(log.get(), "orders",
                                                      MakeEvents(absl::StrCat("b", i), 2000, 16)));
  }
  const bool all_sent =
      WaitFor([&] { return log->publishes_in_flight() == 8000; }, absl::Seconds(3));
  nats_->Resume(0);
  ASSERT_TRUE(all_sent) << log->publishes_in_flight();
  for (auto& p : pending) EXPECT_FALSE(p->Wait().ok());
  ASSERT_THAT(testing::SetStreamSubject(nats_->urls(), stream, SubjectForTopic("orders")), IsOk());

  absl::StatusOr<std::vector<AppendResult>> later = absl::UnknownError("not tried");
  EXPECT_TRUE(WaitFor(
      [&] {
        later = AppendAndWait(log.get(), "orders", MakeEvents("c", 1));
        return later.ok();
      },
      absl::Seconds(15)))
      << later.status();
  EXPECT_THAT(later.status().message(), ::testing::Not(HasSubstr("18446744073709551615")));
}

// A stream made without allow_direct (as brokers before direct gets made
// them) is read from its leader, event by event, with the same answers.
TEST_F(JetStreamEventLogTest, StreamsWithoutDirectGetsReadTheSame) {
  MakeStreamByHand(nats_->urls(), "orders");
  auto log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("o", 30);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", events), IsOk());
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 1000, 1 << 20);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(Ids(*read), Ids(events));
  read = log->Read("orders", 10, 5, 1 << 20);
  ASSERT_THAT(read, IsOk());
  ASSERT_THAT(*read, SizeIs(5));
  EXPECT_EQ((*read)[0].offset(), 10u);
  EXPECT_EQ((*read)[0].id(), "o-10");
  EXPECT_GT(PublishTime((*read)[0]), absl::Now() - absl::Minutes(1));
}

TEST_F(JetStreamEventLogTest, ListTopicsDecodesNamesIncludingDeadLetterAndLongestTopics) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  const std::string longest = std::string(251, 'x') + ".dlq";  // 255 characters
  const std::string longest_peer = std::string(250, 'x') + "y.dlq";
  ASSERT_EQ(longest.size(), 255u);
  for (const std::string& topic : {std::string("orders"), std::string("orders.dlq"),
                                   std::string("orders-dlq"), longest, longest_peer}) {
    ASSERT_THAT(AppendAndWait(log.get(), topic, MakeEvents(topic.substr(0, 8), 2)), IsOk())
        << topic;
  }
  ASSERT_THAT(AppendAndWait(log.get(), "orders.dlq", MakeEvents("more", 1)), IsOk());
  std::vector<TopicStats> topics = log->ListTopics();
  ASSERT_THAT(topics, SizeIs(5));
  EXPECT_EQ(topics[0].name, "orders");
  EXPECT_EQ(topics[1].name, "orders-dlq");
  EXPECT_EQ(topics[2].name, "orders.dlq");
  EXPECT_EQ(topics[3].name, longest);
  EXPECT_EQ(topics[4].name, longest_peer);
  EXPECT_EQ(topics[2].events, 3u);
  EXPECT_EQ(topics[2].first_offset, 0u);
  EXPECT_EQ(topics[2].end_offset, 3u);
  EXPECT_GT(topics[2].bytes, 0u);
  EXPECT_LE(topics[2].first_time, topics[2].last_time);
  EXPECT_NE(topics[2].first_time, absl::InfinitePast());
  absl::StatusOr<std::vector<Event>> read = log->Read(longest, 0, 10, 1 << 20);
  ASSERT_THAT(read, IsOkAndHolds(SizeIs(2)));
  EXPECT_EQ((*read)[0].topic(), longest);
}

TEST_F(JetStreamEventLogTest, OffsetForTimeFindsTheFirstEventAtOrAfter) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->OffsetForTime("orders", absl::Now()), 0u);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 5)), IsOk());
  // JetStream stamps each message when it stores it, on this machine's
  // clock: everything acked before `middle` is older than it.
  const absl::Time middle = absl::Now();
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 4)), IsOk());
  EXPECT_EQ(log->OffsetForTime("orders", absl::InfinitePast()), 0u);
  EXPECT_EQ(log->OffsetForTime("orders", middle), 5u);
  EXPECT_EQ(log->OffsetForTime("orders", absl::InfiniteFuture()), 9u);
}

// A clock the test moves; the retention pass reads it.
class FakeClock {
 public:
  void Set(absl::Time t) { nanos_.store(absl::ToUnixNanos(t)); }
  std::function<absl::Time()> Function() {
    return [this] { return absl::FromUnixNanos(nanos_.load()); };
  }

 private:
  std::atomic<int64_t> nanos_{absl::ToUnixNanos(absl::Now())};
};

TopicStats Stats(const JetStreamEventLog& log, const std::string& topic) {
  for (TopicStats& t : log.ListTopics()) {
    if (t.name == topic) return t;
  }
  return TopicStats();
}

TEST_F(JetStreamEventLogTest, RetentionPurgesOldEventsBelowTheFloorOnly) {
  FakeClock clock;
  JetStreamEventLog::Options options = LogOptions();
  options.retention_age = absl::Hours(1);
  options.retention_check_interval = absl::ZeroDuration();  // passes run by hand
  options.clock = clock.Function();
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("old", 10)), IsOk());
  ASSERT_THAT(AppendAndWait(log.get(), "nogroup", MakeEvents("old", 4)), IsOk());
  // JetStream stamps each message when it stores it: everything acked
  // before `middle` is older than it, everything after is not.
  const absl::Time middle = absl::Now();
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("new", 5)), IsOk());
  clock.Set(middle + absl::Hours(1));  // offsets 0..9 are past retention_age

  // A group needs offset 6 on: 0..5 go, 6..9 stay although old.
  log->SetRetentionFloor("orders", 6);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  EXPECT_EQ(log->FirstOffset("orders"), 6u);
  EXPECT_EQ(log->DurableEnd("orders"), 15u);
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOkAndHolds(SizeIs(9)));
  EXPECT_EQ(read->front().offset(), 6u);
  EXPECT_EQ(read->front().id(), "old-6");
  // A topic no group reads has no floor: its old events all go.
  EXPECT_EQ(log->FirstOffset("nogroup"), 4u);
  EXPECT_EQ(Stats(*log, "nogroup").events, 0u);

  // The floor moves past everything: only the old events go.
  log->SetRetentionFloor("orders", 15);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  EXPECT_EQ(log->FirstOffset("orders"), 10u);
  const TopicStats stats = Stats(*log, "orders");
  EXPECT_EQ(stats.first_offset, 10u);
  EXPECT_EQ(stats.events, 5u);
  EXPECT_EQ(stats.forced_deleted_events, 0u);
  // Appends go on at the same offsets.
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("after", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 15))));
}

TEST_F(JetStreamEventLogTest, RetentionBySizeStopsAtTheFloor) {
  JetStreamEventLog::Options options = LogOptions();
  options.retention_age = absl::ZeroDuration();
  options.retention_bytes = 5000;
  options.retention_check_interval = absl::ZeroDuration();
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 20, 1000)), IsOk());
  log->SetRetentionFloor("orders", 5);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  EXPECT_EQ(log->FirstOffset("orders"), 5u);
  log->SetRetentionFloor("orders", 20);
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  const TopicStats stats = Stats(*log, "orders");
  EXPECT_LE(stats.bytes, 5000u);
  EXPECT_GE(stats.events, 3u);  // each event is a bit over 1000 bytes
  EXPECT_EQ(stats.end_offset, 20u);
}

TEST_F(JetStreamEventLogTest, EventsTheHardCapDeletesAboveTheFloorAreCounted) {
  auto log = Open(HardCapOptions());
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 2, 1000)), IsOk());
  log->SetRetentionFloor("orders", 0);  // a group still needs everything
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  EXPECT_EQ(log->FirstOffset("orders"), 0u);
  // JetStream's max_bytes discards the oldest, floor or not.
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("b", 20, 1000)), IsOk());
  ASSERT_THAT(log->RunRetentionOnce(), IsOk());
  const TopicStats stats = Stats(*log, "orders");
  EXPECT_GT(stats.first_offset, 0u);
  EXPECT_EQ(stats.forced_deleted_events, stats.first_offset);
}

// The limits delete from the front without telling the log: a read from
// an offset they removed starts at the oldest event left, not empty.
TEST_F(JetStreamEventLogTest, ReadsSkipWhatTheLimitsDeletedUnseen) {
  auto log = Open(HardCapOptions());
  ASSERT_NE(log, nullptr);
  std::vector<Event> events = MakeEvents("a", 20, 1000);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", events), IsOk());
  EXPECT_EQ(log->FirstOffset("orders"), 0u);  // what the acks told, not the truth
  absl::StatusOr<std::vector<Event>> read = log->Read("orders", 0, 100, 1 << 20);
  ASSERT_THAT(read, IsOk());
  ASSERT_FALSE(read->empty());
  EXPECT_GT(read->front().offset(), 0u);
  EXPECT_EQ(read->back().offset(), 19u);
  EXPECT_EQ(read->front().id(), events[read->front().offset()].id());
  EXPECT_EQ(log->FirstOffset("orders"), read->front().offset());  // refreshed on the way
}

TEST_F(JetStreamEventLogTest, RetentionPassRunsInTheBackground) {
  FakeClock clock;
  JetStreamEventLog::Options options = LogOptions();
  options.retention_age = absl::Hours(1);
  options.retention_check_interval = absl::Milliseconds(20);
  options.clock = clock.Function();
  auto log = Open(options);
  ASSERT_NE(log, nullptr);
  ASSERT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 10)), IsOk());
  log->SetRetentionFloor("orders", 7);
  clock.Set(absl::Now() + absl::Hours(2));
  EXPECT_TRUE(WaitFor([&] { return Stats(*log, "orders").first_offset == 7; }, kWait));
  EXPECT_THAT(log->Close(), IsOk());
  // Read needs the connection, which Close() closed (FileEventLog's reads go on).
  EXPECT_THAT(log->Read("orders", 0, 10, 1 << 20),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST_F(JetStreamEventLogTest, CloseCompletesQueuedAppendsThenRefusesNewOnes) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  absl::Mutex mu;
  int ok = 0;
  int answered = 0;
  for (int b = 0; b < 20; ++b) {
    log->Append("orders", MakeEvents(absl::StrCat("b", b), 5),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  absl::MutexLock lock(&mu);
                  ++answered;
                  if (r.ok()) ++ok;
                });
  }
  ASSERT_THAT(log->Close(), IsOk());
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answered, 20);
    EXPECT_EQ(ok, 20);
  }
  EXPECT_EQ(log->DurableEnd("orders"), 100u);
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("late", 1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
  EXPECT_THAT(log->Close(), IsOk());  // idempotent

  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->DurableEnd("orders"), 100u);  // loaded from the stream on Open
  EXPECT_THAT(reopened->Read("orders", 0, 1000, 1 << 24), IsOkAndHolds(SizeIs(100)));
}

TEST_F(JetStreamEventLogTest, BadBatchesFailAloneAndChangeNothing) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(AppendAndWait(log.get(), "Orders", MakeEvents("a", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("topic name")));
  // nats-server's default max_payload is 1 MiB.
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("big", 2, 2 << 20)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_payload")));
  EXPECT_THAT(AppendAndWait(log.get(), "orders", MakeEvents("a", 1)),
              IsOkAndHolds(ElementsAre(Field(&AppendResult::offset, 0))));
}

TEST_F(JetStreamEventLogTest, BadOptionsAreRefused) {
  JetStreamEventLog::Options options = LogOptions();
  options.replicas = 0;
  EXPECT_THAT(JetStreamEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("replicas")));
  options = LogOptions();
  options.servers = " ";
  EXPECT_THAT(JetStreamEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("URL")));
  options = LogOptions();
  options.max_age = absl::Hours(1);
  EXPECT_THAT(JetStreamEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_age")));
  options = LogOptions();
  options.hard_max_bytes = 1000;
  options.retention_bytes = 1001;
  EXPECT_THAT(JetStreamEventLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("retention_bytes")));
}

TEST(JetStreamEventLogOpen, UnreachableServerFailsQuicklyWithAClearMessage) {
  const int port = relay::testing::PickFreePort();  // nobody listens there
  JetStreamEventLog::Options options;
  options.servers = absl::StrCat("nats://127.0.0.1:", port);
  options.connect_timeout = absl::Seconds(2);
  const absl::Time start = absl::Now();
  EXPECT_THAT(JetStreamEventLog::Open(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("cannot reach NATS at nats://127.0.0.1:", port))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// A log on every node of `nats`, its streams with three replicas.
JetStreamEventLog::Options ClusterOptions(const NatsServer& nats) {
  JetStreamEventLog::Options options;
  options.servers = nats.urls();
  options.replicas = 3;
  options.request_timeout = absl::Seconds(2);
  options.reconnect_wait = absl::Milliseconds(100);
  return options;
}

// A 3-node cluster, replicas=3: a node killed with SIGKILL while appends
// run loses no acknowledged event. The appender tries each batch again until
// it is stored, as a publisher does: the stream then holds every batch's
// events once each, in the order appended, however the leader's death cut
// a batch (docs/JETSTREAM.md#order).
TEST(JetStreamClusterTest, EveryAcknowledgedEventSurvivesAKilledNode) {
  absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start(3);
  ASSERT_THAT(nats, IsOk());
  JetStreamEventLog::Options options = ClusterOptions(**nats);
  absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
  ASSERT_THAT(log, IsOk());

  absl::Mutex mu;
  std::map<uint64_t, std::string> acked;  // offset -> id
  int failed_batches = 0;
  int stored_batches = 0;
  std::atomic<bool> stop{false};
  std::thread appender([&] {
    for (int b = 0; !stop.load(); ++b) {
      std::vector<Event> events = MakeEvents(absl::StrCat("c", b), 5);
      const absl::Time give_up = absl::Now() + kWait;
      absl::StatusOr<std::vector<AppendResult>> r = AppendAndWait(log->get(), "orders", events);
      while (!r.ok() && absl::Now() < give_up) {
        {
          absl::MutexLock lock(&mu);
          ++failed_batches;
        }
        absl::SleepFor(absl::Milliseconds(50));  // a publisher's back-off, not a wait for a result
        r = AppendAndWait(log->get(), "orders", events);
      }
      absl::MutexLock lock(&mu);
      if (!r.ok()) return;  // the order check below names it
      ++stored_batches;
      for (size_t i = 0; i < r->size(); ++i) {
        if (!(*r)[i].duplicate) acked[(*r)[i].offset] = events[i].id();
      }
    }
  });
  auto acked_count = [&] {
    absl::MutexLock lock(&mu);
    return acked.size();
  };
  ASSERT_TRUE(WaitFor([&] { return acked_count() >= 50; }, kWait));
  // Kill the stream's leader: the worst node to lose mid-append.
  absl::StatusOr<int> leader = (*nats)->StreamLeader(StreamNameForTopic("orders"));
  ASSERT_THAT(leader, IsOk());
  const int victim = *leader;
  (*nats)->Kill(victim);
  const size_t at_kill = acked_count();
  // The two others keep a quorum: appends go on after a leader election.
  EXPECT_TRUE(WaitFor([&] { return acked_count() >= at_kill + 50; }, kWait));
  stop = true;
  appender.join();

  auto expect_all_readable = [&](JetStreamEventLog* reader) {
    // A leader elected a moment ago may answer before it has applied every
    // committed entry (a read then stops early, or fails): wait, with a
    // deadline, until a read holds every acknowledged offset. A real loss
    // still fails below.
    std::map<uint64_t, std::string> stored;
    auto read_all = [&] {
      absl::StatusOr<std::vector<Event>> read = reader->Read("orders", 0, 100000, 1 << 30);
      if (!read.ok()) return false;
      stored.clear();
      for (const Event& e : *read) stored[e.offset()] = e.id();
      absl::MutexLock lock(&mu);
      for (const auto& [offset, id] : acked) {
        if (stored.count(offset) == 0) return false;
      }
      return true;
    };
    (void)WaitFor(read_all, kWait);  // the checks below say what is missing
    absl::MutexLock lock(&mu);
    for (const auto& [offset, id] : acked) {
      auto it = stored.find(offset);
      ASSERT_NE(it, stored.end()) << "acknowledged offset " << offset << " is gone";
      EXPECT_EQ(it->second, id) << offset;
    }
  };
  expect_all_readable(log->get());

  // Batches c0, c1, ... each whole, in order, each event once.
  absl::StatusOr<std::vector<Event>> read = log->get()->Read("orders", 0, 100000, 1 << 30);
  ASSERT_THAT(read, IsOk());
  std::vector<std::string> expected;
  {
    absl::MutexLock lock(&mu);
    for (int b = 0; b < stored_batches; ++b) {
      for (const Event& e : MakeEvents(absl::StrCat("c", b), 5)) expected.push_back(e.id());
    }
  }
  std::vector<std::string> ids = Ids(*read);
  ASSERT_GE(ids.size(), expected.size());
  ids.resize(expected.size());  // a batch in flight at the stop may follow
  EXPECT_EQ(ids, expected);

  ASSERT_THAT((*nats)->Restart(victim), IsOk());
  JetStreamEventLog::Options restarted = options;
  restarted.servers = (*nats)->url(victim);  // ask through the node that was down
  absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log2 = JetStreamEventLog::Open(restarted);
  ASSERT_THAT(log2, IsOk());
  expect_all_readable(log2->get());
  {
    absl::MutexLock lock(&mu);
    ::testing::Test::RecordProperty("failed_batches", failed_batches);
    ::testing::Test::RecordProperty("acked_events", static_cast<int>(acked.size()));
  }
}

// The stream's leader killed while many batches are in flight: publishes
// answered "no responders" during the election must not make the log forget
// where the topic's events are. It did: an ack arriving after that rebuilt
// the state from its own offsets, FirstOffset() jumped past events nobody
// had deleted (groups skip those as deleted by retention) and DurableEnd()
// fell to 0 for a moment.
TEST(JetStreamClusterTest, ALeaderElectionNeverMovesTheFirstOffsetNorTheEndBack) {
  absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start(3);
  ASSERT_THAT(nats, IsOk());
  JetStreamEventLog::Options options = ClusterOptions(**nats);
  options.retention_check_interval = absl::ZeroDuration();  // nothing is deleted
  // Before the log: its callbacks use them until it is gone.
  absl::Mutex mu;
  uint64_t highest_end = 0;
  uint64_t highest_first = 0;
  uint64_t end_went_back_to = UINT64_MAX;
  std::atomic<bool> stop{false};
  std::atomic<int> acked_batches{0};
  std::atomic<int> outstanding{0};
  absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  JetStreamEventLog* const l = log->get();
  l->SetDurabilityListener([&](const std::string& topic, uint64_t end) {
    const uint64_t first = l->FirstOffset(topic);
    const uint64_t now_end = l->DurableEnd(topic);
    absl::MutexLock lock(&mu);
    highest_first = std::max(highest_first, first);
    if (now_end < highest_end) end_went_back_to = std::min(end_went_back_to, now_end);
    highest_end = std::max({highest_end, end, now_end});
  });

  // 64 batches in flight at all times, each answered on its own.
  std::thread appender([&] {
    for (int b = 0; !stop.load(); ++b) {
      if (!WaitFor([&] { return outstanding.load() < 64 || stop.load(); }, kWait)) break;
      ++outstanding;
      l->Append("orders", MakeEvents(absl::StrCat("p", b), 1),
                [&](absl::StatusOr<std::vector<AppendResult>> r) {
                  if (r.ok()) ++acked_batches;
                  --outstanding;
                });
    }
  });
  // No ASSERT before the join: the thread must not outlive the test.
  const bool started = WaitFor([&] { return acked_batches.load() >= 20; }, kWait);
  EXPECT_TRUE(started);
  absl::StatusOr<int> leader = (*nats)->StreamLeader(StreamNameForTopic("orders"));
  EXPECT_THAT(leader, IsOk());
  if (started && leader.ok()) {
    (*nats)->Kill(*leader);
    const int at_kill = acked_batches.load();
    EXPECT_TRUE(WaitFor([&] { return acked_batches.load() >= at_kill + 40; }, kWait));
  }
  stop = true;
  appender.join();
  ASSERT_TRUE(WaitFor([&] { return outstanding.load() == 0; }, kWait));

  absl::MutexLock lock(&mu);
  EXPECT_EQ(highest_first, 0u) << "the first offset jumped; nothing was deleted";
  EXPECT_EQ(end_went_back_to, UINT64_MAX) << "the durable end fell back to " << end_went_back_to;
  EXPECT_GT(highest_end, 0u);
}

}  // namespace
}  // namespace relay::broker
