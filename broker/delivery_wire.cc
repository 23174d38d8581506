#include "broker/delivery_wire.h"

namespace relay::broker {
namespace {

// Tags: (field number << 3) | wire type; 2 is length-delimited, 0 varint.
constexpr char kResponseDeliveriesTag = (2 << 3) | 2;  // SubscribeResponse.deliveries
constexpr char kDeliveryEventTag = (1 << 3) | 2;       // Delivery.event
constexpr char kDeliveryAttemptTag = (2 << 3) | 0;     // Delivery.attempt
constexpr char kEventTopicTag = (2 << 3) | 2;          // Event.topic

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

struct Sizes {
  size_t event;     // Delivery.event's bytes
  size_t delivery;  // the Delivery's bytes
};

Sizes SizesOf(absl::string_view topic, const StoredEvent& event, uint32_t attempt) {
  Sizes s;
  s.event = event.size();
  // Proto3: an empty string field is not written.
  if (!topic.empty()) s.event += 1 + VarintSize(topic.size()) + topic.size();
  s.delivery = 1 + VarintSize(s.event) + s.event;
  if (attempt != 0) s.delivery += 1 + VarintSize(attempt);
  return s;
}

}  // namespace

size_t DeliveryWireSize(absl::string_view topic, const StoredEvent& event, uint32_t attempt) {
  const Sizes s = SizesOf(topic, event, attempt);
  return 1 + VarintSize(s.delivery) + s.delivery;
}

void AppendDelivery(absl::string_view topic, const StoredEvent& event, uint32_t attempt,
                    std::string* out) {
  const Sizes s = SizesOf(topic, event, attempt);
  out->push_back(kResponseDeliveriesTag);
  AppendVarint(s.delivery, out);
  out->push_back(kDeliveryEventTag);
  AppendVarint(s.event, out);
  out->append(event.bytes().data(), event.bytes().size());
  if (!topic.empty()) {
    out->push_back(kEventTopicTag);
    AppendVarint(topic.size(), out);
    out->append(topic.data(), topic.size());
  }
  if (attempt != 0) {
    out->push_back(kDeliveryAttemptTag);
    AppendVarint(attempt, out);
  }
}

}  // namespace relay::broker
