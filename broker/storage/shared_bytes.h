#ifndef RELAY_BROKER_STORAGE_SHARED_BYTES_H_
#define RELAY_BROKER_STORAGE_SHARED_BYTES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace relay::broker {

// A reference-counted byte string in one allocation: the count, the size
// and the bytes together (a std::shared_ptr<std::string> takes two, and a
// stored event is made for every event published). Copies share the bytes.
// Written only by its maker, before the first copy: Append() fills room
// reserved at Allocate(); after that it is immutable and any thread may read
// it and drop its copy.
//
//   SharedBytes b = SharedBytes::Allocate(n, n + 16);
//   Fill(b.mutable_data(), n);
//   b.Append(trailer);  // trailer.size() <= 16
//   SharedBytes shared = b;  // both see the same bytes
class SharedBytes {
 public:
  SharedBytes() = default;
  SharedBytes(const SharedBytes& other) : rep_(other.rep_) {
    if (rep_ != nullptr) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  SharedBytes(SharedBytes&& other) noexcept : rep_(other.rep_) { other.rep_ = nullptr; }
  SharedBytes& operator=(SharedBytes other) noexcept {
    Rep* old = rep_;
    rep_ = other.rep_;
    other.rep_ = old;
    return *this;
  }
  ~SharedBytes() { Release(); }

  // `size` bytes, their contents unset, with room to Append() up to
  // `capacity` (at least `size`). REQUIRES: capacity < 4 GiB.
  static SharedBytes Allocate(size_t size, size_t capacity);
  static SharedBytes Copy(absl::string_view bytes);

  absl::string_view view() const {
    return rep_ == nullptr ? absl::string_view() : absl::string_view(Data(rep_), rep_->size);
  }
  size_t size() const { return rep_ == nullptr ? 0 : rep_->size; }

  // Writable bytes [0, size()). Only before the first copy.
  char* mutable_data() { return Data(rep_); }
  // Appends `more` in the room Allocate() reserved. Only before the first
  // copy. REQUIRES: size() + more.size() <= the capacity.
  void Append(absl::string_view more);

 private:
  struct Rep {
    std::atomic<uint32_t> refs;
    uint32_t size;
    uint32_t capacity;
  };
  static char* Data(Rep* rep) { return reinterpret_cast<char*>(rep + 1); }
  void Release();

  Rep* rep_ = nullptr;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_SHARED_BYTES_H_
