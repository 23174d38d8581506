#include "broker/storage/stored_event.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/storage/record.h"

namespace relay::broker {

bool StoredEvent::Scan(absl::string_view bytes, Layout* layout, uint64_t* offset) {
  RecordMeta meta;
  if (!ParseRecordMeta(bytes, &meta)) return false;
  // An absent field's empty view may point anywhere: position 0.
  *layout = Layout();
  if (!meta.type.empty()) {
    layout->type_pos = static_cast<uint32_t>(meta.type.data() - bytes.data());
    layout->type_len = static_cast<uint32_t>(meta.type.size());
  }
  if (!meta.key.empty()) {
    layout->key_pos = static_cast<uint32_t>(meta.key.data() - bytes.data());
    layout->key_len = static_cast<uint32_t>(meta.key.size());
  }
  *offset = meta.offset;
  return true;
}

absl::StatusOr<StoredEvent> StoredEvent::Parse(std::shared_ptr<const std::string> bytes) {
  Layout layout;
  uint64_t offset = 0;
  if (bytes == nullptr || !Scan(*bytes, &layout, &offset)) {
    return absl::DataLossError("stored event does not parse as an Event");
  }
  return StoredEvent(std::move(bytes), offset, layout);
}

StoredEvent StoredEvent::FromEvent(const Event& event) {
  Event bare = event;
  bare.clear_topic();
  absl::StatusOr<StoredEvent> e =
      Parse(std::make_shared<const std::string>(bare.SerializeAsString()));
  // What protobuf serialized, its wire format scan reads.
  return e.ok() ? *std::move(e) : StoredEvent();
}

Event StoredEvent::ToEvent(absl::string_view topic) const {
  Event event;
  event.ParseFromArray(bytes().data(), static_cast<int>(size()));
  event.set_topic(std::string(topic));
  return event;
}

}  // namespace relay::broker
