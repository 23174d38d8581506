#include "common/worker.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace relay {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(10);

// Counts passes; waits for a count with a deadline.
class Counter {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++n_;
  }
  int Get() {
    absl::MutexLock lock(&mu_);
    return n_;
  }
  bool WaitFor(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n] {
      mu_.AssertHeld();
      return n_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kDeadline);
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(WorkerTest, FirstPassRunsAtStartThenAtTheIntervalItReturns) {
  Counter passes;
  Worker w("test", [&] {
    passes.Add();
    return absl::Milliseconds(1);
  });
  w.Start();
  EXPECT_TRUE(passes.WaitFor(5));
}

TEST(WorkerTest, InfiniteWaitRunsOnlyWhenWoken) {
  Counter passes;
  absl::Notification first;
  Worker w("test", [&] {
    passes.Add();
    if (!first.HasBeenNotified()) first.Notify();
    return absl::InfiniteDuration();
  });
  w.Start();
  ASSERT_TRUE(first.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_EQ(passes.Get(), 1);
  w.Wake();
  EXPECT_TRUE(passes.WaitFor(2));
  w.Wake();
  EXPECT_TRUE(passes.WaitFor(3));
  w.Stop();
  EXPECT_EQ(passes.Get(), 3);
}

TEST(WorkerTest, FirstWaitDelaysTheFirstPassUntilWoken) {
  Counter passes;
  Worker w("test", [&] {
    passes.Add();
    return absl::InfiniteDuration();
  });
  w.Start(absl::InfiniteDuration());
  w.Wake();
  EXPECT_TRUE(passes.WaitFor(1));
}

TEST(WorkerTest, WakeDuringAPassIsNotLost) {
  Counter passes;
  absl::Notification in_pass, release;
  Worker w("test", [&] {
    passes.Add();
    if (!in_pass.HasBeenNotified()) {
      in_pass.Notify();
      release.WaitForNotification();
    }
    return absl::InfiniteDuration();
  });
  w.Start();
  ASSERT_TRUE(in_pass.WaitForNotificationWithTimeout(kDeadline));
  w.Wake();  // while the first pass runs
  release.Notify();
  EXPECT_TRUE(passes.WaitFor(2));
}

TEST(WorkerTest, StopWaitsForTheRunningPassWhichSeesStopping) {
  absl::Notification in_pass;
  std::atomic<bool> saw_stopping{false};
  std::atomic<bool> finished{false};
  Worker w("test", [&] {
    in_pass.Notify();
    // A batch loop: runs until told to stop.
    while (!w.stopping()) std::this_thread::yield();
    saw_stopping = true;
    finished = true;
    return absl::ZeroDuration();
  });
  w.Start();
  ASSERT_TRUE(in_pass.WaitForNotificationWithTimeout(kDeadline));
  w.Stop();
  EXPECT_TRUE(saw_stopping.load());
  EXPECT_TRUE(finished.load());
}

TEST(WorkerTest, StopIsIdempotentConcurrentAndFineWithoutStart) {
  Worker never("test", [] { return absl::ZeroDuration(); });
  never.Stop();
  never.Stop();
  never.Start();  // after Stop: no effect
  EXPECT_TRUE(never.stopping());

  Counter passes;
  Worker w("test", [&] {
    passes.Add();
    return absl::Milliseconds(1);
  });
  w.Start();
  ASSERT_TRUE(passes.WaitFor(1));
  std::thread a([&] { w.Stop(); });
  std::thread b([&] { w.Stop(); });
  a.join();
  b.join();
  const int after = passes.Get();
  w.Stop();
  EXPECT_EQ(passes.Get(), after);
}

TEST(WorkerTest, SecondStartIsIgnored) {
  Counter passes;
  Worker w("test", [&] {
    passes.Add();
    return absl::InfiniteDuration();
  });
  w.Start();
  w.Start();
  ASSERT_TRUE(passes.WaitFor(1));
  w.Stop();
  EXPECT_EQ(passes.Get(), 1);
}

}  // namespace
}  // namespace relay
