#include "broker/storage/dedupe_index.h"

#include <algorithm>
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
  // {0, 0} marks an offset without an id in the ring (the empty id hashes
  // to it): move it aside.
  if (h1 == 0 && h2 == 0) h2 = 1;
  return Key{h1, h2};
}

namespace {
// The key of an offset without an id; KeyOf() never returns it.
constexpr DedupeIndex::Key kNoKey{0, 0};
}  // namespace

DedupeIndex::DedupeIndex() : set_(0, Hash{this}, Eq{this}) {}

std::optional<uint64_t> DedupeIndex::Find(absl::string_view id) const {
  auto it = set_.find(KeyOf(id));
  if (it == set_.end()) return std::nullopt;
  return base_ + static_cast<Position>(*it - static_cast<Position>(base_));
}

void DedupeIndex::Push(const Key& key, uint64_t offset) {
  if (ring_.empty()) base_ = offset;
  while (base_ + ring_.size() < offset) ring_.push_back(kNoKey);
  // Positions are 32 bits: never hold more than 2^32 - 1 slots.
  while (ring_.size() >= UINT32_MAX) PopFront();
  ring_.push_back(key);
  if (!(key == kNoKey)) set_.insert(static_cast<Position>(offset));
}

void DedupeIndex::Insert(absl::string_view id, uint64_t offset) {
  const Key key = KeyOf(id);
  if (auto it = set_.find(key); it != set_.end()) set_.erase(it);
  Push(key, offset);
}

std::optional<uint64_t> DedupeIndex::FindOrInsert(const Key& key, uint64_t offset) {
  // One probe of the set for both (a find, then Push()'s insert, took two).
  // A resize inside lazy_emplace hashes only the positions already in the
  // ring; the new one's key goes in the ring right after.
  if (!ring_.empty() && offset - base_ >= UINT32_MAX - 1) {
    // The ring would span 2^32 slots and positions wrap: Push() makes room
    // first.
    if (auto it = set_.find(key); it != set_.end()) {
      return base_ + static_cast<Position>(*it - static_cast<Position>(base_));
    }
    Push(key, offset);
    return std::nullopt;
  }
  bool inserted = false;
  auto it = set_.lazy_emplace(key, [&](const auto& construct) {
    inserted = true;
    construct(static_cast<Position>(offset));
  });
  if (!inserted) return base_ + static_cast<Position>(*it - static_cast<Position>(base_));
  if (ring_.empty()) base_ = offset;
  while (base_ + ring_.size() < offset) ring_.push_back(kNoKey);
  ring_.push_back(key);  // at most 2^32 - 2 slots (above)
  return std::nullopt;
}

void DedupeIndex::PopFront() {
  const Position p = static_cast<Position>(base_);
  if (!(ring_.front() == kNoKey)) {
    // A later Insert of the same id owns the set entry now: only erase
    // this exact position.
    if (auto it = set_.find(p); it != set_.end()) set_.erase(it);
  }
  ring_.pop_front();
  ++base_;
}

void DedupeIndex::ShrinkIfSparse() {
  // Rehashing reads the ring for every id: only when the table can at
  // least halve, so its cost stays proportional to the ids evicted.
  if (set_.capacity() > 64 && set_.size() * 4 < set_.capacity()) set_.rehash(0);
}

void DedupeIndex::EvictBelow(uint64_t offset) {
  while (!ring_.empty() && base_ < offset) PopFront();
  if (ring_.empty()) base_ = std::max(base_, offset);
  ShrinkIfSparse();
}

size_t DedupeIndex::EvictOldest(size_t ids) {
  const size_t before = set_.size();
  while (!ring_.empty() && set_.size() > ids) PopFront();
  ShrinkIfSparse();
  return before - set_.size();
}

size_t DedupeIndex::MemoryBytes() const {
  // The set's table at its usual load (about 5 bytes a slot, 60% full); its
  // capacity is not used because it never shrinks on erase.
  return ring_.size() * sizeof(Key) + set_.size() * 8;
}

}  // namespace relay::broker
