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

absl::StatusOr<StoredEvent> StoredEvent::Parse(SharedBytes bytes) {
  Layout layout;
  uint64_t offset = 0;
  if (!Scan(bytes.view(), &layout, &offset)) {
    return absl::DataLossError("stored event does not parse as an Event");
  }
  return StoredEvent(std::move(bytes), offset, layout);
}

absl::StatusOr<StoredEvent> StoredEvent::FromEvent(const Event& event) {
  Event bare = event;
  bare.clear_topic();
  const size_t size = bare.ByteSizeLong();
  SharedBytes bytes = SharedBytes::Allocate(size, size);
  bare.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(bytes.mutable_data()));
  return Parse(std::move(bytes));
}

Event StoredEvent::ToEvent(absl::string_view topic) const {
  Event event;
  event.ParseFromArray(bytes().data(), static_cast<int>(size()));
  event.set_topic(std::string(topic));
  return event;
}

}  // namespace relay::broker
