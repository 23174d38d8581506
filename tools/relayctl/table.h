#ifndef RELAY_TOOLS_RELAYCTL_TABLE_H_
#define RELAY_TOOLS_RELAYCTL_TABLE_H_

// A plain-text table for people: a header row, columns padded to their
// widest cell and separated by two spaces, numbers right-aligned, no
// trailing spaces. Widths count UTF-8 code points, not bytes.
//
//   Table table({{"SKU"}, {"NAME"}, {"AVAILABLE", Table::kRight}});
//   table.AddRow({"KB-1", "Keyboard", "12"});
//   table.Render(std::cout);
//   // SKU   NAME      AVAILABLE
//   // KB-1  Keyboard         12
//
// Not thread-safe.

#include <ostream>
#include <string>
#include <vector>

namespace relay::ctl {

class Table {
 public:
  enum Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // REQUIRES: `cells` has one entry per column.
  void AddRow(std::vector<std::string> cells);

  size_t rows() const { return rows_.size(); }

  // Writes the header and every row, one line each.
  void Render(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// The display width of `text`: its number of UTF-8 code points.
size_t DisplayWidth(const std::string& text);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_TABLE_H_
