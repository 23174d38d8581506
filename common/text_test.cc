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

TEST(Utf8Prefix, KeepsShortTextAndCutsLongTextOnACharacterBoundary) {
  EXPECT_EQ(Utf8Prefix("abc", 5), "abc");
  EXPECT_EQ(Utf8Prefix("abcdef", 3), "abc");
  // "é" is two bytes (C3 A9): a cut after its first byte backs up before it.
  EXPECT_EQ(Utf8Prefix("ab\xC3\xA9z", 3), "ab");
  EXPECT_EQ(Utf8Prefix("ab\xC3\xA9z", 4), "ab\xC3\xA9");
  EXPECT_EQ(Utf8Prefix("", 0), "");
}

TEST(Excerpt, ReplacesControlCharacters) { EXPECT_EQ(Excerpt("a\nb\x1b"), "'a?b?'"); }

}  // namespace
}  // namespace relay
