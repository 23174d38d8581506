// Subscriber against a real broker (in process, port 0): how it batches and
// how it stops.

#include "common/events/subscriber.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/events/publisher.h"
#include "common/grpc_channel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::events {
namespace {

using relay::testing::IsOk;
using relay::testing::WaitFor;

class SubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = relay::testing::StartBroker(dir_.Join("broker"));
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    stub_ = relay::broker::v1::Broker::NewStub(MakeChannel(broker_->target()));
  }

  // Publishes events "e<first>".."e<first+n-1>" (no key) to "orders" in one
  // request, so they become durable, and are delivered, together.
  void Publish(int first, int n) {
    relay::broker::v1::PublishRequest request;
    request.set_topic("orders");
    for (int i = first; i < first + n; ++i) {
      v1::Event* e = request.add_events();
      e->set_id(absl::StrCat("e", i));
      e->set_type("thing.happened");
    }
    relay::broker::v1::PublishResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    ASSERT_TRUE(stub_->Publish(&context, request, &response).ok());
    ASSERT_FALSE(response.has_error()) << response.error().message();
  }

  // Group `group` of "orders" as DescribeGroups tells it (empty if unknown).
  relay::broker::v1::GroupInfo Group(const std::string& group) {
    relay::broker::v1::DescribeGroupsRequest request;
    request.set_topic("orders");
    request.set_group(group);
    relay::broker::v1::DescribeGroupsResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!stub_->DescribeGroups(&context, request, &response).ok() || response.groups_size() == 0) {
      return {};
    }
    return response.groups(0);
  }
  int64_t Committed(const std::string& group) {
    return static_cast<int64_t>(Group(group).committed_offset());
  }
  int64_t InFlight(const std::string& group) {
    return static_cast<int64_t>(Group(group).in_flight());
  }

  Subscriber::Options Options(const std::string& group) {
    Subscriber::Options o;
    o.topic = "orders";
    o.group = group;
    o.start.set_earliest(true);
    return o;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<relay::broker::BrokerServer> broker_;
  std::unique_ptr<relay::broker::v1::Broker::Stub> stub_;
};

// Issue 7, item 2: Stop() cancelled the stream mid-batch, so the work a
// handler had already done (and committed) was never acked and went to the
// next member again.
TEST_F(SubscriberTest, StopFinishesTheBatchInHandAndAcksItBeforeClosing) {
  ASSERT_NO_FATAL_FAILURE(Publish(0, 3));
  absl::Notification in_handler;
  absl::Notification release;
  std::atomic<int> handled{0};
  Subscriber sub(MakeChannel(broker_->target()), Options("g"));
  sub.On("thing.happened", [&](const v1::Event&, const DeliveryInfo&) {
    if (handled.fetch_add(1) == 0) {
      in_handler.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  sub.Start();
  ASSERT_TRUE(in_handler.WaitForNotificationWithTimeout(absl::Seconds(20)));

  std::thread stopper([&] { sub.Stop(); });
  ASSERT_TRUE(WaitFor([&] { return sub.stopping(); }));
  release.Notify();  // the handler finishes after Stop() began
  stopper.join();

  ASSERT_GE(handled.load(), 1);
  // Everything handled was acked before the stream ended.
  EXPECT_EQ(Committed("g"), handled.load());

  // The next member starts right after them: the first thing it gets is an
  // event published now, never one handled before.
  ASSERT_NO_FATAL_FAILURE(Publish(3, 1));
  absl::Notification got;
  std::string first_id;
  Subscriber next(MakeChannel(broker_->target()), Options("g"));
  next.On("thing.happened", [&](const v1::Event& e, const DeliveryInfo&) {
    if (!got.HasBeenNotified()) {
      first_id = e.id();
      got.Notify();
    }
    return absl::OkStatus();
  });
  next.Start();
  ASSERT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(20)));
  next.Stop();
  if (handled.load() == 3) {
    EXPECT_EQ(first_id, "e3");
  }
  EXPECT_NE(first_id, "e0");
}

// Issue 7, found by the soak: a consumer that fell behind got its slots
// refilled one ack at a time, each delivery in its own broker message, and
// handled message by message -- one-event batches, one database transaction
// each, for as long as the backlog lasted (throughput fell from ~1,000 to ~40
// events/s). A batch is now everything received while the previous one ran.
TEST_F(SubscriberTest, DeliveriesThatArriveDuringABatchAreHandledAsOneBatch) {
  ASSERT_NO_FATAL_FAILURE(Publish(0, 1));
  absl::Notification in_first;
  absl::Notification release;
  absl::Mutex mu;
  std::vector<size_t> sizes;
  Subscriber sub(MakeChannel(broker_->target()), Options("batch"));
  sub.On("thing.happened", [](const v1::Event&, const DeliveryInfo&) { return absl::OkStatus(); });
  sub.OnBatch([&](absl::Span<const Subscriber::Delivery> batch) {
    bool first;
    {
      absl::MutexLock lock(&mu);
      sizes.push_back(batch.size());
      first = sizes.size() == 1;
    }
    if (first) {
      in_first.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(30));
    }
    return std::vector<absl::Status>(batch.size(), absl::OkStatus());
  });
  sub.Start();
  ASSERT_TRUE(in_first.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // Five events, one publish each: five broker messages of one delivery.
  for (int i = 1; i <= 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(Publish(i, 1));
    ASSERT_TRUE(WaitFor([&] { return InFlight("batch") == i + 1; }, absl::Seconds(20)));
  }
  ASSERT_TRUE(WaitFor([&] { return sub.queued() == 5; }, absl::Seconds(20)));
  release.Notify();
  ASSERT_TRUE(WaitFor([&] { return Committed("batch") == 6; }, absl::Seconds(20)));
  sub.Stop();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(sizes, ::testing::ElementsAre(1u, 5u));
}

// Issue 8: a client given an active broker and a standby finds whichever
// listens, by itself, before and after a failover.
TEST(SubscriberFailoverTest, PublisherAndSubscriberFollowTheBrokerThatListens) {
  relay::testing::TempDir dir;
  const int port_b = relay::testing::PickFreePort();
  auto a = relay::testing::StartBroker(dir.Join("a"));
  ASSERT_THAT(a, IsOk());
  absl::StatusOr<std::shared_ptr<ChannelSet>> brokers =
      ChannelSet::Parse(absl::StrCat("127.0.0.1:", port_b, ",127.0.0.1:", (*a)->port()));
  ASSERT_THAT(brokers, IsOk());

  absl::Mutex mu;
  std::vector<std::string> ids;
  Subscriber::Options options;
  options.topic = "orders";
  options.group = "g";
  options.start.set_earliest(true);
  options.max_backoff = absl::Milliseconds(500);
  Subscriber sub(*brokers, options);
  sub.On("thing.happened", [&](const v1::Event& e, const DeliveryInfo&) {
    absl::MutexLock lock(&mu);
    ids.push_back(e.id());
    return absl::OkStatus();
  });
  sub.Start();
  Publisher::Options publisher_options;
  publisher_options.max_backoff = absl::Milliseconds(500);
  Publisher publisher(*brokers, publisher_options);
  auto handled = [&](const std::string& id) {
    absl::MutexLock lock(&mu);
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };

  v1::Event e0;
  e0.set_id("e0");
  e0.set_type("thing.happened");
  EXPECT_THAT(publisher.Publish("orders", e0).get(), IsOk());
  ASSERT_TRUE(WaitFor([&] { return handled("e0"); }, absl::Seconds(30)));

  // The active broker goes; the other starts listening on its address.
  (*a)->Shutdown(absl::ZeroDuration());
  relay::testing::BrokerTestOptions b_options;
  b_options.listen_address = absl::StrCat("127.0.0.1:", port_b);
  auto b = relay::testing::StartBroker(dir.Join("b"), b_options);
  ASSERT_THAT(b, IsOk());

  v1::Event e1;
  e1.set_id("e1");
  e1.set_type("thing.happened");
  EXPECT_THAT(publisher.Publish("orders", e1).get(), IsOk());
  EXPECT_TRUE(WaitFor([&] { return handled("e1"); }, absl::Seconds(30)));
  EXPECT_EQ((*b)->log()->DurableEnd("orders"), 1u);  // published to b
  sub.Stop();
}

TEST_F(SubscriberTest, StopOfAnIdleSubscriberIsQuickAndLeavesTheGroup) {
  ASSERT_NO_FATAL_FAILURE(Publish(0, 1));
  std::atomic<int> handled{0};
  Subscriber sub(MakeChannel(broker_->target()), Options("idle"));
  sub.On("thing.happened", [&](const v1::Event&, const DeliveryInfo&) {
    ++handled;
    return absl::OkStatus();
  });
  sub.Start();
  ASSERT_TRUE(WaitFor([&] { return handled.load() == 1; }, absl::Seconds(20)));
  absl::Time start = absl::Now();
  sub.Stop();
  // The half-close ends the stream at once, not at stop_timeout (5 s).
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(Committed("idle"), 1);
  EXPECT_EQ(sub.last_error(), "");
}

// A handler's error goes to the broker as the nack's reason, which the
// broker bounds (1,024 bytes) and which must be UTF-8 to parse: a longer or
// a non-UTF-8 message ended the stream instead of nacking, so the event
// came back as "member left" and never with its reason.
TEST_F(SubscriberTest, AHandlersLongOrNonUtf8ErrorStillNacksItsEvent) {
  relay::testing::BrokerTestOptions options;
  options.max_deliveries = 2;
  broker_.reset();
  auto broker = relay::testing::StartBroker(dir_.Join("broker-2"), options);
  ASSERT_THAT(broker, IsOk());
  broker_ = std::move(*broker);
  stub_ = relay::broker::v1::Broker::NewStub(MakeChannel(broker_->target()));
  ASSERT_NO_FATAL_FAILURE(Publish(0, 1));

  Subscriber sub(MakeChannel(broker_->target()), Options("failing"));
  sub.On("thing.happened", [](const v1::Event&, const DeliveryInfo& info) {
    return info.attempt == 1 ? absl::InternalError(std::string(5000, 'x'))
                             : absl::InternalError("byte \xff is not UTF-8");
  });
  sub.Start();
  relay::broker::v1::ReadResponse dead;
  ASSERT_TRUE(WaitFor(
      [&] {
        relay::broker::v1::ReadRequest request;
        request.set_topic("orders.dlq");
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        return stub_->Read(&context, request, &dead).ok() && dead.events_size() == 1;
      },
      absl::Seconds(30)));
  sub.Stop();
  relay::broker::v1::DeadLetter letter;
  ASSERT_TRUE(letter.ParseFromString(dead.events(0).data()));
  ASSERT_EQ(letter.attempts_size(), 2);
  EXPECT_EQ(letter.attempts(0).outcome(),
            absl::StrCat("nack: INTERNAL: ", std::string(1024 - 10, 'x')));
  EXPECT_EQ(letter.attempts(1).outcome(), "nack: INTERNAL: (message not UTF-8)");
}

// Stop() is idempotent and the class thread-safe: two at once used to join
// the same thread twice (std::terminate, or a race TSan reports).
TEST_F(SubscriberTest, ConcurrentStopsEndTheSubscriberOnce) {
  for (int round = 0; round < 5; ++round) {
    Subscriber sub(MakeChannel(broker_->target()), Options("stops"));
    sub.On("thing.happened",
           [](const v1::Event&, const DeliveryInfo&) { return absl::OkStatus(); });
    sub.Start();
    std::thread other([&] { sub.Stop(); });
    sub.Stop();
    other.join();
    EXPECT_TRUE(sub.stopping());
  }
}

}  // namespace
}  // namespace relay::events
