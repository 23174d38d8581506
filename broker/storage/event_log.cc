#include "broker/storage/event_log.h"

namespace relay::broker {

absl::StatusOr<std::vector<StoredEvent>> EventLog::ReadStored(absl::string_view topic,
                                                              uint64_t from, size_t max_events,
                                                              size_t max_bytes) const {
  absl::StatusOr<std::vector<Event>> events = Read(topic, from, max_events, max_bytes);
  if (!events.ok()) return events.status();
  std::vector<StoredEvent> out;
  out.reserve(events->size());
  for (const Event& e : *events) {
    absl::StatusOr<StoredEvent> stored = StoredEvent::FromEvent(e);
    if (!stored.ok()) return stored.status();
    out.push_back(*std::move(stored));
  }
  return out;
}

}  // namespace relay::broker
