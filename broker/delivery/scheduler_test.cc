#include "broker/delivery/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::broker {

// Printers so that failed expectations show the values.
void PrintTo(const Scheduler::Assignment& a, std::ostream* os) {
  *os << "{member " << a.member << ", offset " << a.offset << ", attempt " << a.attempt << "}";
}
void PrintTo(Scheduler::AckOutcome o, std::ostream* os) {
  *os << (o == Scheduler::AckOutcome::kAcked   ? "kAcked"
          : o == Scheduler::AckOutcome::kStale ? "kStale"
                                               : "kUnknown");
}

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using AckOutcome = Scheduler::AckOutcome;
using Assignment = Scheduler::Assignment;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
const absl::Duration kDeadline = absl::Seconds(30);

MATCHER_P3(Assigned, member, offset, attempt, "") {
  return arg.member == static_cast<Scheduler::MemberId>(member) &&
         arg.offset == static_cast<uint64_t>(offset) &&
         arg.attempt == static_cast<uint32_t>(attempt);
}

MATCHER_P2(DeliveryOf, offset, attempt, "") {
  return arg.offset == static_cast<uint64_t>(offset) &&
         arg.attempt == static_cast<uint32_t>(attempt);
}

Scheduler::Options TestOptions() {
  Scheduler::Options o;
  o.max_deliveries = 3;
  o.min_backoff = absl::Seconds(1);
  o.max_backoff = absl::Seconds(10);
  o.max_buffered = 100;
  return o;
}

// The offsets of acked runs, one by one.
std::vector<uint64_t> Expand(const std::vector<Scheduler::Range>& ranges) {
  std::vector<uint64_t> out;
  for (const Scheduler::Range& r : ranges) {
    for (uint64_t o = r.begin; o < r.end; ++o) out.push_back(o);
  }
  return out;
}

// One-offset runs.
std::vector<Scheduler::Range> Singles(std::initializer_list<uint64_t> offsets) {
  std::vector<Scheduler::Range> out;
  for (uint64_t o : offsets) out.push_back(Scheduler::Range{o, o + 1});
  return out;
}

// `member` shows it is alive (a stale ack: attempt 0 is never current),
// which ends a stall after an expired deadline.
void SignOfLife(Scheduler& s, Scheduler::MemberId member) {
  ASSERT_EQ(s.Ack(member, 0, 0), Scheduler::AckOutcome::kStale);
  ASSERT_FALSE(s.Stalled(member));
}

Scheduler NewScheduler(Scheduler::Options options = TestOptions()) {
  return Scheduler(options, 0, {}, {});
}

void AddKeys(Scheduler& s, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) s.Add(s.NextOffsetToBuffer(), key, /*skip=*/false);
}

std::vector<uint64_t> Offsets(const std::vector<Assignment>& as) {
  std::vector<uint64_t> out;
  for (const Assignment& a : as) out.push_back(a.offset);
  return out;
}

TEST(Scheduler, SameKeyWaitsForAckOfPrevious) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "a", "a"});

  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 1, 1)));
  EXPECT_EQ(s.Ack(1, 1, 1), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 2, 1)));
}

TEST(Scheduler, BlockedKeyDoesNotStallOtherKeys) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "a", "b", "c", "b"});

  EXPECT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 2, 3));
  // Key a fails and waits for a retry: b moves on meanwhile.
  std::vector<Scheduler::DeadLetter> dead;
  EXPECT_EQ(s.Nack(1, 0, 1, "boom", absl::ZeroDuration(), kT0, &dead), AckOutcome::kAcked);
  EXPECT_EQ(s.Ack(1, 2, 1), AckOutcome::kAcked);
  EXPECT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(4));
}

TEST(Scheduler, EmptyKeysAreIndependent) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"", "", "a", ""});
  EXPECT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 1, 2, 3));
}

TEST(Scheduler, AssignHandsOutAtMostMax) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"", "", "", ""});
  EXPECT_THAT(Offsets(s.Assign(kT0, 3)), ElementsAre(0, 1, 2));
  EXPECT_THAT(Offsets(s.Assign(kT0, 3)), ElementsAre(3));
}

TEST(Scheduler, NoMembersAssignsNothing) {
  Scheduler s = NewScheduler();
  AddKeys(s, {"a", ""});
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  s.AddMember(7, 10, kDeadline);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(7, 0, 1), Assigned(7, 1, 1)));
}

TEST(Scheduler, ExpiredDeadlineRedeliversWithIncreasingAttempt) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(5));
  AddKeys(s, {"a", "a"});

  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));
  EXPECT_EQ(s.NextWakeup(), kT0 + absl::Seconds(5));
  EXPECT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(4)), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 1u);

  absl::Time now = kT0 + absl::Seconds(5);
  EXPECT_THAT(s.ExpireDeadlines(now), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 0u);
  EXPECT_EQ(s.NextWakeup(), now + absl::Seconds(1));  // backoff after attempt 1
  EXPECT_TRUE(s.Stalled(1));
  SignOfLife(s, 1);
  // The next event of the key still waits.
  EXPECT_THAT(s.Assign(now, 10), IsEmpty());
  now += absl::Seconds(1);
  EXPECT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, 2)));

  now += absl::Seconds(5);
  EXPECT_THAT(s.ExpireDeadlines(now), IsEmpty());
  SignOfLife(s, 1);
  now += absl::Seconds(2);  // backoff after attempt 2
  EXPECT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, 3)));
  EXPECT_EQ(s.stats().redelivered, 2u);
  EXPECT_EQ(s.Ack(1, 0, 3), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 1, 1)));
}

TEST(Scheduler, AcksOutOfOrderLeaveOnlyTheUnackedDeadline) {
  Scheduler::Options options = TestOptions();
  options.max_buffered = 1000;
  Scheduler s = NewScheduler(options);
  s.AddMember(1, 500, absl::Seconds(5));
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(absl::StrCat("k", i));
  AddKeys(s, keys);
  ASSERT_THAT(s.Assign(kT0, 500), ::testing::SizeIs(300));
  // Everything but the first, newest first: the deliveries behind an unacked
  // one pile up (and are compacted) in its member's deadline queue.
  for (uint64_t o = 299; o >= 1; --o) ASSERT_EQ(s.Ack(1, o, 1), AckOutcome::kAcked) << o;
  EXPECT_EQ(s.InFlight(1), 1u);
  EXPECT_EQ(s.stats().in_flight, 1u);
  EXPECT_EQ(s.NextWakeup(), kT0 + absl::Seconds(5));
  // Only the unacked one expires and comes back.
  EXPECT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(5)), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 0u);
  SignOfLife(s, 1);
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(6), 500), ElementsAre(Assigned(1, 0, 2)));
  EXPECT_EQ(s.NextWakeup(), kT0 + absl::Seconds(11));
  EXPECT_EQ(s.Ack(1, 0, 2), AckOutcome::kAcked);
  EXPECT_EQ(s.NextWakeup(), absl::InfiniteFuture());
  EXPECT_EQ(s.committed(), 300u);
}

TEST(Scheduler, AClockSteppingBackDelaysADeadlineButNeverReordersThem) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(5));
  AddKeys(s, {"a", "b"});
  EXPECT_THAT(s.Assign(kT0, 1), ElementsAre(Assigned(1, 0, 1)));
  // The wall clock steps back 10 s: the next deadline would be kT0 - 5 s,
  // before the first one; it is held at the first one's.
  EXPECT_THAT(s.Assign(kT0 - absl::Seconds(10), 1), ElementsAre(Assigned(1, 1, 1)));
  EXPECT_EQ(s.NextWakeup(), kT0 + absl::Seconds(5));
  EXPECT_THAT(s.ExpireDeadlines(kT0), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 2u);
  EXPECT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(5)), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 0u);
}

TEST(Scheduler, NackDelayIsRespected) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a"});
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));

  std::vector<Scheduler::DeadLetter> dead;
  EXPECT_EQ(s.Nack(1, 0, 1, "busy", absl::Seconds(42), kT0, &dead), AckOutcome::kAcked);
  EXPECT_THAT(dead, IsEmpty());
  EXPECT_EQ(s.NextWakeup(), kT0 + absl::Seconds(42));
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(42) - absl::Nanoseconds(1), 10), IsEmpty());
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(42), 10), ElementsAre(Assigned(1, 0, 2)));
}

TEST(Scheduler, BackoffDoublesUpToMax) {
  Scheduler::Options o = TestOptions();
  o.max_deliveries = 10;
  Scheduler s = NewScheduler(o);
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a"});

  const std::vector<int> expected_seconds = {1, 2, 4, 8, 10, 10};
  absl::Time now = kT0;
  for (size_t i = 0; i < expected_seconds.size(); ++i) {
    const uint32_t attempt = static_cast<uint32_t>(i + 1);
    ASSERT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, attempt)));
    std::vector<Scheduler::DeadLetter> dead;
    ASSERT_EQ(s.Nack(1, 0, attempt, "", absl::ZeroDuration(), now, &dead), AckOutcome::kAcked);
    EXPECT_EQ(s.NextWakeup() - now, absl::Seconds(expected_seconds[i]))
        << "after attempt " << attempt;
    now = s.NextWakeup();
  }
}

TEST(Scheduler, DeadLettersAfterMaxDeliveriesWithHistory) {
  Scheduler s = NewScheduler();  // max_deliveries 3
  s.AddMember(1, 10, absl::Seconds(5));
  AddKeys(s, {"a", "a"});

  absl::Time now = kT0;
  std::vector<Scheduler::DeadLetter> dead;
  ASSERT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, 1)));
  ASSERT_EQ(s.Nack(1, 0, 1, "bad input", absl::ZeroDuration(), now, &dead), AckOutcome::kAcked);
  now += absl::Seconds(1);
  ASSERT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, 2)));
  const absl::Time second = now;
  now += absl::Seconds(5);
  ASSERT_THAT(s.ExpireDeadlines(now), IsEmpty());
  SignOfLife(s, 1);
  now += absl::Seconds(2);
  ASSERT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 0, 3)));
  const absl::Time third = now;
  ASSERT_EQ(s.Nack(1, 0, 3, "still bad", absl::ZeroDuration(), now, &dead), AckOutcome::kAcked);

  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].offset, 0u);
  EXPECT_EQ(dead[0].key, "a");
  EXPECT_EQ(dead[0].last_error, "nack: still bad");
  ASSERT_EQ(dead[0].attempts.size(), 3u);
  EXPECT_EQ(dead[0].attempts[0].attempt, 1u);
  EXPECT_EQ(dead[0].attempts[0].delivered_at, kT0);
  EXPECT_EQ(dead[0].attempts[0].outcome, "nack: bad input");
  EXPECT_EQ(dead[0].attempts[1].attempt, 2u);
  EXPECT_EQ(dead[0].attempts[1].delivered_at, second);
  EXPECT_EQ(dead[0].attempts[1].outcome, "ack deadline exceeded");
  EXPECT_EQ(dead[0].attempts[2].attempt, 3u);
  EXPECT_EQ(dead[0].attempts[2].delivered_at, third);
  EXPECT_EQ(dead[0].attempts[2].outcome, "nack: still bad");

  // The key stays blocked, and the event unacked, until the dead letter is
  // durable; a late ack of the last attempt does not short-cut that.
  EXPECT_EQ(s.NextWakeup(), absl::InfiniteFuture());
  EXPECT_THAT(s.Assign(now + absl::Hours(1), 10), IsEmpty());
  EXPECT_EQ(s.Ack(1, 0, 3), AckOutcome::kStale);
  EXPECT_EQ(s.committed(), 0u);

  s.CompleteDeadLetter(0);
  EXPECT_EQ(s.committed(), 1u);
  EXPECT_THAT(s.Assign(now, 10), ElementsAre(Assigned(1, 1, 1)));
}

TEST(Scheduler, InFlightLimitExcludesDelayedRetries) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 2, kDeadline);
  AddKeys(s, {"", "", "", ""});

  EXPECT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 1));
  EXPECT_EQ(s.InFlight(1), 2u);
  std::vector<Scheduler::DeadLetter> dead;
  ASSERT_EQ(s.Nack(1, 0, 1, "later", absl::Minutes(1), kT0, &dead), AckOutcome::kAcked);
  EXPECT_EQ(s.stats().waiting_retry, 1u);
  // Offset 0 waits for its retry without taking a slot: 2 may go.
  EXPECT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(2));
  EXPECT_EQ(s.InFlight(1), 2u);
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
}

TEST(Scheduler, MemberLeavingReleasesDeliveriesAtOnceToAnotherMember) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "b", "a"});
  ASSERT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 1));

  s.AddMember(2, 10, kDeadline);
  EXPECT_THAT(s.RemoveMember(1, kT0), IsEmpty());
  EXPECT_EQ(s.InFlight(1), 0u);
  // No backoff: they go out again at the same instant.
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(2, 0, 2), Assigned(2, 1, 2)));
  // The departed member's late ack of the old attempt is stale.
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kStale);
  EXPECT_EQ(s.Ack(2, 0, 2), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(2, 2, 1)));
}

TEST(Scheduler, MemberLeavingOnLastAttemptDeadLetters) {
  Scheduler::Options o = TestOptions();
  o.max_deliveries = 1;
  Scheduler s = NewScheduler(o);
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a"});
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));

  std::vector<Scheduler::DeadLetter> dead = s.RemoveMember(1, kT0);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].last_error, "member left");
  ASSERT_EQ(dead[0].attempts.size(), 1u);
  EXPECT_EQ(dead[0].attempts[0].outcome, "member left");
}

TEST(Scheduler, LeastLoadedMemberGetsTheNextEvent) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  s.AddMember(2, 10, kDeadline);
  AddKeys(s, {"a", "b", "c", "d"});

  std::vector<Assignment> first = s.Assign(kT0, 10);
  EXPECT_EQ(s.InFlight(1), 2u);
  EXPECT_EQ(s.InFlight(2), 2u);
  // Member 1 finishes its work: the next two go to it, not to member 2.
  for (const Assignment& a : first) {
    if (a.member == 1) {
      ASSERT_EQ(s.Ack(1, a.offset, a.attempt), AckOutcome::kAcked);
    }
  }
  AddKeys(s, {"e", "f"});
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 4, 1), Assigned(1, 5, 1)));
}

TEST(Scheduler, IdleMembersTakeTurns) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  s.AddMember(2, 10, kDeadline);
  // One event at a time, acked at once: equal loads, so they alternate.
  std::vector<Scheduler::MemberId> members;
  for (int i = 0; i < 4; ++i) {
    AddKeys(s, {"k"});
    std::vector<Assignment> as = s.Assign(kT0, 10);
    ASSERT_EQ(as.size(), 1u);
    members.push_back(as[0].member);
    ASSERT_EQ(s.Ack(as[0].member, as[0].offset, 1), AckOutcome::kAcked);
  }
  EXPECT_THAT(members, ElementsAre(1, 2, 1, 2));
}

TEST(Scheduler, CommittedAdvancesOnlyOverContiguousPrefix) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"", "", "", ""});
  ASSERT_EQ(s.Assign(kT0, 10).size(), 4u);

  EXPECT_EQ(s.Ack(1, 1, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.Ack(1, 3, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.committed(), 0u);
  EXPECT_THAT(Expand(s.AckedAbove()), ElementsAre(1, 3));
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.committed(), 2u);
  EXPECT_THAT(Expand(s.AckedAbove()), ElementsAre(3));
  EXPECT_EQ(s.Ack(1, 2, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.committed(), 4u);
  EXPECT_THAT(s.AckedAbove(), IsEmpty());
}

TEST(Scheduler, HonoursAckedAboveAndAttemptsFromCheckpoint) {
  Scheduler s(TestOptions(), 10, /*acked_above=*/Singles({11, 13, 20}),
              /*attempts=*/{{10, 1}, {12, 2}, {30, 1}});
  EXPECT_EQ(s.NextOffsetToBuffer(), 10u);
  EXPECT_EQ(s.committed(), 10u);
  // A checkpoint taken now loses nothing it was given.
  EXPECT_THAT(Expand(s.AckedAbove()), ElementsAre(11, 13, 20));
  EXPECT_THAT(s.Attempts(), UnorderedElementsAre(Pair(10, 1), Pair(12, 2), Pair(30, 1)));

  s.AddMember(1, 10, kDeadline);
  std::vector<bool> kept;
  for (int i = 0; i < 5; ++i) kept.push_back(s.Add(s.NextOffsetToBuffer(), "", false));
  EXPECT_THAT(kept, ElementsAre(true, false, true, false, true));  // the caller keeps no bytes
  EXPECT_EQ(s.stats().buffered, 3u);                               // 11 and 13 are acked
  EXPECT_THAT(s.Assign(kT0, 10),
              ElementsAre(Assigned(1, 10, 2), Assigned(1, 12, 3), Assigned(1, 14, 1)));
  EXPECT_EQ(s.stats().redelivered, 2u);
  EXPECT_EQ(s.Ack(1, 10, 2), AckOutcome::kAcked);
  EXPECT_EQ(s.committed(), 12u);
  EXPECT_THAT(Expand(s.AckedAbove()), ElementsAre(13, 20));
  EXPECT_THAT(s.Attempts(), UnorderedElementsAre(Pair(12, 3), Pair(14, 1), Pair(30, 1)));
}

TEST(Scheduler, RestoredEventWithAttemptsUsedUpIsDeadLettered) {
  Scheduler s(TestOptions(), 0, {}, /*attempts=*/{{0, 3}});  // max_deliveries 3
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "a"});

  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  EXPECT_EQ(s.NextWakeup(), absl::InfinitePast());
  std::vector<Scheduler::DeadLetter> dead = s.ExpireDeadlines(kT0);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].offset, 0u);
  EXPECT_EQ(dead[0].key, "a");
  EXPECT_THAT(dead[0].last_error, ::testing::HasSubstr("restart"));
  EXPECT_EQ(s.NextWakeup(), absl::InfiniteFuture());
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  s.CompleteDeadLetter(0);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 1, 1)));
}

TEST(Scheduler, LateAckWhileWaitingForRetryCounts) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(5));
  AddKeys(s, {"a", "a"});
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));
  ASSERT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(5)), IsEmpty());
  ASSERT_EQ(s.stats().waiting_retry, 1u);

  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.stats().waiting_retry, 0u);
  EXPECT_EQ(s.NextWakeup(), absl::InfiniteFuture());
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(5), 10), ElementsAre(Assigned(1, 1, 1)));
}

TEST(Scheduler, AnyMemberMayAckTheLatestAttempt) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  s.AddMember(2, 10, kDeadline);
  AddKeys(s, {"a"});
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));
  EXPECT_EQ(s.Ack(2, 0, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.InFlight(1), 0u);
  EXPECT_EQ(s.committed(), 1u);
}

TEST(Scheduler, StaleAndUnknownAcksChangeNothing) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(5));
  AddKeys(s, {"a", "b"});
  ASSERT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 1));
  ASSERT_EQ(s.Ack(1, 1, 1), AckOutcome::kAcked);
  ASSERT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(5)), IsEmpty());
  SignOfLife(s, 1);
  ASSERT_THAT(s.Assign(kT0 + absl::Seconds(6), 10), ElementsAre(Assigned(1, 0, 2)));
  const Scheduler::Stats before = s.stats();

  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kStale);  // older attempt
  EXPECT_EQ(s.Ack(1, 0, 3), AckOutcome::kStale);  // future attempt
  EXPECT_EQ(s.Ack(1, 0, 0), AckOutcome::kStale);
  EXPECT_EQ(s.Ack(1, 1, 1), AckOutcome::kStale);  // already acked
  EXPECT_EQ(s.Ack(1, 2, 1), AckOutcome::kUnknown);
  EXPECT_EQ(s.Ack(1, 999, 1), AckOutcome::kUnknown);

  EXPECT_EQ(s.stats().in_flight, before.in_flight);
  EXPECT_EQ(s.stats().buffered, before.buffered);
  EXPECT_EQ(s.InFlight(1), 1u);
  EXPECT_EQ(s.committed(), 0u);
  EXPECT_EQ(s.Ack(1, 0, 2), AckOutcome::kAcked);
  EXPECT_EQ(s.Ack(1, 0, 2), AckOutcome::kStale);  // below committed now
}

TEST(Scheduler, StaleAndUnknownNacksChangeNothing) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  s.AddMember(2, 10, kDeadline);
  AddKeys(s, {"a", "b"});
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1), Assigned(2, 1, 1)));
  ASSERT_EQ(s.Ack(2, 1, 1), AckOutcome::kAcked);

  std::vector<Scheduler::DeadLetter> dead;
  const absl::Duration d = absl::ZeroDuration();
  EXPECT_EQ(s.Nack(2, 0, 1, "not mine", d, kT0, &dead), AckOutcome::kStale);
  EXPECT_EQ(s.Nack(1, 0, 2, "wrong attempt", d, kT0, &dead), AckOutcome::kStale);
  EXPECT_EQ(s.Nack(2, 1, 1, "acked", d, kT0, &dead), AckOutcome::kStale);
  EXPECT_EQ(s.Nack(1, 5, 1, "never", d, kT0, &dead), AckOutcome::kUnknown);
  EXPECT_THAT(dead, IsEmpty());
  EXPECT_EQ(s.InFlight(1), 1u);
  EXPECT_EQ(s.stats().waiting_retry, 0u);
  EXPECT_EQ(s.NextWakeup(), kT0 + kDeadline);
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
}

TEST(Scheduler, BufferRoomBoundsTheWindow) {
  Scheduler::Options o = TestOptions();
  o.max_buffered = 3;
  Scheduler s = NewScheduler(o);
  s.AddMember(1, 10, kDeadline);
  EXPECT_EQ(s.BufferRoom(), 3u);
  EXPECT_TRUE(s.Add(0, "a", false));
  EXPECT_FALSE(s.Add(1, "", /*skip=*/true));  // filtered out: acked, takes no room
  s.Add(2, "b", false);
  s.Add(3, "c", false);
  EXPECT_EQ(s.BufferRoom(), 0u);
  ASSERT_EQ(s.Assign(kT0, 10).size(), 3u);
  EXPECT_EQ(s.BufferRoom(), 0u);  // in flight still counts
  ASSERT_EQ(s.Ack(1, 2, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.BufferRoom(), 1u);  // acked above committed does not
  EXPECT_EQ(s.committed(), 0u);
}

TEST(Scheduler, SkipToAcksEverythingBelow) {
  Scheduler s(TestOptions(), 0, /*acked_above=*/Singles({7, 20}), /*attempts=*/{{3, 2}, {25, 1}});
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "a", "b"});
  ASSERT_THAT(Offsets(s.Assign(kT0, 10)), ElementsAre(0, 2));
  ASSERT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  ASSERT_EQ(s.Ack(1, 2, 1), AckOutcome::kAcked);

  // Offset 1 (key a, ready) falls out of retention; the window jumps ahead.
  s.SkipTo(10);
  EXPECT_EQ(s.committed(), 10u);
  EXPECT_EQ(s.NextOffsetToBuffer(), 10u);
  EXPECT_EQ(s.stats().buffered, 0u);
  EXPECT_THAT(Expand(s.AckedAbove()), ElementsAre(20));
  EXPECT_THAT(s.Attempts(), UnorderedElementsAre(Pair(25, 1)));
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  EXPECT_EQ(s.Ack(1, 1, 1), AckOutcome::kStale);

  s.Add(10, "a", false);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 10, 1)));

  // Skipping within the window acks the part below and releases keys.
  s.Add(11, "a", false);
  s.Add(12, "a", false);
  ASSERT_EQ(s.Ack(1, 10, 1), AckOutcome::kAcked);
  s.SkipTo(12);
  EXPECT_EQ(s.committed(), 12u);
  EXPECT_EQ(s.NextOffsetToBuffer(), 13u);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 12, 1)));
}

TEST(Scheduler, StatsCountTheWindow) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"", "", "", "x"});
  ASSERT_EQ(s.Assign(kT0, 3).size(), 3u);
  std::vector<Scheduler::DeadLetter> dead;
  ASSERT_EQ(s.Nack(1, 0, 1, "", absl::Seconds(1), kT0, &dead), AckOutcome::kAcked);
  ASSERT_EQ(s.Ack(1, 1, 1), AckOutcome::kAcked);
  const Scheduler::Stats st = s.stats();
  EXPECT_EQ(st.in_flight, 1u);
  EXPECT_EQ(st.waiting_retry, 1u);
  EXPECT_EQ(st.buffered, 3u);
  EXPECT_EQ(st.redelivered, 0u);
}

TEST(Scheduler, HungMemberDoesNotDeadLetterHealthyEvents) {
  // One member stays connected and never acks; the other acks at once.
  // Expired deliveries must go to the healthy member, not back to the hung
  // one (which is the least loaded once its deliveries expire).
  Scheduler::Options o = TestOptions();
  o.max_deliveries = 3;
  o.max_buffered = 1000;
  Scheduler s(o, 0, {}, {});
  const absl::Duration deadline = absl::Milliseconds(300);
  s.AddMember(/*hung=*/1, 50, deadline);
  s.AddMember(/*healthy=*/2, 50, deadline);
  for (int i = 0; i < 200; ++i) s.Add(s.NextOffsetToBuffer(), absl::StrCat("k", i), false);

  absl::Time now = kT0;
  std::vector<Scheduler::DeadLetter> dead;
  for (int round = 0; round < 1000 && s.committed() < 200; ++round) {
    for (Scheduler::DeadLetter& d : s.ExpireDeadlines(now)) dead.push_back(std::move(d));
    for (const Assignment& a : s.Assign(now, 1000)) {
      if (a.member == 2) {
        ASSERT_EQ(s.Ack(2, a.offset, a.attempt), AckOutcome::kAcked);
      }
    }
    now += absl::Milliseconds(100);
  }
  EXPECT_THAT(dead, IsEmpty());
  EXPECT_EQ(s.committed(), 200u);
  EXPECT_TRUE(s.Stalled(1));
  EXPECT_FALSE(s.Stalled(2));
  EXPECT_EQ(s.InFlight(1), 0u);
}

TEST(Scheduler, StalledMemberGetsWorkAgainAfterALateAck) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(1));
  AddKeys(s, {"a", "b"});
  ASSERT_THAT(s.Assign(kT0, 1), ElementsAre(Assigned(1, 0, 1)));
  EXPECT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(1)), IsEmpty());
  EXPECT_TRUE(s.Stalled(1));
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(5), 10), IsEmpty());  // 0 and 1 wait for a member

  // The slow member finishes offset 0 late: accepted, and it is alive.
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_FALSE(s.Stalled(1));
  EXPECT_THAT(s.Assign(kT0 + absl::Seconds(5), 10), ElementsAre(Assigned(1, 1, 1)));
}

TEST(Scheduler, ABackloggedMemberGetsNothingNewUntilItIsNot) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  s.AddMember(2, 10, kDeadline);
  AddKeys(s, {"a", "b", "c", "d"});
  ASSERT_THAT(s.Assign(kT0, 1), ElementsAre(Assigned(1, 0, 1)));
  s.SetBacklogged(1, true);
  EXPECT_TRUE(s.Backlogged(1));
  // Member 1 is the least loaded with room but gets nothing; 2 gets it all.
  EXPECT_THAT(s.Assign(kT0, 2), ElementsAre(Assigned(2, 1, 1), Assigned(2, 2, 1)));
  s.SetBacklogged(2, true);
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  // What it holds is still its own to ack, and an ack (which un-stalls a
  // stalled member) does not lift the backlog.
  EXPECT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(kT0, 10), IsEmpty());
  s.SetBacklogged(1, false);
  s.SetBacklogged(1, false);  // twice: still offered once
  EXPECT_FALSE(s.Backlogged(1));
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 3, 1)));
  // Not a member: ignored.
  s.SetBacklogged(7, true);
  EXPECT_FALSE(s.Backlogged(7));
}

TEST(Scheduler, StalledMemberLeavingReleasesNothingTwice) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, absl::Seconds(1));
  AddKeys(s, {"a", "b"});
  ASSERT_EQ(s.Assign(kT0, 1).size(), 1u);
  EXPECT_THAT(s.ExpireDeadlines(kT0 + absl::Seconds(1)), IsEmpty());
  EXPECT_THAT(s.RemoveMember(1, kT0 + absl::Seconds(1)), IsEmpty());
  s.AddMember(2, 10, absl::Seconds(1));
  EXPECT_FALSE(s.Stalled(2));
  EXPECT_THAT(Offsets(s.Assign(kT0 + absl::Seconds(10), 10)), ElementsAre(0, 1));
}

TEST(Scheduler, SkipAheadJumpsAGapAndKeepsTheWindow) {
  Scheduler s(TestOptions(), 0, /*acked_above=*/{{3, 5}, {8, 9}}, /*attempts=*/{{6, 2}, {12, 1}});
  s.AddMember(1, 10, kDeadline);
  AddKeys(s, {"a", "a"});  // 0, 1
  ASSERT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 0, 1)));

  // The log lost offsets 2..9 (a damaged segment): the next event it has is 10.
  EXPECT_EQ(s.SkipAhead(10), 8u);
  EXPECT_EQ(s.SkipAhead(5), 0u);  // never backwards
  EXPECT_EQ(s.NextOffsetToBuffer(), 10u);
  EXPECT_EQ(s.committed(), 0u);  // 0 and 1 are still out
  EXPECT_EQ(s.stats().buffered, 2u);
  EXPECT_THAT(s.AckedAbove(), ElementsAre(Scheduler::Range{2, 10}));
  EXPECT_THAT(s.Attempts(), UnorderedElementsAre(Pair(0, 1), Pair(12, 1)));
  s.Add(10, "a", false);
  ASSERT_EQ(s.Ack(1, 0, 1), AckOutcome::kAcked);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 1, 1)));
  ASSERT_EQ(s.Ack(1, 1, 1), AckOutcome::kAcked);
  EXPECT_EQ(s.committed(), 10u);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 10, 1)));
}

TEST(Scheduler, AckedRunsStayCompactBehindAStuckEvent) {
  // One event waits 50 minutes for a retry while 20,000 later ones are
  // acked: the checkpoint state is one run, not 20,000 offsets.
  Scheduler::Options o = TestOptions();
  o.max_buffered = 1000;
  Scheduler s(o, 0, {}, {});
  s.AddMember(1, 1000, kDeadline);
  std::vector<Scheduler::DeadLetter> dead;
  s.Add(0, "stuck", false);
  ASSERT_THAT(s.Assign(kT0, 1), ElementsAre(Assigned(1, 0, 1)));
  ASSERT_EQ(s.Nack(1, 0, 1, "later", absl::Minutes(50), kT0, &dead), AckOutcome::kAcked);
  while (s.NextOffsetToBuffer() < 20001) {
    for (size_t i = s.BufferRoom(); i > 0 && s.NextOffsetToBuffer() < 20001; --i) {
      s.Add(s.NextOffsetToBuffer(), "", false);
    }
    for (const Assignment& a : s.Assign(kT0, 1000)) {
      ASSERT_EQ(s.Ack(1, a.offset, a.attempt), AckOutcome::kAcked);
    }
  }
  EXPECT_EQ(s.committed(), 0u);
  EXPECT_THAT(s.AckedAbove(), ElementsAre(Scheduler::Range{1, 20001}));
  EXPECT_EQ(s.AckedAboveCount(), 20000u);

  // Restored from those runs, the window skips them without re-adding.
  Scheduler r(o, 0, s.AckedAbove(), s.Attempts());
  r.AddMember(1, 10, kDeadline);
  r.Add(0, "stuck", false);
  r.Add(1, "", false);
  EXPECT_EQ(r.stats().buffered, 1u);
  EXPECT_THAT(r.AckedAbove(), ElementsAre(Scheduler::Range{1, 20001}));
}

TEST(Scheduler, RestoredRunsMayOverlapAndComeInAnyOrder) {
  Scheduler s(TestOptions(), 5, /*acked_above=*/{{9, 12}, {2, 7}, {10, 15}, {15, 16}, {20, 20}},
              {});
  EXPECT_THAT(s.AckedAbove(), ElementsAre(Scheduler::Range{5, 7}, Scheduler::Range{9, 16}));
  EXPECT_EQ(s.AckedAboveCount(), 9u);
}

TEST(Scheduler, DropRemovesAnEventAndReleasesItsKey) {
  Scheduler s = NewScheduler();
  AddKeys(s, {"a", "a"});
  s.Drop(0);
  s.AddMember(1, 10, kDeadline);
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 1, 1)));
  EXPECT_EQ(s.committed(), 1u);
}

// A key's queue keeps its order however long it grows and whatever leaves
// it from the middle (a filter change) or from the front as events are
// interleaved with another key's.
TEST(Scheduler, AHotKeyGoesOutInOrderOneAtATime) {
  Scheduler s = NewScheduler();
  s.AddMember(1, 10, kDeadline);
  for (int i = 0; i < 40; ++i) AddKeys(s, {i % 4 == 3 ? "b" : "a"});
  s.Drop(5);   // "a", in the middle of its queue
  s.Drop(31);  // "b"
  std::vector<uint64_t> a_order, b_order;
  for (int round = 0; round < 60; ++round) {
    std::vector<Assignment> out = s.Assign(kT0, 10);
    // One of each key at a time at most.
    ASSERT_LE(out.size(), 2u);
    for (const Assignment& x : out) {
      (x.offset % 4 == 3 ? b_order : a_order).push_back(x.offset);
      ASSERT_EQ(s.Ack(1, x.offset, x.attempt), AckOutcome::kAcked);
    }
  }
  std::vector<uint64_t> want_a, want_b;
  for (uint64_t o = 0; o < 40; ++o) {
    if (o == 5 || o == 31) continue;
    (o % 4 == 3 ? want_b : want_a).push_back(o);
  }
  EXPECT_EQ(a_order, want_a);
  EXPECT_EQ(b_order, want_b);
  EXPECT_EQ(s.committed(), 40u);
  // The key is free again afterwards.
  AddKeys(s, {"a"});
  EXPECT_THAT(s.Assign(kT0, 10), ElementsAre(Assigned(1, 40, 1)));
}

// AckAll() against Ack() one by one: two schedulers take the same random
// operations, but one gets each ack message's acks one at a time and the
// other all at once. Every outcome and everything observable afterwards,
// above all the next assignments (which member, in which order), must agree.
TEST(Scheduler, AckAllActsAsAckOneByOne) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    auto uniform = [&rng](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
    Scheduler::Options options = TestOptions();
    options.max_buffered = 200;
    Scheduler one(options, 0, {}, {});
    Scheduler all(options, 0, {}, {});
    absl::Time now = kT0;
    const std::vector<Scheduler::MemberId> members = {1, 2, 3};
    for (Scheduler::MemberId m : members) {
      const uint32_t room = 2 + static_cast<uint32_t>(uniform(20));
      one.AddMember(m, room, absl::Milliseconds(500));
      all.AddMember(m, room, absl::Milliseconds(500));
    }
    std::vector<Assignment> out;  // what went out, acked or not
    for (int step = 0; step < 1500 && !::testing::Test::HasFailure(); ++step) {
      switch (uniform(6)) {
        case 0:
        case 1:
          for (int n = uniform(30); n > 0 && one.BufferRoom() > 0; --n) {
            const uint64_t offset = one.NextOffsetToBuffer();
            const int k = uniform(12);
            const std::string key = k < 10 ? absl::StrCat("k", k) : "";
            const bool skip = uniform(20) == 0;
            ASSERT_EQ(one.Add(offset, key, skip), all.Add(offset, key, skip));
          }
          break;
        case 2: {
          const size_t max = 1 + static_cast<size_t>(uniform(40));
          std::vector<Assignment> a = one.Assign(now, max);
          std::vector<Assignment> b = all.Assign(now, max);
          ASSERT_EQ(a.size(), b.size());
          for (size_t i = 0; i < a.size(); ++i) {
            ASSERT_EQ(a[i].member, b[i].member) << i;
            ASSERT_EQ(a[i].offset, b[i].offset) << i;
            ASSERT_EQ(a[i].attempt, b[i].attempt) << i;
          }
          out.insert(out.end(), a.begin(), a.end());
          // The latest ones: older deliveries are acked, expired or stale.
          if (out.size() > 64) out.erase(out.begin(), out.end() - 64);
          break;
        }
        case 3:
        case 4: {
          // One ack message: mostly deliveries out, ascending, with stale
          // attempts, repeats, acks of another member's deliveries and
          // offsets never buffered mixed in; sometimes shuffled.
          const Scheduler::MemberId from = members[static_cast<size_t>(uniform(3))];
          std::vector<Scheduler::AckRef> acks;
          for (const Assignment& a : out) {
            if (uniform(3) == 0) continue;
            acks.push_back({a.offset, uniform(10) == 0 ? a.attempt + 1 : a.attempt});
            if (uniform(15) == 0) acks.push_back(acks.back());
          }
          if (uniform(4) == 0) acks.push_back({one.NextOffsetToBuffer() + 1, 1});
          if (uniform(3) == 0) std::shuffle(acks.begin(), acks.end(), rng);
          std::vector<uint64_t> want;
          for (const Scheduler::AckRef& a : acks) {
            if (one.Ack(from, a.offset, a.attempt) == AckOutcome::kAcked) want.push_back(a.offset);
          }
          std::vector<uint64_t> got;
          all.AckAll(from, acks, &got);
          ASSERT_EQ(got, want);
          break;
        }
        case 5: {
          now += absl::Milliseconds(uniform(300));
          std::vector<Scheduler::DeadLetter> a = one.ExpireDeadlines(now);
          std::vector<Scheduler::DeadLetter> b = all.ExpireDeadlines(now);
          ASSERT_EQ(a.size(), b.size());
          for (size_t i = 0; i < a.size(); ++i) {
            ASSERT_EQ(a[i].offset, b[i].offset);
            one.CompleteDeadLetter(a[i].offset);
            all.CompleteDeadLetter(b[i].offset);
          }
          break;
        }
      }
      for (Scheduler::MemberId m : members) {
        ASSERT_EQ(one.InFlight(m), all.InFlight(m)) << "member " << m;
        ASSERT_EQ(one.Stalled(m), all.Stalled(m)) << "member " << m;
      }
      ASSERT_EQ(one.committed(), all.committed());
      ASSERT_EQ(one.AckedAbove(), all.AckedAbove());
      ASSERT_EQ(one.NextWakeup(), all.NextWakeup());
      ASSERT_EQ(one.HasWaiting(), all.HasWaiting());
      ASSERT_EQ(one.stats().buffered, all.stats().buffered);
      ASSERT_EQ(one.stats().in_flight, all.stats().in_flight);
    }
    if (::testing::Test::HasFailure()) break;
  }
}

// Random operations against a model of what is outstanding; checks the
// delivery rules after every step, then drains the window.
class RandomRun {
 public:
  explicit RandomRun(uint32_t seed) : rng_(seed), s_(Options(), 0, {}, {}) {}

  void Run(int steps) {
    for (int i = 0; i < kMembers; ++i) JoinWithDeadline(static_cast<Scheduler::MemberId>(i + 1));
    for (int step = 0; step < steps && !::testing::Test::HasFatalFailure(); ++step) {
      RandomStep();
      CheckInvariants();
    }
    Drain();
  }

 private:
  static constexpr int kMembers = 3;
  static constexpr int kKeys = 20;
  static constexpr uint32_t kMaxInFlight = 4;

  struct Outstanding {
    Scheduler::MemberId member;
    uint32_t attempt;
    absl::Time deadline;
  };

  static Scheduler::Options Options() {
    Scheduler::Options o;
    o.max_deliveries = 4;
    o.min_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(80);
    o.max_buffered = 60;
    return o;
  }

  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void RandomStep() {
    switch (Uniform(10)) {
      case 0:
      case 1: {  // publish a few
        for (int n = Uniform(5); n > 0 && s_.BufferRoom() > 0; --n) {
          const uint64_t offset = s_.NextOffsetToBuffer();
          const int k = Uniform(kKeys + 3);
          const std::string key = k < kKeys ? absl::StrCat("k", k) : "";
          const bool skip = Uniform(15) == 0;
          s_.Add(offset, key, skip);
          keys_.push_back(key);
          if (skip) done_.insert(offset);
        }
        break;
      }
      case 2:
      case 3:
        AssignSome(static_cast<size_t>(1 + Uniform(6)));
        break;
      case 4:
      case 5:
        AckSome();
        break;
      case 6:
        NackOne();
        break;
      case 7:
        now_ += absl::Milliseconds(Uniform(60));
        Collect(s_.ExpireDeadlines(now_));
        ExpireModel();
        if (Uniform(3) == 0) SignOfLife();
        break;
      case 8:
        CompleteDead();
        break;
      case 9:
        Churn();
        break;
    }
  }

  void AssignSome(size_t max) {
    std::vector<Assignment> as = s_.Assign(now_, max);
    ASSERT_LE(as.size(), max);
    for (const Assignment& a : as) {
      ASSERT_TRUE(members_.contains(a.member)) << a.member;
      ASSERT_FALSE(stalled_.contains(a.member)) << "stalled member " << a.member << " got work";
      ASSERT_LT(a.offset, keys_.size());
      ASSERT_FALSE(done_.contains(a.offset)) << a.offset;
      ASSERT_EQ(outstanding_.count(a.offset), 0u) << a.offset;
      ASSERT_EQ(a.attempt, ++attempts_[a.offset]) << a.offset;
      const std::string& key = keys_[a.offset];
      if (!key.empty()) {
        // Per-key order: every earlier event of the key is done, and none
        // of the key is out with a member.
        for (uint64_t o = 0; o < a.offset; ++o) {
          if (keys_[o] == key) {
            ASSERT_TRUE(done_.contains(o)) << a.offset << " before " << o;
          }
        }
        for (const auto& [o, out] : outstanding_) ASSERT_NE(keys_[o], key) << o << " " << a.offset;
      }
      outstanding_[a.offset] = {a.member, a.attempt, now_ + member_deadline_[a.member]};
    }
  }

  void AckSome() {
    std::vector<uint64_t> offsets;
    for (const auto& [o, out] : outstanding_) {
      if (Uniform(2) == 0) offsets.push_back(o);
    }
    for (uint64_t o : offsets) {
      const Outstanding out = outstanding_[o];
      if (Uniform(8) == 0) {  // an old attempt: ignored
        if (out.attempt > 1) {
          ASSERT_EQ(s_.Ack(out.member, o, out.attempt - 1), AckOutcome::kStale);
          stalled_.erase(out.member);
        }
        continue;
      }
      ASSERT_EQ(s_.Ack(out.member, o, out.attempt), AckOutcome::kAcked) << o;
      stalled_.erase(out.member);
      outstanding_.erase(o);
      done_.insert(o);
    }
    // Acks of done and never-buffered offsets change nothing.
    if (!done_.empty()) {
      ASSERT_EQ(s_.Ack(1, *done_.begin(), 1), AckOutcome::kStale);
      stalled_.erase(1);  // even a stale ack shows the member is alive
    }
    ASSERT_EQ(s_.Ack(1, s_.NextOffsetToBuffer() + Uniform(3), 1), AckOutcome::kUnknown);
  }

  void NackOne() {
    if (outstanding_.empty()) return;
    auto it = outstanding_.begin();
    std::advance(it, Uniform(static_cast<int>(outstanding_.size())));
    const uint64_t o = it->first;
    const Outstanding out = it->second;
    std::vector<Scheduler::DeadLetter> dead;
    // Another member's nack is stale.
    ASSERT_EQ(s_.Nack(out.member + 100, o, out.attempt, "x", absl::ZeroDuration(), now_, &dead),
              AckOutcome::kStale);
    const absl::Duration delay = absl::Milliseconds(Uniform(3) * 20);
    ASSERT_EQ(s_.Nack(out.member, o, out.attempt, "x", delay, now_, &dead), AckOutcome::kAcked);
    stalled_.erase(out.member);
    outstanding_.erase(it);
    Collect(std::move(dead));
  }

  void Churn() {
    const Scheduler::MemberId id = static_cast<Scheduler::MemberId>(1 + Uniform(kMembers));
    if (members_.contains(id)) {
      if (members_.size() == 1) return;
      Collect(s_.RemoveMember(id, now_));
      members_.erase(id);
      stalled_.erase(id);
      for (auto it = outstanding_.begin(); it != outstanding_.end();) {
        if (it->second.member == id) {
          outstanding_.erase(it++);
        } else {
          ++it;
        }
      }
    } else {
      JoinWithDeadline(id);
    }
  }

  void JoinWithDeadline(Scheduler::MemberId id) {
    member_deadline_[id] = absl::Milliseconds(50 + 25 * Uniform(4));
    s_.AddMember(id, kMaxInFlight, member_deadline_[id]);
    members_.insert(id);
  }

  // Every stalled member nacks a delivery it does not hold (attempt 0 is
  // never current): stale, but a sign of life that ends the stall.
  void SignOfLife() {
    if (s_.NextOffsetToBuffer() == 0) return;
    std::vector<Scheduler::DeadLetter> dead;
    for (Scheduler::MemberId id : stalled_) {
      ASSERT_TRUE(s_.Stalled(id)) << id;
      ASSERT_EQ(s_.Nack(id, 0, 0, "x", absl::ZeroDuration(), now_, &dead), AckOutcome::kStale);
      ASSERT_FALSE(s_.Stalled(id)) << id;
    }
    ASSERT_THAT(dead, IsEmpty());
    stalled_.clear();
  }

  void ExpireModel() {
    for (auto it = outstanding_.begin(); it != outstanding_.end();) {
      if (it->second.deadline <= now_) {
        stalled_.insert(it->second.member);
        outstanding_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  void Collect(std::vector<Scheduler::DeadLetter> dead) {
    for (Scheduler::DeadLetter& d : dead) {
      ASSERT_EQ(d.attempts.size(), Options().max_deliveries) << d.offset;
      ASSERT_EQ(d.key, keys_[d.offset]);
      ASSERT_EQ(d.last_error, d.attempts.back().outcome);
      for (size_t i = 0; i < d.attempts.size(); ++i) ASSERT_EQ(d.attempts[i].attempt, i + 1);
      ASSERT_TRUE(dead_.insert(d.offset).second) << d.offset;
    }
  }

  void CompleteDead() {
    for (uint64_t o : dead_) {
      s_.CompleteDeadLetter(o);
      done_.insert(o);
    }
    dead_.clear();
  }

  void CheckInvariants() {
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t total = 0;
    for (Scheduler::MemberId id : members_) {
      uint32_t held = 0;
      for (const auto& [o, out] : outstanding_) held += out.member == id ? 1 : 0;
      ASSERT_EQ(s_.InFlight(id), held) << "member " << id;
      ASSERT_LE(held, kMaxInFlight);
      total += held;
    }
    ASSERT_EQ(s_.stats().in_flight, total);
    // The earliest deadline of a delivery out is never missed.
    for (const auto& [o, out] : outstanding_) ASSERT_LE(s_.NextWakeup(), out.deadline) << o;
    for (Scheduler::MemberId id : members_) ASSERT_EQ(s_.Stalled(id), stalled_.contains(id)) << id;
    // No key has two events out at once.
    absl::flat_hash_set<std::string> busy;
    for (const auto& [o, out] : outstanding_) {
      if (!keys_[o].empty()) {
        ASSERT_TRUE(busy.insert(keys_[o]).second) << keys_[o];
      }
    }
    // committed() is the first offset not done.
    uint64_t c = 0;
    while (c < keys_.size() && done_.contains(c)) ++c;
    ASSERT_EQ(s_.committed(), c);
    ASSERT_EQ(s_.stats().buffered, keys_.size() - done_.size());
  }

  void Drain() {
    if (::testing::Test::HasFatalFailure()) return;
    for (int round = 0; round < 1000 && s_.committed() < s_.NextOffsetToBuffer(); ++round) {
      now_ += absl::Milliseconds(100);
      Collect(s_.ExpireDeadlines(now_));
      ExpireModel();
      SignOfLife();
      CompleteDead();
      AssignSome(100);
      for (const auto& [o, out] : outstanding_) {
        ASSERT_EQ(s_.Ack(out.member, o, out.attempt), AckOutcome::kAcked);
        done_.insert(o);
      }
      outstanding_.clear();
      CheckInvariants();
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_EQ(s_.committed(), s_.NextOffsetToBuffer());
    EXPECT_THAT(s_.AckedAbove(), IsEmpty());
    EXPECT_EQ(s_.NextWakeup(), absl::InfiniteFuture());
  }

  std::mt19937 rng_;
  Scheduler s_;
  absl::Time now_ = kT0;
  std::vector<std::string> keys_;  // by offset
  absl::flat_hash_set<uint64_t> done_;
  absl::flat_hash_set<uint64_t> dead_;
  absl::flat_hash_map<uint64_t, uint32_t> attempts_;
  std::map<uint64_t, Outstanding> outstanding_;
  absl::flat_hash_set<Scheduler::MemberId> members_;
  absl::flat_hash_set<Scheduler::MemberId> stalled_;
  absl::flat_hash_map<Scheduler::MemberId, absl::Duration> member_deadline_;
};

TEST(Scheduler, RandomOperationsKeepDeliveryRules) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    RandomRun(seed).Run(3000);
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace relay::broker
