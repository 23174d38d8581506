// Relay's ThreadSanitizer build only: force-included (-include) into
// Abseil's low_level_alloc.cc by cmake/RelayTsan.cmake; see docs/TSAN.md.
//
// TSan's mmap() interceptor records the fresh pages as written by the mapping
// thread. absl::Mutex allocates a thread's ThreadIdentity (its wait
// semaphore) from those pages, and absl::Mutex's TSan annotations make TSan
// ignore the synchronization by which another thread later finds that
// identity to wake it, so the waker's atomic futex update is reported as a
// race with mmap (google/sanitizers#953, abseil-cpp#217/#760/#1239). Anonymous
// pages are zero-filled and unaccessed: mapping them under
// IGNORE_READS_AND_WRITES makes TSan reset their shadow instead of recording
// a write, which removes the false report without hiding anything else.
#ifndef RELAY_TSAN_LOW_LEVEL_ALLOC_PRELUDE_H_
#define RELAY_TSAN_LOW_LEVEL_ALLOC_PRELUDE_H_

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>

#include "absl/base/dynamic_annotations.h"

namespace relay_tsan {
inline void* MmapFreshPages(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) {
  ABSL_ANNOTATE_IGNORE_READS_AND_WRITES_BEGIN();
  void* pages = ::mmap(addr, length, prot, flags, fd, offset);
  ABSL_ANNOTATE_IGNORE_READS_AND_WRITES_END();
  return pages;
}
}  // namespace relay_tsan

// low_level_alloc.cc's only mmap() calls are its arena growth.
#define mmap(...) ::relay_tsan::MmapFreshPages(__VA_ARGS__)

#endif  // RELAY_TSAN_LOW_LEVEL_ALLOC_PRELUDE_H_
