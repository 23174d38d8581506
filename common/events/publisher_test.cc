// Publisher against a real broker (in process, port 0): message limits.

#include "common/events/publisher.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_channel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace relay::events {
namespace {

using relay::testing::IsOk;
using relay::testing::IsOkAndHolds;
using relay::testing::MetricNow;
using relay::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kLimit = 64 << 10;  // the broker's receive limit in these tests

class PublisherLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay::testing::BrokerTestOptions options;
    options.max_receive_bytes = kLimit;
    options.max_event_bytes = kLimit - 2048;
    auto broker = relay::testing::StartBroker(dir_.Join("broker"), options);
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
  }

  static v1::Event Event(const std::string& id, size_t data_bytes) {
    v1::Event e;
    e.set_id(id);
    e.set_type("thing.happened");
    e.set_data(std::string(data_bytes, 'd'));
    return e;
  }

  Publisher::Options Options() {
    Publisher::Options o;
    o.max_message_bytes = kLimit;
    return o;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<relay::broker::BrokerServer> broker_;
};

// Issue 7, item 7: a batch larger than the broker's gRPC message limit was
// refused by gRPC (the stream broke) and resent forever.
TEST_F(PublisherLimitsTest, BatchesAreCutToFitTheBrokersMessageLimit) {
  Publisher publisher(MakeChannel(broker_->target()), Options());
  std::vector<std::future<absl::StatusOr<uint64_t>>> offsets;
  // 10 x 20 KiB: one 4 MiB batch by bytes, but three times the limit.
  for (int i = 0; i < 10; ++i) {
    offsets.push_back(publisher.Publish("orders", Event(absl::StrCat("e", i), 20 << 10)));
  }
  for (auto& f : offsets) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    EXPECT_THAT(f.get(), IsOk());
  }
}

TEST_F(PublisherLimitsTest, AnEventThatCanNeverFitFailsAtOnceWithAClearError) {
  Publisher publisher(MakeChannel(broker_->target()), Options());
  auto too_big = publisher.Publish("orders", Event("huge", kLimit));
  auto fine = publisher.Publish("orders", Event("small", 10));
  ASSERT_EQ(too_big.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_THAT(too_big.get(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("exceeds the largest message the broker")));
  // The publisher goes on with the rest.
  ASSERT_EQ(fine.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_THAT(fine.get(), IsOk());
}

// PublishBatch sends its events in one request of their own, whatever
// max_batch_events says (the broker counts one publish batch), in order.
TEST_F(PublisherLimitsTest, PublishBatchSendsItsEventsInOneRequest) {
  Publisher::Options options = Options();
  options.max_batch_events = 10;  // would cut 50 events into five requests
  Publisher publisher(relay::testing::Channel(broker_->target()), options);
  // A first event, so that the stream is open and idle before the count.
  ASSERT_THAT(publisher.Publish("t", Event("first", 10)).get(), IsOk());
  const double batches = MetricNow("relay_broker_publish_durable_seconds_count");
  std::vector<v1::Event> events;
  for (int i = 0; i < 50; ++i) events.push_back(Event(absl::StrCat("e", i), 100));
  std::vector<std::future<absl::StatusOr<uint64_t>>> offsets =
      publisher.PublishBatch("t", std::move(events));
  ASSERT_EQ(offsets.size(), 50u);
  for (size_t i = 0; i < offsets.size(); ++i) {
    absl::StatusOr<uint64_t> offset = offsets[i].get();
    ASSERT_THAT(offset, IsOk());
    EXPECT_EQ(*offset, i + 1);  // after "first"
  }
  EXPECT_EQ(MetricNow("relay_broker_publish_durable_seconds_count") - batches, 1);
}

// A batch that cannot go in one request is refused whole, at once; none of
// it is sent, and the publisher goes on.
TEST_F(PublisherLimitsTest, APublishBatchTooLargeForOneRequestFailsWholeAtOnce) {
  Publisher publisher(relay::testing::Channel(broker_->target()), Options());
  std::vector<v1::Event> events;
  for (int i = 0; i < 4; ++i) events.push_back(Event(absl::StrCat("big", i), 20 << 10));
  std::vector<std::future<absl::StatusOr<uint64_t>>> offsets =
      publisher.PublishBatch("t", std::move(events));
  ASSERT_EQ(offsets.size(), 4u);
  for (auto& f : offsets) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_THAT(f.get(), StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("exceeds the largest message the broker receives")));
  }
  EXPECT_THAT(publisher.Publish("t", Event("after", 10)).get(), IsOkAndHolds(0u));
}

// Close() is idempotent and the class thread-safe: two at once used to join
// the same thread twice (std::terminate, or a race TSan reports). What was
// pending resolves once, acked or UNAVAILABLE.
TEST_F(PublisherLimitsTest, ConcurrentClosesEndThePublisherOnce) {
  for (int round = 0; round < 5; ++round) {
    Publisher publisher(relay::testing::Channel(broker_->target()), Options());
    std::future<absl::StatusOr<uint64_t>> offset =
        publisher.Publish("t", Event(absl::StrCat("c", round), 10));
    std::thread other([&] { publisher.Close(); });
    publisher.Close();
    other.join();
    absl::StatusOr<uint64_t> result = offset.get();
    EXPECT_TRUE(result.ok() || absl::IsUnavailable(result.status())) << result.status();
  }
}

// Publish() calls share a request, which the broker refuses whole for one
// bad event: the good events of other calls got that INVALID_ARGUMENT too,
// an answer their callers must not retry, so they were dropped. Queued
// while the broker is not up yet, the three go in one request when it is.
TEST(PublisherSharing, AnEventTheBrokerRefusesFailsOnlyItsOwnCall) {
  relay::testing::TempDir dir;
  const int port = relay::testing::PickFreePort();
  ASSERT_GT(port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", port);
  Publisher::Options options;
  options.min_backoff = absl::Milliseconds(200);  // the three queue up meanwhile
  Publisher publisher(relay::testing::Channel(target), options);
  v1::Event good;
  good.set_id("good-1");
  good.set_type("thing.happened");
  v1::Event bad = good;
  bad.set_id("bad");
  bad.clear_type();  // the broker refuses an event without a type
  v1::Event also_good = good;
  also_good.set_id("good-2");
  auto first = publisher.Publish("t", good);
  auto refused = publisher.Publish("t", bad);
  auto second = publisher.Publish("t", also_good);

  relay::testing::BrokerTestOptions broker_options;
  broker_options.listen_address = target;
  auto broker = relay::testing::StartBroker(dir.Join("broker"), broker_options);
  ASSERT_THAT(broker, IsOk());
  ASSERT_EQ(first.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_THAT(first.get(), IsOkAndHolds(0));
  ASSERT_EQ(refused.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_THAT(refused.get(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no type")));
  ASSERT_EQ(second.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_THAT(second.get(), IsOkAndHolds(1));
  publisher.Close();
  (*broker)->Shutdown(absl::Seconds(1));
}

TEST(BrokerLimits, StartRefusesAMaxEventBytesThatNoRequestCouldCarry) {
  relay::testing::TempDir dir;
  relay::testing::BrokerTestOptions options;
  options.max_receive_bytes = kLimit;
  options.max_event_bytes = kLimit;  // no room for the topic and framing
  EXPECT_THAT(relay::testing::StartBroker(dir.Join("broker"), options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_event_bytes")));
}

}  // namespace
}  // namespace relay::events
