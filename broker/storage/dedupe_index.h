#ifndef RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_
#define RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace relay::broker {

// DedupeIndex maps the event ids of one topic's dedupe window to their
// offsets (the idempotent-producer rule). It stores a 128-bit hash of each id
// instead of the id, so an entry costs ~50 bytes whatever the id's length;
// two distinct ids colliding is as likely as a random 128-bit match (about
// n^2 / 2^129 for n ids), i.e. never in practice.
//
// Entries are evicted in offset order: the owner calls EvictBelow() with the
// first offset still inside the window.
//
// Not thread-safe (the event log's writer thread owns it).
class DedupeIndex {
 public:
  // What the index keeps of an id: a 128-bit hash (MurmurHash3_x64_128).
  struct Key {
    uint64_t lo;
    uint64_t hi;
    bool operator==(const Key& other) const { return lo == other.lo && hi == other.hi; }
    template <typename H>
    friend H AbslHashValue(H h, const Key& key) {
      return H::combine(std::move(h), key.lo);  // already a good hash
    }
  };

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

  size_t size() const { return by_key_.size(); }

 private:
  struct Entry {
    Key key;
    uint64_t offset;
  };

  absl::flat_hash_map<Key, uint64_t> by_key_;
  std::deque<Entry> by_offset_;  // ascending offsets
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_DEDUPE_INDEX_H_
