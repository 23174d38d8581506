#include "broker/storage/dedupe_index.h"

#include <cstring>

namespace relay::broker {
namespace {

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t Fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

inline uint64_t Load64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr uint64_t kC1 = 0x87c37b91114253d5ull;
constexpr uint64_t kC2 = 0x4cf5ad432745937full;

}  // namespace

// MurmurHash3_x64_128 (Austin Appleby, public domain), seed 0.
DedupeIndex::Key DedupeIndex::KeyOf(absl::string_view id) {
  const auto* data = reinterpret_cast<const unsigned char*>(id.data());
  const size_t len = id.size();
  const size_t blocks = len / 16;
  uint64_t h1 = 0;
  uint64_t h2 = 0;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k1 = Load64(data + 16 * i);
    uint64_t k2 = Load64(data + 16 * i + 8);
    k1 *= kC1;
    k1 = Rotl(k1, 31);
    k1 *= kC2;
    h1 ^= k1;
    h1 = Rotl(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= kC2;
    k2 = Rotl(k2, 33);
    k2 *= kC1;
    h2 ^= k2;
    h2 = Rotl(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  const unsigned char* tail = data + 16 * blocks;
  const size_t rest = len & 15;
  uint64_t k1 = 0;
  uint64_t k2 = 0;
  for (size_t i = rest; i > 8; --i) k2 ^= static_cast<uint64_t>(tail[i - 1]) << (8 * (i - 9));
  if (rest > 8) {
    k2 *= kC2;
    k2 = Rotl(k2, 33);
    k2 *= kC1;
    h2 ^= k2;
  }
  for (size_t i = rest < 8 ? rest : 8; i > 0; --i) {
    k1 ^= static_cast<uint64_t>(tail[i - 1]) << (8 * (i - 1));
  }
  if (rest > 0) {
    k1 *= kC1;
    k1 = Rotl(k1, 31);
    k1 *= kC2;
    h1 ^= k1;
  }
  h1 ^= len;
  h2 ^= len;
  h1 += h2;
  h2 += h1;
  h1 = Fmix(h1);
  h2 = Fmix(h2);
  h1 += h2;
  h2 += h1;
  return Key{h1, h2};
}

std::optional<uint64_t> DedupeIndex::Find(absl::string_view id) const {
  auto it = by_key_.find(KeyOf(id));
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

void DedupeIndex::Insert(absl::string_view id, uint64_t offset) {
  Key key = KeyOf(id);
  by_key_.insert_or_assign(key, offset);
  by_offset_.push_back(Entry{key, offset});
}

std::optional<uint64_t> DedupeIndex::FindOrInsert(const Key& key, uint64_t offset) {
  auto [it, inserted] = by_key_.try_emplace(key, offset);
  if (!inserted) return it->second;
  by_offset_.push_back(Entry{key, offset});
  return std::nullopt;
}

void DedupeIndex::EvictBelow(uint64_t offset) {
  while (!by_offset_.empty() && by_offset_.front().offset < offset) {
    const Entry& entry = by_offset_.front();
    auto it = by_key_.find(entry.key);
    // A later Insert of the same id owns the map entry now.
    if (it != by_key_.end() && it->second == entry.offset) by_key_.erase(it);
    by_offset_.pop_front();
  }
}

}  // namespace relay::broker
