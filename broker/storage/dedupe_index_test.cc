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

}  // namespace
}  // namespace relay::broker
