#include "common/trace.h"

#include <set>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay {
namespace {

constexpr char kExample[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

TEST(Trace, ParsesAndFormatsAVersion00Traceparent) {
  std::optional<TraceParent> t = ParseTraceparent(kExample);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->trace_id, "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(t->parent_id, "b7ad6b7169203331");
  EXPECT_EQ(t->flags, "01");
  EXPECT_EQ(FormatTraceparent(*t), kExample);
}

TEST(Trace, IgnoresWhatIsNotATraceparent) {
  for (const char* bad : {
           "", "00-abc-def-01",                                        // short
           "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  // version
           "00-00000000000000000000000000000000-b7ad6b7169203331-01",  // zero trace
           "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  // zero parent
           "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  // upper case
           "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",  // separator
           "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  // not hex
       }) {
    EXPECT_FALSE(ParseTraceparent(bad).has_value()) << bad;
  }
}

TEST(Trace, AChildKeepsTheTraceAndFlagsWithANewParent) {
  std::set<std::string> parents;
  for (int i = 0; i < 100; ++i) {
    std::optional<TraceParent> child = ParseTraceparent(ChildTraceparent(kExample));
    ASSERT_TRUE(child.has_value());
    EXPECT_EQ(child->trace_id, "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(child->flags, "01");
    EXPECT_NE(child->parent_id, "b7ad6b7169203331");
    parents.insert(child->parent_id);
  }
  EXPECT_EQ(parents.size(), 100u);
  EXPECT_EQ(ChildTraceparent("garbage"), "");
}

TEST(Trace, AnOrderIdAndItsTraceIdConvertBothWays) {
  for (int i = 0; i < 50; ++i) {
    const std::string order = NewId("ord");
    std::optional<std::string> hex = IdBitsHex(order);
    ASSERT_TRUE(hex.has_value()) << order;
    EXPECT_TRUE(IsTraceId(*hex)) << *hex;
    EXPECT_EQ(IdFromBitsHex("ord", *hex), order);
  }
  EXPECT_FALSE(IdBitsHex("ord-short").has_value());
  EXPECT_FALSE(IdBitsHex("ord-zzzzzzzzzzzzzzzzzzzzzzzzzz").has_value());  // above 128 bits
  EXPECT_FALSE(IdBitsHex("ord-0000000000000000000000000!").has_value());
  EXPECT_FALSE(IdFromBitsHex("ord", "xyz").has_value());
}

}  // namespace
}  // namespace relay
