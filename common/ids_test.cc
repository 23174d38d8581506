#include "common/ids.h"

#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay {
namespace {

using ::testing::MatchesRegex;

TEST(NewEventId, IsACanonicalUuidVersion7) {
  std::string id = NewEventId();
  EXPECT_THAT(id, MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
}

TEST(NewEventId, CarriesTheMillisecondItWasMadeIn) {
  int64_t before = absl::ToUnixMillis(absl::Now());
  std::string id = NewEventId();
  int64_t after = absl::ToUnixMillis(absl::Now());
  std::string hex = id.substr(0, 8) + id.substr(9, 4);
  uint64_t ms = 0;
  ASSERT_TRUE(absl::SimpleHexAtoi(hex, &ms));
  EXPECT_GE(static_cast<int64_t>(ms), before);
  EXPECT_LE(static_cast<int64_t>(ms), after + 1);  // +1: a borrowed millisecond
}

TEST(NewEventId, SortsInCreationOrder) {
  std::string previous = NewEventId();
  for (int i = 0; i < 20000; ++i) {
    std::string id = NewEventId();
    ASSERT_LT(previous, id) << "after " << i << " ids";
    previous = id;
  }
}

TEST(NewId, IsThePrefixAndCrockfordBase32ThatSorts) {
  std::string previous = NewId("ord");
  EXPECT_THAT(previous, MatchesRegex("ord-[0-9a-hjkmnp-tv-z]{26}"));
  // The top 3 bits of a 48-bit time make the first digit 0.
  EXPECT_TRUE(absl::StartsWith(previous, "ord-0"));
  for (int i = 0; i < 5000; ++i) {
    std::string id = NewId("ord");
    ASSERT_LT(previous, id);
    previous = id;
  }
}

TEST(Ids, AreUniqueAcrossThreads) {
  absl::Mutex mu;
  std::set<std::string> ids;
  std::vector<std::thread> threads;
  constexpr int kThreads = 4, kEach = 5000;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      for (int i = 0; i < kEach; ++i) mine.push_back(i % 2 ? NewEventId() : NewId("x"));
      absl::MutexLock lock(&mu);
      ids.insert(mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kEach));
}

}  // namespace
}  // namespace relay
