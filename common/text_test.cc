#include "common/text.h"

#include <string>

#include "gtest/gtest.h"

namespace relay {
namespace {

TEST(Excerpt, QuotesShortTextWhole) { EXPECT_EQ(Excerpt("GPU-1"), "'GPU-1'"); }

TEST(Excerpt, CutsLongTextAndSaysHowLongItWas) {
  EXPECT_EQ(Excerpt(std::string(2 << 20, 'x'), 4), "'xxxx'…(2097152 bytes)");
}

TEST(Excerpt, NeverCutsInsideAUtf8Sequence) {
  // "aé" is 61 c3 a9: cutting after 2 bytes would split é.
  EXPECT_EQ(Excerpt("a\xc3\xa9zzz", 2), "'a'…(6 bytes)");
}

TEST(Excerpt, ReplacesControlCharacters) { EXPECT_EQ(Excerpt("a\nb\x1b"), "'a?b?'"); }

}  // namespace
}  // namespace relay
