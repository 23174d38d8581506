#include "common/backoff.h"

#include "gtest/gtest.h"

namespace relay {
namespace {

TEST(BackoffTest, DoublesUpToMaxAndResets) {
  Backoff b(absl::Milliseconds(50), absl::Milliseconds(300));
  EXPECT_EQ(b.Next(), absl::Milliseconds(50));
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(300));
  EXPECT_EQ(b.Next(), absl::Milliseconds(300));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Milliseconds(50));
}

TEST(BackoffTest, ForAttemptDoublesPerAttemptAndNeverOverflows) {
  const absl::Duration min = absl::Milliseconds(100), max = absl::Seconds(60);
  EXPECT_EQ(Backoff::ForAttempt(min, max, 0), min);
  EXPECT_EQ(Backoff::ForAttempt(min, max, 1), min);
  EXPECT_EQ(Backoff::ForAttempt(min, max, 2), absl::Milliseconds(200));
  EXPECT_EQ(Backoff::ForAttempt(min, max, 4), absl::Milliseconds(800));
  EXPECT_EQ(Backoff::ForAttempt(min, max, 20), max);
  EXPECT_EQ(Backoff::ForAttempt(min, max, UINT32_MAX), max);
}

TEST(BackoffTest, MinEqualToMaxStaysPut) {
  Backoff b(absl::Seconds(1), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
}

}  // namespace
}  // namespace relay
