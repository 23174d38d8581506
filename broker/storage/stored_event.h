#ifndef RELAY_BROKER_STORAGE_STORED_EVENT_H_
#define RELAY_BROKER_STORAGE_STORED_EVENT_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/shared_bytes.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {

using Event = ::relay::events::v1::Event;

// One durable event as the log stores it: a serialized relay.events.v1.Event
// with offset and publish_time set and topic left out (a segment record's
// payload, broker/storage/record.h). The bytes are shared, never copied,
// between the log's tail cache, the windows of the topic's consumer groups
// and the delivery messages written from them; only the fields delivery
// decides on (offset, type, key) are picked out, by a scan of the wire format
// instead of a parse. Immutable; copying one copies a reference.
//
//   absl::StatusOr<StoredEvent> e = StoredEvent::Parse(SharedBytes::Copy(payload));
//   if (e.ok() && e->type() == "order.created") Send(e->bytes());
class StoredEvent {
 public:
  // Where type and key are in the bytes.
  struct Layout {
    uint32_t type_pos = 0;
    uint32_t type_len = 0;
    uint32_t key_pos = 0;
    uint32_t key_len = 0;
  };

  StoredEvent() = default;
  // From bytes already scanned: `layout` from Scan() of a prefix of `bytes`
  // (fields appended since do not move it), `offset` the event's.
  StoredEvent(SharedBytes bytes, uint64_t offset, Layout layout)
      : bytes_(std::move(bytes)), offset_(offset), layout_(layout) {}

  // Reads the layout and the offset field of a serialized Event; false if
  // `bytes` is not one.
  static bool Scan(absl::string_view bytes, Layout* layout, uint64_t* offset);

  // `bytes` must be a serialized Event; DATA_LOSS otherwise.
  static absl::StatusOr<StoredEvent> Parse(SharedBytes bytes);

  // `event` serialized without its topic (for backends that hand out Event
  // messages: one copy, where the file log's cache makes none). DATA_LOSS if
  // what protobuf serialized does not scan (never expected).
  static absl::StatusOr<StoredEvent> FromEvent(const Event& event);

  uint64_t offset() const { return offset_; }
  absl::string_view type() const { return bytes().substr(layout_.type_pos, layout_.type_len); }
  absl::string_view key() const { return bytes().substr(layout_.key_pos, layout_.key_len); }
  // The serialized Event (no topic); empty for a default-constructed one.
  absl::string_view bytes() const { return bytes_.view(); }
  size_t size() const { return bytes_.size(); }

  // The event parsed, with `topic` set (for the rare paths that need every
  // field, e.g. a dead letter).
  Event ToEvent(absl::string_view topic) const;

 private:
  SharedBytes bytes_;
  uint64_t offset_ = 0;
  Layout layout_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_STORED_EVENT_H_
