// Fuzz target: the broker's validation of what clients send
// (broker/validation.h), on protobuf-parsed fuzz input.
//
// The input is parsed as a PublishRequest and as a SubscribeRequest (bytes
// that are not a valid message of a type are skipped for it). Properties:
// no crash and no undefined behaviour; an error's message stays short
// whatever the input's size (gRPC clients refuse long status messages, and
// a client's 2 MB field must not be echoed back); an accepted request
// satisfies what the contract promises to the code behind it.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "broker/validation.h"
#include "relay/broker/v1/broker.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay::broker {
namespace {

// Longest status message the broker may answer with.
constexpr size_t kMaxMessageBytes = 512;

void CheckPublish(const v1::PublishRequest& request) {
  Limits limits;
  limits.max_event_bytes = 1024;
  limits.max_batch_events = 8;
  absl::Status status = ValidatePublish(request, limits);
  FUZZ_CHECK(status.message().size() <= kMaxMessageBytes);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(ValidateName("topic", request.topic()).ok());
  FUZZ_CHECK(request.events_size() >= 1);
  FUZZ_CHECK(static_cast<size_t>(request.events_size()) <= limits.max_batch_events);
  for (const events::v1::Event& e : request.events()) {
    FUZZ_CHECK(!e.id().empty() && !e.type().empty());
    FUZZ_CHECK(e.topic().empty() || e.topic() == request.topic());
    FUZZ_CHECK(e.ByteSizeLong() <= limits.max_event_bytes);
  }
}

void CheckOpen(const v1::SubscribeRequest::Open& open) {
  absl::Status status = ValidateOpen(open);
  FUZZ_CHECK(status.message().size() <= kMaxMessageBytes);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(ValidateName("topic", open.topic()).ok());
  FUZZ_CHECK(ValidateName("group", open.group()).ok());
  for (const std::string& type : open.types()) FUZZ_CHECK(!type.empty());
  FUZZ_CHECK(open.max_in_flight() <= 100000);
  if (open.has_ack_deadline()) {
    // Computed without overflow: the deadline the broker will really use.
    const absl::Duration deadline = absl::Seconds(open.ack_deadline().seconds()) +
                                    absl::Nanoseconds(open.ack_deadline().nanos());
    FUZZ_CHECK(deadline >= absl::Milliseconds(10) && deadline <= absl::Hours(1));
  }
}

}  // namespace
}  // namespace relay::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace v1 = ::relay::broker::v1;
  const int n = static_cast<int>(size);
  v1::PublishRequest publish;
  if (publish.ParseFromArray(data, n)) ::relay::broker::CheckPublish(publish);
  v1::SubscribeRequest subscribe;
  if (subscribe.ParseFromArray(data, n) && subscribe.has_open()) {
    ::relay::broker::CheckOpen(subscribe.open());
  }
  return 0;
}
