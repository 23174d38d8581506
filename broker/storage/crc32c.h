#ifndef RELAY_BROKER_STORAGE_CRC32C_H_
#define RELAY_BROKER_STORAGE_CRC32C_H_

// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected), as in iSCSI, ext4
// and LevelDB. Uses the SSE4.2 instruction when the CPU has it, else a
// slicing-by-8 table.
//
//   uint32_t crc = crc32c::Value(data.data(), data.size());
//   crc = crc32c::Extend(crc, more.data(), more.size());  // == Value(data + more)
//   StoreLE32(header, crc32c::Mask(crc));                 // what goes on disk

#include <cstddef>
#include <cstdint>

namespace relay::broker::crc32c {

// The CRC of concat(A, data[0, n)) where `init_crc` is the CRC of A.
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);

// The CRC of data[0, n).
inline uint32_t Value(const char* data, size_t n) { return Extend(0, data, n); }

// Extend() without the hardware path, for tests.
uint32_t ExtendPortable(uint32_t init_crc, const char* data, size_t n);

// A CRC of bytes that themselves contain CRCs is weak; store Mask(crc)
// instead, as LevelDB does (rotate and add a constant).
inline constexpr uint32_t kMaskDelta = 0xa282ead8u;

inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace relay::broker::crc32c

#endif  // RELAY_BROKER_STORAGE_CRC32C_H_
