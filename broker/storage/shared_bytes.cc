#include "broker/storage/shared_bytes.h"

#include <cassert>
#include <cstring>
#include <new>

namespace relay::broker {

SharedBytes SharedBytes::Allocate(size_t size, size_t capacity) {
  assert(size <= capacity && capacity <= UINT32_MAX);
  SharedBytes b;
  void* memory = ::operator new(sizeof(Rep) + capacity);
  b.rep_ = new (memory) Rep{{1}, static_cast<uint32_t>(size), static_cast<uint32_t>(capacity)};
  return b;
}

SharedBytes SharedBytes::Copy(absl::string_view bytes) {
  SharedBytes b = Allocate(bytes.size(), bytes.size());
  if (!bytes.empty()) std::memcpy(b.mutable_data(), bytes.data(), bytes.size());
  return b;
}

void SharedBytes::Append(absl::string_view more) {
  assert(rep_ != nullptr && rep_->size + more.size() <= rep_->capacity);
  if (!more.empty()) std::memcpy(Data(rep_) + rep_->size, more.data(), more.size());
  rep_->size += static_cast<uint32_t>(more.size());
}

void SharedBytes::Release() {
  if (rep_ == nullptr) return;
  // acq_rel: the last owner sees every other owner's reads done.
  if (rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    rep_->~Rep();
    ::operator delete(rep_);
  }
  rep_ = nullptr;
}

}  // namespace relay::broker
