#include "broker/validation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::SizeIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

v1::PublishRequest OneEvent(const std::string& topic) {
  v1::PublishRequest request;
  request.set_topic(topic);
  events::v1::Event* e = request.add_events();
  e->set_id("evt-1");
  e->set_type("order.created");
  return request;
}

v1::SubscribeRequest::Open Open(int64_t deadline_seconds, int32_t deadline_nanos) {
  v1::SubscribeRequest::Open open;
  open.set_topic("orders");
  open.set_group("payment-service");
  open.mutable_ack_deadline()->set_seconds(deadline_seconds);
  open.mutable_ack_deadline()->set_nanos(deadline_nanos);
  return open;
}

TEST(Validation, AcceptsAWellFormedPublish) {
  EXPECT_THAT(ValidatePublish(OneEvent("orders"), Limits{}), IsOk());
}

TEST(Validation, NamesTheFieldAndTheLimit) {
  EXPECT_THAT(ValidateName("topic", std::string(129, 'a')),
              StatusIs(kInvalid, HasSubstr("topic is 129 characters long; the limit is 128")));
  EXPECT_THAT(ValidateName("group", "Orders"),
              StatusIs(kInvalid, HasSubstr("group 'Orders' has a character outside")));
}

// What envelope_fuzz checks: whatever the input's size, an error quotes
// only a short prefix of it (gRPC clients refuse a status message of a few
// kilobytes, RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT).
TEST(Validation, ErrorsStayShortWhateverTheInput) {
  const std::string huge = std::string(2 << 20, 'a') + "!";
  absl::Status name = ValidateName("topic", huge);
  EXPECT_THAT(name, StatusIs(kInvalid, HasSubstr("topic is 2097153 ")));
  EXPECT_THAT(name.message(), SizeIs(Le(200)));

  v1::PublishRequest request = OneEvent("orders");
  request.mutable_events(0)->set_topic(huge);
  absl::Status publish = ValidatePublish(request, Limits{});
  EXPECT_THAT(publish, StatusIs(kInvalid, HasSubstr("names topic")));
  EXPECT_THAT(publish.message(), SizeIs(Le(400)));
  request.mutable_events(0)->set_id(huge);
  publish = ValidatePublish(request, Limits{});
  EXPECT_THAT(publish, StatusIs(kInvalid, HasSubstr("id")));
  EXPECT_THAT(publish.message(), SizeIs(Le(400)));
}

TEST(Validation, AckDeadlineBounds) {
  EXPECT_THAT(ValidateOpen(Open(30, 0)), IsOk());
  EXPECT_THAT(ValidateOpen(Open(0, 10'000'000)), IsOk());
  EXPECT_THAT(ValidateOpen(Open(3600, 0)), IsOk());
  EXPECT_THAT(ValidateOpen(Open(0, 9'999'999)), StatusIs(kInvalid, HasSubstr("ack_deadline")));
  EXPECT_THAT(ValidateOpen(Open(3600, 1'000'000)), StatusIs(kInvalid, HasSubstr("ack_deadline")));
  EXPECT_THAT(ValidateOpen(Open(-1, 0)), StatusIs(kInvalid, HasSubstr("ack_deadline")));
}

// DurationToMilliseconds multiplied the seconds by 1000 in int64: a deadline
// of 18446744073709552 s wrapped around to 384 ms and was accepted (and
// signed overflow is undefined behaviour).
TEST(Validation, AckDeadlineSecondsDoNotOverflow) {
  EXPECT_THAT(ValidateOpen(Open(18446744073709552, 0)),
              StatusIs(kInvalid, HasSubstr("ack_deadline")));
  EXPECT_THAT(ValidateOpen(Open(INT64_MAX, 0)), StatusIs(kInvalid, HasSubstr("ack_deadline")));
  EXPECT_THAT(ValidateOpen(Open(INT64_MIN, 0)), StatusIs(kInvalid, HasSubstr("ack_deadline")));
}

// A group on a 252-255 character `x.dlq` topic was accepted, and its first
// dead letter, to a topic of 256 characters or more, could never be
// appended: the key waited for good.
TEST(Validation, AGroupsTopicLeavesRoomForItsDeadLetterTopic) {
  v1::SubscribeRequest::Open open = Open(30, 0);
  open.set_topic(std::string(247, 'a') + ".dlq");  // 251
  EXPECT_THAT(ValidateOpen(open), IsOk());
  EXPECT_THAT(ValidateName("topic", DeadLetterTopic(open.topic())), IsOk());
  open.set_topic(std::string(248, 'a') + ".dlq");  // 252
  EXPECT_THAT(ValidateOpen(open), StatusIs(kInvalid, HasSubstr("may have at most 251")));
  // Still a topic to publish to and to read.
  EXPECT_THAT(ValidateName("topic", open.topic()), IsOk());
  EXPECT_THAT(ValidatePublish(OneEvent(open.topic()), Limits{}), IsOk());
}

}  // namespace
}  // namespace relay::broker
