// BrokerLease against a real nats-server: one holder at a time, takeover
// after a lapse or a release, and a holder told when it lost the lease.

#include "broker/broker_lease.h"

#include <nats/nats.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::NatsServer;
using ::relay::testing::StatusIs;
using ::relay::testing::WaitFor;
using ::testing::HasSubstr;

constexpr absl::Duration kTtl = absl::Seconds(2);
constexpr absl::Duration kWait = absl::Seconds(30);

// The value of the lease key, read with the plain client ("" when missing).
std::string LeaseValue(const std::string& servers) {
  return relay::testing::KvGet(servers, "relay_lease", "active").value_or("");
}

// Overwrites the lease key, as another broker taking it would.
void OverwriteLease(const std::string& servers, const std::string& value) {
  ASSERT_THAT(relay::testing::KvPut(servers, "relay_lease", "active", value), IsOk());
}

// A contender's Acquire() on its own thread.
class Contender {
 public:
  explicit Contender(BrokerLease* lease)
      : thread_([this, lease] {
          status_ = lease->Acquire(&cancel_);
          done_.Notify();
        }) {}
  ~Contender() {
    Cancel();
    thread_.join();
  }
  bool acquired() const { return done_.HasBeenNotified() && status_.ok(); }
  bool WaitDone(absl::Duration timeout) { return done_.WaitForNotificationWithTimeout(timeout); }
  const absl::Status& status() const { return status_; }  // after done
  // From the test's thread only.
  void Cancel() {
    if (!cancel_.HasBeenNotified()) cancel_.Notify();
  }

 private:
  absl::Notification cancel_;
  absl::Notification done_;
  absl::Status status_;
  std::thread thread_;
};

// Keeps `lease` alive and records why it was lost.
class LossWatch {
 public:
  explicit LossWatch(BrokerLease* lease) {
    lease->KeepAlive([this](const std::string& reason) {
      absl::MutexLock lock(&mu_);
      why_ = reason;
      lost_.Notify();
    });
  }
  // The reason, once lost within `timeout`; "" otherwise.
  std::string WaitLost(absl::Duration timeout) {
    if (!lost_.WaitForNotificationWithTimeout(timeout)) return "";
    absl::MutexLock lock(&mu_);
    return why_;
  }

 private:
  absl::Mutex mu_;
  std::string why_ ABSL_GUARDED_BY(mu_);
  absl::Notification lost_;
};

class BrokerLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start();
    ASSERT_THAT(nats, IsOk());
    nats_ = std::move(*nats);
  }

  std::unique_ptr<BrokerLease> Open(const std::string& holder) {
    BrokerLease::Options options;
    options.servers = nats_->urls();
    options.holder = holder;
    options.address = holder + ":7070";
    options.ttl = kTtl;
    absl::StatusOr<std::unique_ptr<BrokerLease>> lease = BrokerLease::Open(options);
    EXPECT_THAT(lease, IsOk());
    return lease.ok() ? std::move(*lease) : nullptr;
  }

  // A lease opened as `holder` that holds the lease (null on failure).
  std::unique_ptr<BrokerLease> Held(const std::string& holder) {
    std::unique_ptr<BrokerLease> lease = Open(holder);
    absl::Notification never;
    if (lease == nullptr || !lease->Acquire(&never).ok()) return nullptr;
    return lease;
  }

  std::unique_ptr<NatsServer> nats_;
};

TEST_F(BrokerLeaseTest, TheFirstBrokerTakesAFreeLeaseAtOnce) {
  std::unique_ptr<BrokerLease> a = Held("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(LeaseValue(nats_->urls()), "a a:7070");
}

// While the holder renews, a contender never gets the lease however long it
// waits (observed over three ttls); when the holder releases it, the
// contender takes it without waiting for a lapse.
TEST_F(BrokerLeaseTest, ARenewedLeaseStaysWithItsHolderUntilReleased) {
  std::unique_ptr<BrokerLease> a = Held("a");
  std::unique_ptr<BrokerLease> b = Open("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::atomic<bool> a_lost{false};
  a->KeepAlive([&](const std::string&) { a_lost = true; });

  Contender contender(b.get());
  EXPECT_FALSE(contender.WaitDone(3 * kTtl));
  EXPECT_EQ(LeaseValue(nats_->urls()), "a a:7070");

  a->Release();
  ASSERT_TRUE(contender.WaitDone(kWait));
  EXPECT_THAT(contender.status(), IsOk());
  EXPECT_EQ(LeaseValue(nats_->urls()), "b b:7070");
  EXPECT_FALSE(a_lost.load());
}

// A holder that stops renewing (a dead broker) loses the lease to a
// contender, but only after the contender saw it unchanged for a ttl.
TEST_F(BrokerLeaseTest, AnUnrenewedLeaseGoesToAContenderAfterTheTtl) {
  std::unique_ptr<BrokerLease> a = Held("a");  // and never renewed
  std::unique_ptr<BrokerLease> b = Open("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  const absl::Time start = absl::Now();
  Contender contender(b.get());
  ASSERT_TRUE(contender.WaitDone(kWait));
  EXPECT_THAT(contender.status(), IsOk());
  EXPECT_GE(absl::Now() - start, kTtl);
  EXPECT_EQ(LeaseValue(nats_->urls()), "b b:7070");
}

// Of several contenders, exactly one wins; when it dies, exactly one of the
// others.
TEST_F(BrokerLeaseTest, OfThreeContendersExactlyOneWins) {
  std::unique_ptr<BrokerLease> leases[3] = {Open("a"), Open("b"), Open("c")};
  for (const auto& lease : leases) ASSERT_NE(lease, nullptr);
  auto contenders = std::make_unique<std::unique_ptr<Contender>[]>(3);
  for (int i = 0; i < 3; ++i) contenders[i] = std::make_unique<Contender>(leases[i].get());
  auto winners = [&] {
    int n = 0;
    for (int i = 0; i < 3; ++i) n += contenders[i]->acquired() ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return winners() == 1; }, kWait));
  int first = 0;
  while (!contenders[first]->acquired()) ++first;
  leases[first]->KeepAlive([](const std::string&) {});
  // The others go on waiting: three ttls, and nobody else got it.
  EXPECT_FALSE(WaitFor([&] { return winners() > 1; }, 3 * kTtl));
  EXPECT_EQ(LeaseValue(nats_->urls()),
            leases[first]->holder() + " " + leases[first]->holder() + ":7070");

  // The winner dies (stops renewing, releases nothing): one other takes it.
  contenders[first].reset();
  leases[first].reset();
  auto others = [&] {
    int n = 0;
    for (int i = 0; i < 3; ++i) n += (i != first && contenders[i]->acquired()) ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return others() == 1; }, kWait));
  int second = 0;
  while (second == first || !contenders[second]->acquired()) ++second;
  leases[second]->KeepAlive([](const std::string&) {});
  EXPECT_FALSE(WaitFor([&] { return others() > 1; }, 3 * kTtl));
  for (int i = 0; i < 3; ++i) contenders[i].reset();  // before their leases
}

// Someone else wrote the lease (a standby took it while this holder was
// paused): the holder's next renewal is refused and it is told at once.
TEST_F(BrokerLeaseTest, AHolderWhoseLeaseWasTakenIsToldItLostIt) {
  std::unique_ptr<BrokerLease> a = Held("a");
  ASSERT_NE(a, nullptr);
  LossWatch watch(a.get());
  ASSERT_NO_FATAL_FAILURE(OverwriteLease(nats_->urls(), "x x:7070"));
  EXPECT_THAT(watch.WaitLost(kWait), HasSubstr("the lease was taken by 'x x:7070'"));
  // It does not write the lease any more.
  EXPECT_EQ(LeaseValue(nats_->urls()), "x x:7070");
}

// NATS is gone: the holder cannot renew and gives the lease up after 5/8
// of a ttl (by 3/4 at the latest), before any contender could take it.
TEST_F(BrokerLeaseTest, AHolderThatCannotRenewGivesTheLeaseUp) {
  std::unique_ptr<BrokerLease> a = Held("a");
  ASSERT_NE(a, nullptr);
  LossWatch watch(a.get());
  nats_->Kill(0);
  EXPECT_THAT(watch.WaitLost(kWait), HasSubstr("no renewal succeeded for"));
}

TEST_F(BrokerLeaseTest, AContenderStopsWaitingWhenCancelled) {
  std::unique_ptr<BrokerLease> a = Held("a");
  std::unique_ptr<BrokerLease> b = Open("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  a->KeepAlive([](const std::string&) {});
  Contender contender(b.get());
  contender.Cancel();
  ASSERT_TRUE(contender.WaitDone(kWait));
  EXPECT_THAT(contender.status(), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST_F(BrokerLeaseTest, BadOptionsAreRefusedWithAShortReason) {
  BrokerLease::Options options;
  options.servers = nats_->urls();
  options.ttl = absl::Milliseconds(500);
  EXPECT_THAT(BrokerLease::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease ttl must be in")));
  options.ttl = absl::Seconds(3);
  options.address = "a b";
  EXPECT_THAT(BrokerLease::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no space")));
  options.address = "";
  options.servers = " ";
  EXPECT_THAT(BrokerLease::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace relay::broker
namespace relay::broker {
namespace {

// With more than one copy the lease's bucket is read from its leader (a
// follower could answer a renewal's read-back with an older revision):
// direct gets off, and the lease taken through the leader's reads.
TEST(BrokerLeaseClusterTest, ABucketOfThreeCopiesIsReadFromItsLeader) {
  absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start(3);
  ASSERT_THAT(nats, IsOk());
  BrokerLease::Options options;
  options.servers = (*nats)->urls();
  options.holder = "a";
  options.address = "a:7070";
  options.ttl = kTtl;
  options.replicas = 3;
  absl::StatusOr<std::unique_ptr<BrokerLease>> lease = BrokerLease::Open(options);
  ASSERT_THAT(lease, IsOk());
  EXPECT_THAT(relay::testing::StreamAllowsDirect(options.servers, "KV_relay_lease"),
              relay::testing::IsOkAndHolds(false));
  Contender contender(lease->get());
  ASSERT_TRUE(contender.WaitDone(kWait));
  EXPECT_THAT(contender.status(), IsOk());
  EXPECT_EQ(LeaseValue(options.servers), "a a:7070");
}

}  // namespace
}  // namespace relay::broker
