#include "common/ids.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/random/uniform_int_distribution.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace relay {
namespace {

using Uuid = std::array<uint8_t, 16>;

// Generation state shared by the process: the clock's last millisecond and
// the counter within it (RFC 9562 §6.2, method 1).
class Generator {
 public:
  Uuid Next() {
    absl::MutexLock lock(&mu_);
    int64_t now_ms = absl::ToUnixMillis(absl::Now());
    if (now_ms > last_ms_) {
      last_ms_ = now_ms;
      // Start low in the 12-bit space so the counter rarely overflows.
      counter_ = absl::Uniform<uint32_t>(gen_, 0, 1u << 11);
    } else if (++counter_ > 0xfff) {
      // More than the counter holds in one millisecond (or the clock went
      // back): borrow the next millisecond to stay ordered.
      ++last_ms_;
      counter_ = absl::Uniform<uint32_t>(gen_, 0, 1u << 11);
    }
    uint64_t random = absl::Uniform<uint64_t>(gen_);
    const uint64_t ms = static_cast<uint64_t>(last_ms_);
    Uuid u;
    for (int i = 0; i < 6; ++i) u[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
    u[6] = static_cast<uint8_t>(0x70 | (counter_ >> 8));  // version 7
    u[7] = static_cast<uint8_t>(counter_);
    u[8] = static_cast<uint8_t>(0x80 | (random >> 58));  // variant 10
    for (int i = 9; i < 16; ++i) u[i] = static_cast<uint8_t>(random >> (8 * (15 - i)));
    return u;
  }

 private:
  absl::Mutex mu_;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
  int64_t last_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t counter_ ABSL_GUARDED_BY(mu_) = 0;
};

Uuid NextUuid() {
  static Generator* const generator = new Generator();  // never destroyed
  return generator->Next();
}

}  // namespace

std::string NewEventId() {
  static constexpr char kHex[] = "0123456789abcdef";
  Uuid u = NextUuid();
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[u[i] >> 4]);
    out.push_back(kHex[u[i] & 0xf]);
  }
  return out;
}

namespace {

constexpr char kCrockford[] = "0123456789abcdefghjkmnpqrstvwxyz";

std::string Base32Of(const Uuid& u) {
  // 128 bits in 26 five-bit digits, most significant first (the first digit
  // holds the top 3 bits).
  char digits[26];
  for (int d = 0; d < 26; ++d) {
    int low_bit = 5 * (25 - d);  // bit index (from the least significant) of the digit
    unsigned value = 0;
    for (int b = 4; b >= 0; --b) {
      int bit = low_bit + b;
      unsigned v = 0;
      if (bit < 128) v = (u[15 - bit / 8] >> (bit % 8)) & 1u;
      value = (value << 1) | v;
    }
    digits[d] = kCrockford[value];
  }
  return std::string(digits, sizeof(digits));
}

}  // namespace

std::string NewId(absl::string_view prefix) {
  return absl::StrCat(prefix, "-", Base32Of(NextUuid()));
}

std::optional<std::string> IdBitsHex(absl::string_view id) {
  const size_t dash = id.rfind('-');
  if (dash == absl::string_view::npos || id.size() - dash - 1 != 26) return std::nullopt;
  Uuid u{};
  for (int d = 0; d < 26; ++d) {
    const char* at = std::strchr(kCrockford, id[dash + 1 + static_cast<size_t>(d)]);
    if (at == nullptr || *at == '\0') return std::nullopt;
    const unsigned value = static_cast<unsigned>(at - kCrockford);
    if (d == 0 && value > 7) return std::nullopt;  // only 3 bits above the 125
    for (int b = 0; b < 5; ++b) {
      const int bit = 5 * (25 - d) + b;
      if (bit < 128 && ((value >> b) & 1u))
        u[15 - bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (uint8_t byte : u) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

std::optional<std::string> IdFromBitsHex(absl::string_view prefix, absl::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  Uuid u{};
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) return std::nullopt;
    u[i / 2] = static_cast<uint8_t>(u[i / 2] | (i % 2 == 0 ? v << 4 : v));
  }
  return absl::StrCat(prefix, "-", Base32Of(u));
}

}  // namespace relay
