#include "broker/delivery_wire.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.pb.h"

namespace relay::broker {
namespace {

using ::google::protobuf::util::MessageDifferencer;

Event MakeEvent(uint64_t offset, size_t data_bytes, std::string key) {
  Event e;
  e.set_id(absl::StrCat("evt-", offset));
  e.set_type("order.created");
  e.set_key(std::move(key));
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = "c-1";
  e.set_data(std::string(data_bytes, 'x'));
  e.set_offset(offset);
  e.mutable_publish_time()->set_seconds(1800000000);
  e.mutable_publish_time()->set_nanos(123);
  return e;
}

// What the bytes must parse as: the response protobuf would have built.
TEST(DeliveryWire, ParsesAsTheSubscribeResponseProtobufBuilds) {
  struct Case {
    std::string topic;
    size_t data_bytes;
    std::string key;
    uint32_t attempt;
  };
  // Sizes that cross the one- and two-byte varint lengths, an empty topic
  // and key, attempt 0 (not written), 1 and one above 127.
  const std::vector<Case> cases = {
      {"orders", 0, "order-1", 1},   {"orders", 40, "", 2},
      {"orders", 200, "k", 300},     {"", 20, "k", 1},
      {"orders.dlq", 20000, "k", 0}, {std::string(200, 't'), 70000, "k", 5},
  };
  std::string wire;
  v1::SubscribeResponse expected;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Event event = MakeEvent(i, c.data_bytes, c.key);
    absl::StatusOr<StoredEvent> from_event = StoredEvent::FromEvent(event);
    ASSERT_TRUE(from_event.ok());
    const StoredEvent& stored = *from_event;
    EXPECT_EQ(stored.offset(), i);
    EXPECT_EQ(stored.key(), c.key);
    EXPECT_EQ(stored.type(), "order.created");

    const size_t before = wire.size();
    AppendDelivery(c.topic, stored, c.attempt, &wire);
    EXPECT_EQ(wire.size() - before, DeliveryWireSize(c.topic, stored, c.attempt)) << i;

    v1::Delivery* d = expected.add_deliveries();
    *d->mutable_event() = event;
    d->mutable_event()->set_topic(c.topic);
    d->set_attempt(c.attempt);

    v1::SubscribeResponse got;
    ASSERT_TRUE(got.ParseFromString(wire)) << i;
    EXPECT_TRUE(MessageDifferencer::Equals(got, expected)) << i << ": " << got.ShortDebugString();
  }
}

TEST(DeliveryWire, StoredEventScansTheLastValueOfARepeatedField) {
  Event first;
  first.set_key("old");
  first.set_type("t.old");
  Event second;
  second.set_key("new");
  std::string bytes = first.SerializeAsString() + second.SerializeAsString();
  absl::StatusOr<StoredEvent> stored = StoredEvent::Parse(SharedBytes::Copy(bytes));
  ASSERT_TRUE(stored.ok());
  Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(stored->key(), parsed.key());
  EXPECT_EQ(stored->type(), parsed.type());
  // An id whose length runs past the end; a tag cut short.
  EXPECT_FALSE(StoredEvent::Parse(SharedBytes::Copy(std::string("\x0a\x05", 2) + "ab")).ok());
  EXPECT_FALSE(StoredEvent::Parse(SharedBytes::Copy("\xff\xff")).ok());
}

}  // namespace
}  // namespace relay::broker
