#include "common/text.h"

#include <cstdint>

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
    out.push_back(IsControl(text[i]) ? '?' : text[i]);
  }
  out.push_back('\'');
  if (n < text.size()) absl::StrAppend(&out, "…(", text.size(), " bytes)");
  return out;
}

std::string ControlsReplaced(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (IsControl(c)) c = '?';
  }
  return out;
}

bool IsUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;  // a continuation byte first, or 0xF8 and up
    }
    if (text.size() - i < n) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace relay
