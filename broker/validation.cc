#include "broker/validation.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/text.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {
constexpr size_t kMaxNameLength = 128;
// Dead-letter topics add ".dlq" to a topic name (once per level: the dead
// letters of a group on `x.dlq` go to `x.dlq.dlq`): names that end in it may
// be as long as the log allows (a file name).
constexpr size_t kMaxNameLengthWithDlq = 255;

bool ValidNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

// OK when `value` is at most `max` bytes; else names the field (`what()`,
// only built then: this runs for every string of every published event) and
// the bound.
template <typename What>
absl::Status CheckLengthOf(const What& what, absl::string_view value, size_t max) {
  if (value.size() <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what(), " is ", value.size(), " bytes; the limit is ", max, ": ", Excerpt(value)));
}

absl::Status CheckLength(absl::string_view what, absl::string_view value, size_t max) {
  return CheckLengthOf([what] { return what; }, value, max);
}

// The envelope's strings of event #i.
absl::Status CheckEnvelope(int i, const events::v1::Event& e) {
  auto named = [&](absl::string_view field) {
    return absl::StrCat("event #", i, " (id ", Excerpt(e.id()), ") ", field);
  };
  if (absl::Status s =
          CheckLengthOf([&] { return absl::StrCat("event #", i, " id"); }, e.id(), kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckLengthOf([&] { return named("type"); }, e.type(), kMaxTypeBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckLengthOf([&] { return named("key"); }, e.key(), kMaxKeyBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckLengthOf([&] { return named("source"); }, e.source(), kMaxSourceBytes);
      !s.ok()) {
    return s;
  }
  if (static_cast<size_t>(e.headers_size()) > kMaxHeaders) {
    return absl::InvalidArgumentError(
        absl::StrCat(named("has "), e.headers_size(), " headers; the limit is ", kMaxHeaders));
  }
  for (const auto& [name, value] : e.headers()) {
    if (absl::Status s =
            CheckLengthOf([&] { return named("header name"); }, name, kMaxHeaderNameBytes);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckLengthOf(
            [&, &name = name] { return named(absl::StrCat("header ", Excerpt(name))); }, value,
            kMaxHeaderValueBytes);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}
// A time whose microseconds do not overflow: a Timestamp's own range.
absl::Status CheckTimestamp(absl::string_view what, const google::protobuf::Timestamp& t) {
  using google::protobuf::util::TimeUtil;
  if (t.seconds() >= TimeUtil::kTimestampMinSeconds &&
      t.seconds() <= TimeUtil::kTimestampMaxSeconds && t.nanos() >= 0 && t.nanos() <= 999'999'999) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " has seconds ", t.seconds(), " and nanos ", t.nanos(),
                   ": expected a time in the years 1 to 9999 with nanos in [0, 1e9)"));
}
}  // namespace

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  const size_t limit = absl::EndsWith(name, ".dlq") ? kMaxNameLengthWithDlq : kMaxNameLength;
  if (name.size() > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", name.size(), " characters long; the limit is ", limit, ": ", Excerpt(name)));
  }
  for (char c : name) {
    if (!ValidNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", Excerpt(name), " has a character outside [a-z0-9._-]"));
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
    if (absl::Status s = CheckEnvelope(i, e); !s.ok()) return s;
    if (e.type().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " (id ", Excerpt(e.id()), ") has no type"));
    }
    if (!e.topic().empty() && e.topic() != request.topic()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " (id ", Excerpt(e.id()), ") names topic ", Excerpt(e.topic()),
                       " but the request publishes to '", request.topic(), "'"));
    }
    size_t size = e.ByteSizeLong();
    if (size > limits.max_event_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " (id ", Excerpt(e.id()),
                                                     ") is ", size, " bytes; the limit is ",
                                                     limits.max_event_bytes));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOpen(const v1::SubscribeRequest::Open& open) {
  if (absl::Status s = ValidateName("topic", open.topic()); !s.ok()) return s;
  // A group's dead letters go to <topic>.dlq, which must be a name too: else
  // the first one could never be appended, and its key would wait for good.
  if (const size_t dlq = DeadLetterTopic(open.topic()).size(); dlq > kMaxNameLengthWithDlq) {
    return absl::InvalidArgumentError(absl::StrCat(
        "topic is ", open.topic().size(), " characters long; a group's topic may have at most ",
        kMaxNameLengthWithDlq - (dlq - open.topic().size()),
        ", so that its dead letters' topic fits: ", Excerpt(open.topic())));
  }
  if (absl::Status s = ValidateName("group", open.group()); !s.ok()) return s;
  if (open.start().has_time()) {
    // Else its microseconds overflowed, and the new group's start, saved at
    // once, was a wrong offset for good.
    if (absl::Status s = CheckTimestamp("start.time", open.start().time()); !s.ok()) return s;
  }
  if (static_cast<size_t>(open.types_size()) > kMaxFilterTypes) {
    return absl::InvalidArgumentError(absl::StrCat("type filter has ", open.types_size(),
                                                   " types; the limit is ", kMaxFilterTypes));
  }
  for (const std::string& type : open.types()) {
    if (type.empty()) return absl::InvalidArgumentError("type filter has an empty type");
    if (absl::Status s = CheckLength("type filter entry", type, kMaxTypeBytes); !s.ok()) return s;
  }
  if (absl::Status s = CheckLength("member_name", open.member_name(), kMaxMemberNameBytes);
      !s.ok()) {
    return s;
  }
  if (open.max_in_flight() > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight ", open.max_in_flight(), " is above the limit of 100000"));
  }
  if (open.has_ack_deadline()) {
    // In absl::Duration, which cannot overflow: protobuf's
    // DurationToMilliseconds multiplies the seconds in int64 and wraps a
    // huge value into the accepted range.
    const absl::Duration deadline = absl::Seconds(open.ack_deadline().seconds()) +
                                    absl::Nanoseconds(open.ack_deadline().nanos());
    if (deadline < absl::Milliseconds(10) || deadline > absl::Hours(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ack_deadline ", absl::FormatDuration(deadline), " is outside [10ms, 1h]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReadFilter(const v1::ReadRequest& request) {
  if (absl::Status s = ValidateName("topic", request.topic()); !s.ok()) return s;
  if (request.has_time()) {
    // Its microseconds would overflow, reading the topic from a wrong place.
    if (absl::Status s = CheckTimestamp("time", request.time()); !s.ok()) return s;
  }
  if (absl::Status s = CheckLength("key", request.key(), kMaxKeyBytes); !s.ok()) return s;
  return CheckLength("correlation_id", request.correlation_id(), kMaxHeaderValueBytes);
}

std::string DeadLetterTopic(absl::string_view topic) { return absl::StrCat(topic, ".dlq"); }

}  // namespace relay::broker
