#include "tools/relayctl/table.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace relay::ctl {

size_t DisplayWidth(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;  // Not a continuation byte.
  }
  return width;
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<std::string> cells) {
  assert(cells.size() == columns_.size());
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> widths(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) widths[i] = DisplayWidth(columns_[i].header);
  for (const std::vector<std::string>& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto render_line = [&](auto cell_at) {
    std::string line;
    for (size_t i = 0; i < columns_.size(); ++i) {
      const std::string& cell = cell_at(i);
      const std::string pad(widths[i] - DisplayWidth(cell), ' ');
      if (i > 0) line += "  ";
      if (columns_[i].align == kRight) {
        line += pad + cell;
      } else {
        line += cell;
        if (i + 1 < columns_.size()) line += pad;
      }
    }
    // The last column may be empty or padded on the left only; never end a
    // line in spaces.
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  };
  render_line([&](size_t i) -> const std::string& { return columns_[i].header; });
  for (const std::vector<std::string>& row : rows_) {
    render_line([&](size_t i) -> const std::string& { return row[i]; });
  }
}

}  // namespace relay::ctl
