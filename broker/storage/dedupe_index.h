#ifndef RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_
#define RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace relay::broker {

// DedupeIndex maps the event ids of one topic's dedupe window to their
// offsets (the idempotent-producer rule). It stores a 128-bit hash of each id
// instead of the id; two distinct ids colliding is as likely as a random
// 128-bit match (about n^2 / 2^129 for n ids), i.e. never in practice.
//
// Layout, for a small cost per id (about 24 bytes, against 77 for a map of
// key -> offset beside a queue): the keys sit in a ring by offset (16 bytes
// each, offsets without an id hold an empty slot), and a hash set holds only
// 32-bit positions into that ring, hashed and compared through the ring.
//
// Entries are evicted in offset order: the owner calls EvictBelow() with the
// first offset still inside the window, or EvictOldest() to fit a memory
// budget.
//
// Not thread-safe (the event log's writer thread owns it). Not movable: the
// set's functors point at the index.
class DedupeIndex {
 public:
  // What the index keeps of an id: a 128-bit hash (MurmurHash3_x64_128).
  struct Key {
    uint64_t lo;
    uint64_t hi;
    bool operator==(const Key& other) const { return lo == other.lo && hi == other.hi; }
  };

  DedupeIndex();
  DedupeIndex(const DedupeIndex&) = delete;
  DedupeIndex& operator=(const DedupeIndex&) = delete;

  // The key of `id`. Pure, thread-safe: compute it off the owner's thread.
  static Key KeyOf(absl::string_view id);

  // The offset stored for `id`, if any.
  std::optional<uint64_t> Find(absl::string_view id) const;

  // Stores `id` at `offset` (replacing an older entry for the same id).
  // REQUIRES: `offset` is above every offset inserted before.
  void Insert(absl::string_view id, uint64_t offset);

  // Find() and, when absent, Insert() in one lookup: returns the stored
  // offset of the id whose key is `key`, or nullopt after storing `offset`.
  // REQUIRES: `offset` is above every offset inserted before.
  std::optional<uint64_t> FindOrInsert(const Key& key, uint64_t offset);

  // Forgets every entry with an offset below `offset`.
  void EvictBelow(uint64_t offset);

  // Forgets the oldest entries until at most `ids` remain; returns how many
  // ids it forgot.
  size_t EvictOldest(size_t ids);

  // Ids remembered.
  size_t size() const { return set_.size(); }
  // Offset of the oldest remembered slot (meaningful when size() > 0).
  uint64_t first_offset() const { return base_; }
  // Bytes the index holds on the heap, approximately: the ring and the
  // set's table at its usual load. A budget enforced with EvictOldest()
  // against this bounds the real size too: the table grows with the ids,
  // and evicting shrinks it once it is under 1/4 full.
  size_t MemoryBytes() const;
  // Slots in the set's table (its real size, where MemoryBytes() counts
  // ids).
  size_t table_slots() const { return set_.capacity(); }
  // What one more id costs, approximately, at the current load.
  static constexpr size_t kBytesPerId = 24;

 private:
  // Positions are offsets modulo 2^32: the ring never spans more.
  using Position = uint32_t;

  struct Hash {
    using is_transparent = void;
    const DedupeIndex* index;
    size_t operator()(Position p) const { return index->KeyAt(p).lo; }
    size_t operator()(const Key& k) const { return k.lo; }  // already a good hash
  };
  struct Eq {
    using is_transparent = void;
    const DedupeIndex* index;
    bool operator()(Position a, Position b) const { return a == b; }
    bool operator()(Position a, const Key& k) const { return index->KeyAt(a) == k; }
    bool operator()(const Key& k, Position a) const { return index->KeyAt(a) == k; }
  };

  const Key& KeyAt(Position p) const {
    return ring_[static_cast<Position>(p - static_cast<Position>(base_))];
  }
  // Appends `key` at `offset` (empty slots fill any gap) and indexes it.
  void Push(const Key& key, uint64_t offset);
  void PopFront();
  // After evicting: shrinks the table to fit when it is under 1/4 full, so
  // memory follows the window down (the set never shrinks on erase).
  void ShrinkIfSparse();

  std::deque<Key> ring_;  // ring_[i] is the key of offset base_ + i
  uint64_t base_ = 0;
  absl::flat_hash_set<Position, Hash, Eq> set_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_
