#include "broker/validation.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {
constexpr size_t kMaxNameLength = 128;
// DLQ topics add ".dlq" to a topic name: allow room for it.
constexpr size_t kMaxNameLengthWithDlq = kMaxNameLength + 4;

bool ValidNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}
}  // namespace

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  bool dlq = absl::EndsWith(name, ".dlq");
  if (name.size() > (dlq ? kMaxNameLengthWithDlq : kMaxNameLength)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", name.size(),
                                                   " characters long; the limit is ",
                                                   kMaxNameLength));
  }
  for (char c : name) {
    if (!ValidNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", name, "' has a character outside [a-z0-9._-]"));
    }
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", name, "' is reserved"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePublish(const v1::PublishRequest& request, const Limits& limits) {
  if (absl::Status s = ValidateName("topic", request.topic()); !s.ok()) return s;
  if (request.events_size() == 0) {
    return absl::InvalidArgumentError("publish request has no events");
  }
  if (static_cast<size_t>(request.events_size()) > limits.max_batch_events) {
    return absl::InvalidArgumentError(absl::StrCat("publish request has ", request.events_size(),
                                                   " events; the limit is ",
                                                   limits.max_batch_events));
  }
  for (int i = 0; i < request.events_size(); ++i) {
    const events::v1::Event& e = request.events(i);
    if (e.id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " has no id"));
    }
    if (e.type().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " (id ", e.id(), ") has no type"));
    }
    if (!e.topic().empty() && e.topic() != request.topic()) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " (id ", e.id(), ") names topic '",
                                                     e.topic(), "' but the request publishes to '",
                                                     request.topic(), "'"));
    }
    size_t size = e.ByteSizeLong();
    if (size > limits.max_event_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " (id ", e.id(), ") is ", size,
                                                     " bytes; the limit is ",
                                                     limits.max_event_bytes));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOpen(const v1::SubscribeRequest::Open& open) {
  if (absl::Status s = ValidateName("topic", open.topic()); !s.ok()) return s;
  if (absl::Status s = ValidateName("group", open.group()); !s.ok()) return s;
  for (const std::string& type : open.types()) {
    if (type.empty()) return absl::InvalidArgumentError("type filter has an empty type");
  }
  if (open.max_in_flight() > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight ", open.max_in_flight(), " is above the limit of 100000"));
  }
  if (open.has_ack_deadline()) {
    int64_t ms = google::protobuf::util::TimeUtil::DurationToMilliseconds(open.ack_deadline());
    if (ms < 10 || ms > 3600 * 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat("ack_deadline ", ms, " ms is outside [10 ms, 1 h]"));
    }
  }
  return absl::OkStatus();
}

std::string DeadLetterTopic(absl::string_view topic) { return absl::StrCat(topic, ".dlq"); }

}  // namespace relay::broker
