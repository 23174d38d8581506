#include "tools/relayctl/broker_read.h"

#include <algorithm>
#include <tuple>

namespace relay::ctl {

namespace bv1 = relay::broker::v1;

grpc::Status ReadToEnd(Context& ctx, bv1::Broker::Stub& stub, bv1::ReadRequest request,
                       uint64_t from, uint64_t max_events,
                       std::vector<relay::events::v1::Event>* events, uint64_t* next) {
  constexpr uint64_t kPage = 1000;
  uint64_t offset = from;
  uint64_t taken = 0;
  while (max_events == 0 || taken < max_events) {
    request.set_offset(offset);
    request.set_max_events(
        static_cast<uint32_t>(max_events == 0 ? kPage : std::min(kPage, max_events - taken)));
    grpc::ClientContext call;
    ctx.SetDeadline(&call);
    bv1::ReadResponse response;
    grpc::Status status = stub.Read(&call, request, &response);
    if (!status.ok()) return status;
    for (relay::events::v1::Event& e : *response.mutable_events()) {
      events->push_back(std::move(e));
      ++taken;
    }
    // next_offset does not move only at the end (or before the first
    // retained event, where the broker clamps): stop rather than spin.
    const bool progressed = response.next_offset() > offset;
    offset = std::max(offset, response.next_offset());
    if (!progressed || offset >= response.end_offset()) break;
  }
  *next = offset;
  return grpc::Status::OK;
}

grpc::Status ReadCorrelated(Context& ctx, bv1::Broker::Stub& stub,
                            const std::vector<std::string>& topics, const std::string& id,
                            std::optional<absl::Time> since,
                            std::vector<relay::events::v1::Event>* events,
                            std::string* failed_topic, std::map<std::string, uint64_t>* resume) {
  for (const std::string& topic : topics) {
    uint64_t from = 0;
    if (resume != nullptr && resume->count(topic) > 0) {
      from = resume->at(topic);
    } else if (since.has_value()) {
      bv1::ReadRequest first;
      first.set_topic(topic);
      const int64_t ns = absl::ToUnixNanos(*since);
      first.mutable_time()->set_seconds(ns / 1000000000);
      first.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1000000000));
      first.set_max_events(1);
      grpc::ClientContext call;
      ctx.SetDeadline(&call);
      bv1::ReadResponse response;
      if (grpc::Status s = stub.Read(&call, first, &response); !s.ok()) {
        *failed_topic = topic;
        return s;
      }
      from = response.events().empty() ? response.next_offset() : response.events(0).offset();
    }
    bv1::ReadRequest request;
    request.set_topic(topic);
    request.set_correlation_id(id);
    uint64_t next;
    if (grpc::Status s = ReadToEnd(ctx, stub, request, from, 0, events, &next); !s.ok()) {
      *failed_topic = topic;
      return s;
    }
    if (resume != nullptr) (*resume)[topic] = next;
  }
  return grpc::Status::OK;
}

void SortByPublishTime(std::vector<relay::events::v1::Event>* events) {
  std::stable_sort(events->begin(), events->end(), [](const auto& a, const auto& b) {
    return std::make_tuple(a.publish_time().seconds(), a.publish_time().nanos(), a.topic(),
                           a.offset()) < std::make_tuple(b.publish_time().seconds(),
                                                         b.publish_time().nanos(), b.topic(),
                                                         b.offset());
  });
}

}  // namespace relay::ctl
