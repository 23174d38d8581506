#include "broker/storage/dedupe_index.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::broker {
namespace {

using ::testing::Eq;
using ::testing::Optional;

TEST(DedupeIndex, FindsWhatWasInserted) {
  DedupeIndex index;
  index.Insert("a", 0);
  index.Insert("b", 1);
  EXPECT_THAT(index.Find("a"), Optional(Eq(0u)));
  EXPECT_THAT(index.Find("b"), Optional(Eq(1u)));
  EXPECT_EQ(index.Find("c"), std::nullopt);
  EXPECT_EQ(index.size(), 2u);
}

TEST(DedupeIndex, FindOrInsertReturnsTheFirstOffset) {
  DedupeIndex index;
  EXPECT_EQ(index.FindOrInsert(DedupeIndex::KeyOf("id-1"), 5), std::nullopt);
  EXPECT_THAT(index.FindOrInsert(DedupeIndex::KeyOf("id-1"), 6), Optional(Eq(5u)));
  EXPECT_EQ(index.FindOrInsert(DedupeIndex::KeyOf("id-2"), 6), std::nullopt);
  EXPECT_EQ(index.size(), 2u);
}

TEST(DedupeIndex, EvictBelowForgetsOlderEntriesOnly) {
  DedupeIndex index;
  for (uint64_t i = 0; i < 100; ++i) index.Insert(absl::StrCat("id-", i), i);
  index.EvictBelow(60);
  EXPECT_EQ(index.size(), 40u);
  EXPECT_EQ(index.Find("id-59"), std::nullopt);
  EXPECT_THAT(index.Find("id-60"), Optional(Eq(60u)));
  EXPECT_THAT(index.Find("id-99"), Optional(Eq(99u)));
}

TEST(DedupeIndex, ReinsertedIdSurvivesEvictionOfItsOldEntry) {
  DedupeIndex index;
  index.Insert("x", 1);
  index.Insert("y", 2);
  index.Insert("x", 3);
  index.EvictBelow(2);
  EXPECT_THAT(index.Find("x"), Optional(Eq(3u)));
}

TEST(DedupeIndex, DistinguishesManySimilarIdsOfEveryLength) {
  DedupeIndex index;
  uint64_t offset = 0;
  for (int length = 0; length <= 40; ++length) {
    for (char c = 'a'; c <= 'z'; ++c) {
      std::string id(static_cast<size_t>(length), 'x');
      if (length > 0) id[static_cast<size_t>(length) / 2] = c;
      if (index.Find(id).has_value()) continue;  // length 0: one id only
      index.Insert(id, offset++);
    }
  }
  EXPECT_EQ(index.size(), offset);
  EXPECT_EQ(offset, 1u + 40u * 26u);
}

TEST(DedupeIndex, OffsetsWithoutIdsAndGapsKeepPositionsRight) {
  DedupeIndex index;
  index.Insert("a", 10);
  index.Insert("b", 15);  // 11..14 hold no id
  EXPECT_EQ(index.FindOrInsert(DedupeIndex::KeyOf("c"), 20), std::nullopt);
  EXPECT_THAT(index.Find("b"), Optional(Eq(15u)));
  EXPECT_THAT(index.FindOrInsert(DedupeIndex::KeyOf("c"), 21), Optional(Eq(20u)));
  index.EvictBelow(12);
  EXPECT_EQ(index.Find("a"), std::nullopt);
  EXPECT_THAT(index.Find("c"), Optional(Eq(20u)));
  EXPECT_EQ(index.size(), 2u);
}

TEST(DedupeIndex, EvictOldestKeepsTheNewestIds) {
  DedupeIndex index;
  for (uint64_t i = 0; i < 1000; ++i) index.Insert(absl::StrCat("id-", i), i);
  EXPECT_EQ(index.EvictOldest(100), 900u);
  EXPECT_EQ(index.size(), 100u);
  EXPECT_EQ(index.first_offset(), 900u);
  EXPECT_EQ(index.Find("id-899"), std::nullopt);
  EXPECT_THAT(index.Find("id-900"), Optional(Eq(900u)));
  EXPECT_EQ(index.EvictOldest(500), 0u);
}

TEST(DedupeIndex, CostsAboutTwentyFourBytesAnId) {
  // The budget is enforced against MemoryBytes(): it must track the ids.
  DedupeIndex index;
  for (uint64_t i = 0; i < 100000; ++i) index.Insert(absl::StrCat("order-", i), i);
  EXPECT_EQ(index.MemoryBytes(), 100000u * DedupeIndex::kBytesPerId);
  index.EvictBelow(50000);
  EXPECT_EQ(index.MemoryBytes(), 50000u * DedupeIndex::kBytesPerId);
}

TEST(DedupeIndex, SurvivesPositionsWrappingPast32Bits) {
  DedupeIndex index;
  const uint64_t base = (uint64_t{1} << 32) - 3;
  for (uint64_t i = 0; i < 8; ++i) index.Insert(absl::StrCat("id-", i), base + i);
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_THAT(index.Find(absl::StrCat("id-", i)), Optional(Eq(base + i))) << i;
  }
  index.EvictBelow(base + 4);
  EXPECT_EQ(index.Find("id-3"), std::nullopt);
  EXPECT_THAT(index.Find("id-7"), Optional(Eq(base + 7)));
}

// The writer's path (one probe), across the same boundary, with gaps.
TEST(DedupeIndex, FindOrInsertSurvivesPositionsWrappingPast32Bits) {
  DedupeIndex index;
  const uint64_t base = (uint64_t{1} << 32) - 3;
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(index.FindOrInsert(DedupeIndex::KeyOf(absl::StrCat("id-", i)), base + 2 * i),
              std::nullopt);
  }
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_THAT(index.FindOrInsert(DedupeIndex::KeyOf(absl::StrCat("id-", i)), base + 100),
                Optional(Eq(base + 2 * i)))
        << i;
  }
  EXPECT_EQ(index.size(), 8u);
  index.EvictBelow(base + 8);
  EXPECT_EQ(index.Find("id-3"), std::nullopt);
  EXPECT_THAT(index.Find("id-4"), Optional(Eq(base + 8)));
}

}  // namespace
}  // namespace relay::broker
