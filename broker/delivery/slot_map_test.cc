#include "broker/delivery/slot_map.h"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::broker {
namespace {

// Every entry of `m`, in order.
std::vector<std::pair<uint64_t, std::string>> Entries(SlotMap<std::string>& m) {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (auto it = m.begin(); it != m.end(); ++it) out.emplace_back(it->first, m.value(it));
  return out;
}

TEST(SlotMap, ErasingReturnsTheNextEntryAndFreedSlotsAreReusedClean) {
  SlotMap<std::string> m;
  for (uint64_t k = 10; k < 15; ++k) m.Insert(k, "v" + std::to_string(k));
  auto it = m.erase(m.find(11));
  ASSERT_NE(it, m.end());
  EXPECT_EQ(it->first, 12u);
  EXPECT_EQ(m.value(it), "v12");
  it = m.erase(m.find(14));
  EXPECT_EQ(it, m.end());
  // The two freed slots take new values; nothing of the old ones shows.
  m.Insert(20, "");
  m.Insert(21, "v21");
  EXPECT_EQ(Entries(m), (std::vector<std::pair<uint64_t, std::string>>{
                            {10, "v10"}, {12, "v12"}, {13, "v13"}, {20, ""}, {21, "v21"}}));
}

TEST(SlotMap, FindFromTriesTheHintThenSearches) {
  SlotMap<std::string> m;
  for (uint64_t k = 0; k < 100; k += 2) m.Insert(k, std::to_string(k));
  auto hint = m.find(40);
  EXPECT_EQ(m.FindFrom(hint, 40), hint);
  EXPECT_EQ(m.FindFrom(hint, 42)->first, 42u);  // not the hint: found anyway
  EXPECT_EQ(m.FindFrom(hint, 41), m.end());
  EXPECT_EQ(m.FindFrom(m.end(), 8)->first, 8u);
}

// Random inserts (ascending keys, as a window takes events) and erases
// (anywhere) against std::map, through bursts that empty the map.
TEST(SlotMap, RandomOperationsMatchAnOrderedMap) {
  std::mt19937 rng(7);
  SlotMap<std::string> m;
  std::map<uint64_t, std::string> want;
  uint64_t next = 0;
  for (int step = 0; step < 3000; ++step) {
    const int op = std::uniform_int_distribution<int>(0, 9)(rng);
    if (op < 5 || want.empty()) {
      const int n = op == 0 && step % 10 == 0 ? 2000 : 1;  // now and then a burst
      for (int i = 0; i < n; ++i, ++next) {
        const std::string v(next % 40, static_cast<char>('a' + next % 26));
        m.Insert(next, v);
        want.emplace(next, v);
      }
    } else {
      auto w = want.begin();
      std::advance(w, std::uniform_int_distribution<size_t>(0, want.size() - 1)(rng));
      auto after = m.erase(m.find(w->first));
      w = want.erase(w);
      ASSERT_EQ(after == m.end(), w == want.end());
      if (w != want.end()) {
        ASSERT_EQ(after->first, w->first);
      }
      if (op == 9) {  // drain it all now and then
        while (!m.empty()) m.erase(m.begin());
        want.clear();
      }
    }
    ASSERT_EQ(m.size(), want.size());
  }
  std::vector<std::pair<uint64_t, std::string>> expected(want.begin(), want.end());
  EXPECT_EQ(Entries(m), expected);
}

}  // namespace
}  // namespace relay::broker
