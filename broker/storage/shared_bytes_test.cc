#include "broker/storage/shared_bytes.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace relay::broker {
namespace {

TEST(SharedBytes, CopiesShareTheBytesAndOutliveTheMaker) {
  SharedBytes copy;
  {
    SharedBytes b = SharedBytes::Allocate(3, 8);
    b.mutable_data()[0] = 'a';
    b.mutable_data()[1] = 'b';
    b.mutable_data()[2] = 'c';
    b.Append("de");
    b.Append("");
    EXPECT_EQ(b.view(), "abcde");
    copy = b;
    EXPECT_EQ(copy.view().data(), b.view().data());
  }
  EXPECT_EQ(copy.view(), "abcde");
  SharedBytes moved = std::move(copy);
  EXPECT_EQ(moved.view(), "abcde");
  EXPECT_EQ(copy.size(), 0u);  // NOLINT(bugprone-use-after-move): a moved-from one is empty
  EXPECT_EQ(SharedBytes().view(), "");
  EXPECT_EQ(SharedBytes::Copy("").size(), 0u);
  EXPECT_EQ(SharedBytes::Copy(std::string(100000, 'x')).size(), 100000u);
}

// Copies dropped on many threads at once free the bytes once (the sanitizer
// builds check the count's ordering).
TEST(SharedBytes, CopiesDroppedOnManyThreadsFreeOnce) {
  for (int round = 0; round < 50; ++round) {
    SharedBytes b = SharedBytes::Copy(std::string(64, 'z'));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([copy = b]() mutable {
        std::vector<SharedBytes> more(100, copy);
        EXPECT_EQ(more.back().view(), std::string(64, 'z'));
      });
    }
    b = SharedBytes();
    for (std::thread& t : threads) t.join();
  }
}

}  // namespace
}  // namespace relay::broker
