#include "common/text.h"

#include "absl/strings/str_cat.h"

namespace relay {

absl::string_view Utf8Prefix(absl::string_view text, size_t max) {
  size_t n = text.size() <= max ? text.size() : max;
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  if (n < text.size()) {
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  }
  return text.substr(0, n);
}

std::string Excerpt(absl::string_view text, size_t max) {
  const size_t n = Utf8Prefix(text, max).size();
  std::string out = "'";
  out.reserve(n + 24);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
  }
  out.push_back('\'');
  if (n < text.size()) absl::StrAppend(&out, "…(", text.size(), " bytes)");
  return out;
}

}  // namespace relay
