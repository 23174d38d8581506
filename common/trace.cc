#include "common/trace.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace relay {
namespace {

bool IsLowerHex(absl::string_view s, size_t size) {
  if (s.size() != size) return false;
  bool nonzero = false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    if (c != '0') nonzero = true;
  }
  return nonzero || size == 2;  // flags may be 00
}

}  // namespace

bool IsTraceId(absl::string_view id) { return IsLowerHex(id, 32); }

std::optional<TraceParent> ParseTraceparent(absl::string_view h) {
  // 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  if (h.size() != 55 || h.substr(0, 3) != "00-" || h[35] != '-' || h[52] != '-') {
    return std::nullopt;
  }
  TraceParent t{std::string(h.substr(3, 32)), std::string(h.substr(36, 16)),
                std::string(h.substr(53, 2))};
  if (!IsLowerHex(t.trace_id, 32) || !IsLowerHex(t.parent_id, 16) || !IsLowerHex(t.flags, 2)) {
    return std::nullopt;
  }
  return t;
}

std::string FormatTraceparent(const TraceParent& t) {
  return absl::StrCat("00-", t.trace_id, "-", t.parent_id, "-", t.flags);
}

std::string NewSpanId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  uint64_t v = 0;
  {
    absl::MutexLock lock(&mu);
    while (v == 0) v = absl::Uniform<uint64_t>(*gen);
  }
  return absl::StrFormat("%016x", v);
}

std::string ChildTraceparent(absl::string_view cause) {
  std::optional<TraceParent> t = ParseTraceparent(cause);
  if (!t.has_value()) return "";
  t->parent_id = NewSpanId();
  return FormatTraceparent(*t);
}

}  // namespace relay
