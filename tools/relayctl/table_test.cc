#include "tools/relayctl/table.h"

#include <sstream>

#include "gtest/gtest.h"

namespace relay::ctl {
namespace {

std::string Render(const Table& table) {
  std::ostringstream out;
  table.Render(out);
  return out.str();
}

TEST(Table, PadsColumnsToTheWidestCellAndAlignsNumbersRight) {
  Table table({{"SKU"}, {"NAME"}, {"AVAILABLE", Table::kRight}});
  table.AddRow({"KB-1", "Keyboard", "12"});
  table.AddRow({"MS-22", "Mouse", "3"});
  EXPECT_EQ(Render(table),
            "SKU    NAME      AVAILABLE\n"
            "KB-1   Keyboard         12\n"
            "MS-22  Mouse             3\n");
}

TEST(Table, NeverEndsALineInSpaces) {
  Table table({{"A"}, {"NOTE"}});
  table.AddRow({"x", ""});
  table.AddRow({"long value", "n"});
  EXPECT_EQ(Render(table),
            "A           NOTE\n"
            "x\n"
            "long value  n\n");
}

TEST(Table, WithoutRowsPrintsTheHeader) {
  Table table({{"TOPIC"}, {"EVENTS", Table::kRight}});
  EXPECT_EQ(Render(table), "TOPIC  EVENTS\n");
  EXPECT_EQ(table.rows(), 0u);
}

TEST(Table, CountsUtf8CodePointsNotBytes) {
  Table table({{"NAME"}, {"QTY", Table::kRight}});
  table.AddRow({"Café", "1"});
  table.AddRow({"Tea", "2"});
  EXPECT_EQ(Render(table),
            "NAME  QTY\n"
            "Café    1\n"
            "Tea     2\n");
  EXPECT_EQ(DisplayWidth("Café"), 4u);
}

}  // namespace
}  // namespace relay::ctl
