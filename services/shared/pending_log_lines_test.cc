#include "services/shared/pending_log_lines.h"

#include <vector>

#include "gtest/gtest.h"

namespace relay::services {
namespace {

events::v1::Event WithId(const std::string& id) {
  events::v1::Event e;
  e.set_id(id);
  return e;
}

TEST(PendingLogLines, WritesANotedLineOnceItsTransactionCommitted) {
  PendingLogLines lines;
  std::vector<std::string> written;
  lines.Note("e1", [&] { written.push_back("e1"); });
  lines.Note("e2", [&] { written.push_back("e2"); });
  EXPECT_TRUE(lines.Committed(WithId("e2")));
  EXPECT_FALSE(lines.Committed(WithId("e2")));  // once
  EXPECT_TRUE(lines.Committed(WithId("e1")));
  EXPECT_EQ(written, (std::vector<std::string>{"e2", "e1"}));
}

TEST(PendingLogLines, ForgetsLinesOfRolledBackTransactions) {
  PendingLogLines lines;
  int written = 0;
  lines.Note("e1", [&] { ++written; });
  lines.DropUncommitted();
  EXPECT_FALSE(lines.Committed(WithId("e1")));
  EXPECT_EQ(written, 0);
}

TEST(PendingLogLines, AnEventNobodyNotedHasNoLine) {
  PendingLogLines lines;
  EXPECT_FALSE(lines.Committed(WithId("nope")));
}

}  // namespace
}  // namespace relay::services
