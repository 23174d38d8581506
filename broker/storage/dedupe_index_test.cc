#include "broker/storage/dedupe_index.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

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

TEST(DedupeIndex, ItsTableShrinksWhenTheWindowDoes) {
  DedupeIndex index;
  for (uint64_t i = 0; i < 100000; ++i) index.Insert(absl::StrCat("order-", i), i);
  const size_t full = index.table_slots();
  EXPECT_GE(full, 100000u);
  index.EvictBelow(99900);
  EXPECT_LE(index.table_slots(), 1024u) << "of " << full;
  EXPECT_THAT(index.Find("order-99950"), Optional(Eq(99950u)));
  EXPECT_EQ(index.EvictOldest(0), 100u);
  EXPECT_EQ(index.table_slots(), 0u);
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

// Every operation, checked against a plain map of id -> offset after each
// step, on a window of a few dozen to a few hundred ids that grows and
// shrinks (to nothing, now and then) many times over.
TEST(DedupeIndex, AgreesWithAMapThroughGrowingShrinkingAndEvicting) {
  std::mt19937_64 random(20261130);
  auto below = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random); };
  DedupeIndex index;
  std::map<std::string, uint64_t> model;  // id -> offset
  auto evict_model_below = [&](uint64_t offset) {
    for (auto it = model.begin(); it != model.end();) {
      it = it->second < offset ? model.erase(it) : std::next(it);
    }
  };
  uint64_t next = 0;
  for (int step = 0; step < 60000; ++step) {
    const std::string id = absl::StrCat("id-", below(step % 5000 < 2500 ? 60 : 400));
    const uint64_t op = below(100);
    if (op < 70) {  // the writer's path
      next += 1 + below(3);  // offsets without ids between some
      const std::optional<uint64_t> found = index.FindOrInsert(DedupeIndex::KeyOf(id), next);
      auto it = model.find(id);
      if (it != model.end()) {
        ASSERT_THAT(found, Optional(Eq(it->second))) << "step " << step;
      } else {
        ASSERT_EQ(found, std::nullopt) << "step " << step;
        model[id] = next;
      }
    } else if (op < 85) {  // recovery's path: a later copy replaces the entry
      index.Insert(id, ++next);
      model[id] = next;
    } else if (op < 97) {
      // Keep a window of the last 20-200 offsets, shrinking it now and then
      // to nothing.
      const uint64_t keep = below(10) == 0 ? 0 : 20 + below(180);
      const uint64_t from = next + 1 > keep ? next + 1 - keep : 0;
      index.EvictBelow(from);
      evict_model_below(from);
    } else {
      const size_t keep = below(40);
      std::vector<uint64_t> offsets;
      for (const auto& [unused, offset] : model) offsets.push_back(offset);
      std::sort(offsets.begin(), offsets.end());
      const size_t forget = offsets.size() > keep ? offsets.size() - keep : 0;
      ASSERT_EQ(index.EvictOldest(keep), forget) << "step " << step;
      if (forget > 0) evict_model_below(offsets[forget - 1] + 1);
    }
    ASSERT_EQ(index.size(), model.size()) << "step " << step;
    if (step % 16 == 0) {
      for (uint64_t i = 0; i < 400; ++i) {
        const std::string probe = absl::StrCat("id-", i);
        auto it = model.find(probe);
        if (it == model.end()) {
          ASSERT_EQ(index.Find(probe), std::nullopt) << probe << " step " << step;
        } else {
          ASSERT_THAT(index.Find(probe), Optional(Eq(it->second))) << probe << " step " << step;
        }
      }
    }
  }
}

}  // namespace
}  // namespace relay::broker
