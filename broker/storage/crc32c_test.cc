#include "broker/storage/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace relay::broker::crc32c {
namespace {

TEST(Crc32c, MatchesStandardVectors) {
  // RFC 3720 (iSCSI) B.4 and the usual check value.
  EXPECT_EQ(Value("123456789", 9), 0xe3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Value(zeros.data(), zeros.size()), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(Value(ones.data(), ones.size()), 0x62a8ab43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(Value(ascending.data(), ascending.size()), 0x46dd794eu);
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) descending[i] = static_cast<char>(31 - i);
  EXPECT_EQ(Value(descending.data(), descending.size()), 0x113fdb5cu);
  EXPECT_EQ(Value("", 0), 0u);
}

TEST(Crc32c, ExtendEqualsValueOfConcatenation) {
  std::string data = "hello, relay: a longer buffer that spans several 8-byte words";
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t crc = Extend(Value(data.data(), split), data.data() + split, data.size() - split);
    EXPECT_EQ(crc, Value(data.data(), data.size())) << "split at " << split;
  }
}

TEST(Crc32c, HardwareAndTableAgreeOnEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string data(1100, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; n + start <= data.size(); n += (n < 40 ? 1 : 97)) {
      ASSERT_EQ(Extend(0x1234u, data.data() + start, n),
                ExtendPortable(0x1234u, data.data() + start, n))
          << "start " << start << " length " << n;
    }
  }
}

TEST(Crc32c, MaskRoundTripsAndChangesTheValue) {
  for (uint32_t crc : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_NE(Mask(crc), crc);
    EXPECT_NE(Mask(Mask(crc)), crc);
    EXPECT_EQ(Unmask(Mask(crc)), crc);
    EXPECT_EQ(Unmask(Unmask(Mask(Mask(crc)))), crc);
  }
}

}  // namespace
}  // namespace relay::broker::crc32c
