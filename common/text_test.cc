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

TEST(IsUtf8, TakesWellFormedTextOnly) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("KB-1"));
  EXPECT_TRUE(IsUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_TRUE(IsUtf8("\xf4\x8f\xbf\xbf"));                           // U+10FFFF
  EXPECT_FALSE(IsUtf8("\xe9"));                                      // Latin-1 é
  EXPECT_FALSE(IsUtf8("\xff"));
  EXPECT_FALSE(IsUtf8("\x80"));              // a continuation byte first
  EXPECT_FALSE(IsUtf8("\xc3"));              // cut short
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

TEST(ControlsReplaced, KeepsTheRest) {
  EXPECT_EQ(ControlsReplaced("stock: no \x1b[2Jroom\n"), "stock: no ?[2Jroom?");
  EXPECT_EQ(ControlsReplaced("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(Excerpt, ReplacesControlCharacters) { EXPECT_EQ(Excerpt("a\nb\x1b"), "'a?b?'"); }

}  // namespace
}  // namespace relay
