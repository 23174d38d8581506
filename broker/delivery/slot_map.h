#ifndef RELAY_BROKER_DELIVERY_SLOT_MAP_H_
#define RELAY_BROKER_DELIVERY_SLOT_MAP_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"

namespace relay::broker {

// An ordered map from offsets to values, for a consumer group's window: the
// btree holds only (offset, slot), 16 bytes, and the values live in a
// vector of slots reused through a free list. An absl btree node aims at
// 256 bytes and holds at least four entries: with the scheduler's events as
// values (88 bytes with the offset) it holds four in a larger node, with
// StoredEvents (40) six, and every insert and erase shifts those values
// within their node; with (offset, slot) entries it holds fifteen, and the
// tree is shallower. References to values last until the next Insert() (which
// may grow the vector) or the value's own erase(). When the map empties
// with more than kKeptSlots slots (after a burst) the vector is given back.
//
//   SlotMap<Event> events;
//   auto it = events.Insert(offset, Event{...});
//   events.value(it).state = ...;
//   it = events.erase(it);  // the entry after
//
// Not thread-safe.
template <typename V>
class SlotMap {
 public:
  using Index = absl::btree_map<uint64_t, uint32_t>;
  using iterator = Index::iterator;
  using const_iterator = Index::const_iterator;

  static constexpr size_t kKeptSlots = 1024;

  iterator begin() { return index_.begin(); }
  iterator end() { return index_.end(); }
  const_iterator begin() const { return index_.begin(); }
  const_iterator end() const { return index_.end(); }
  bool empty() const { return index_.empty(); }
  size_t size() const { return index_.size(); }
  iterator find(uint64_t key) { return index_.find(key); }
  const_iterator find(uint64_t key) const { return index_.find(key); }

  // The value of an entry.
  V& value(iterator it) { return slots_[it->second]; }
  const V& value(const_iterator it) const { return slots_[it->second]; }

  // Inserts `key`, which must not be present, with `value`. Cheapest for a
  // key larger than every other (the end is the hint).
  iterator Insert(uint64_t key, V value) {
    uint32_t slot;
    if (free_.empty()) {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.push_back(std::move(value));
    } else {
      slot = free_.back();
      free_.pop_back();
      slots_[slot] = std::move(value);
    }
    return index_.insert(index_.end(), {key, slot});
  }

  // Removes the entry (its value reset to V()); returns the entry after it.
  iterator erase(iterator it) {
    const uint32_t slot = it->second;
    slots_[slot] = V();
    free_.push_back(slot);
    iterator after = index_.erase(it);
    if (index_.empty() && slots_.size() > kKeptSlots) {
      std::vector<V>().swap(slots_);
      std::vector<uint32_t>().swap(free_);
    }
    return after;
  }

  // find(key), trying the entry at `hint` first: callers that walk keys in
  // ascending order pass the entry after the last one they used.
  iterator FindFrom(iterator hint, uint64_t key) {
    return hint != index_.end() && hint->first == key ? hint : index_.find(key);
  }

 private:
  Index index_;
  std::vector<V> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_DELIVERY_SLOT_MAP_H_
