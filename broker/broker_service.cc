#include "broker/broker_service.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/stream_reactors.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/tls.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {

using google::protobuf::util::TimeUtil;

constexpr uint32_t kDefaultReadEvents = 100;
constexpr uint32_t kMaxReadEvents = 10000;
// A filtered Read scans at most this many events before it answers (with
// next_offset where to go on), so one call stays cheap.
constexpr uint64_t kMaxReadScan = 100000;
// Bytes of events in one Read answer: below gRPC's default 4 MiB receive
// limit, so that any client can take it.
constexpr size_t kMaxReadBytes = size_t{3} << 20;

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// The caller's Relay identity ("" for a plaintext caller).
std::string Identity(const grpc::CallbackServerContext* context) {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  return auth == nullptr ? "" : PeerIdentity(*auth);
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

}  // namespace

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) {
  if (absl::Status s = ValidatePublish(*request, limits_); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  const std::string identity = Identity(context);
  if (absl::Status s = auth_->MayPublish(identity, request->topic()); !s.ok()) {
    RELAY_LOG(Warn, "publish denied",
              {{"identity", identity}, {"error", std::string(s.message())}});
    return FinishNow(context, ToGrpcStatus(s));
  }
  google::protobuf::RepeatedPtrField<Event> events(request->events());
  if (absl::Status s = StampSource(identity, &events); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  response->set_request_id(request->request_id());
  // The reactor and response stay valid until Finish(), called exactly once
  // from the log's callback.
  log_->AppendFrom(
      request->topic(), &events,
      [reactor, response](absl::StatusOr<std::vector<AppendResult>> result) {
        if (!result.ok()) {
          reactor->Finish(ToGrpcStatus(result.status()));
          return;
        }
        for (const AppendResult& r : *result) {
          v1::PublishResult* pr = response->add_results();
          pr->set_offset(r.offset);
          pr->set_duplicate(r.duplicate);
        }
        reactor->Finish(grpc::Status::OK);
      },
      nullptr);
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishRequest, v1::PublishResponse>* BrokerService::PublishStream(
    grpc::CallbackServerContext* context) {
  // Owned by gRPC and `streams_` (see EndableStream); deletes itself.
  auto* reactor = new PublishStreamReactor(log_, &streams_, limits_, auth_, Identity(context));
  if (!streams_.Add(reactor)) reactor->EndForShutdown();
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context) {
  // Owned by gRPC and `streams_` (see EndableStream); deletes itself.
  auto* reactor =
      new SubscribeReactor(groups_, &streams_, context->peer(), auth_, Identity(context));
  if (!streams_.Add(reactor)) reactor->EndForShutdown();
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListTopics(grpc::CallbackServerContext* context,
                                                    const v1::ListTopicsRequest*,
                                                    v1::ListTopicsResponse* response) {
  if (absl::Status s = auth_->MayAdmin(Identity(context), "ListTopics"); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  for (const TopicStats& t : log_->ListTopics()) {
    v1::TopicInfo* info = response->add_topics();
    info->set_name(t.name);
    info->set_events(t.events);
    info->set_bytes(t.bytes);
    info->set_first_offset(t.first_offset);
    info->set_end_offset(t.end_offset);
    if (t.events > 0) {
      *info->mutable_first_time() = ToProto(t.first_time);
      *info->mutable_last_time() = ToProto(t.last_time);
    }
    info->set_segments(t.segments);
    info->set_forced_deleted_events(t.forced_deleted_events);
    info->set_dedupe_ids(t.dedupe_ids);
    info->set_dedupe_bytes(t.dedupe_bytes);
    info->set_dedupe_evicted(t.dedupe_evicted);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* BrokerService::DescribeGroups(grpc::CallbackServerContext* context,
                                                        const v1::DescribeGroupsRequest* request,
                                                        v1::DescribeGroupsResponse* response) {
  if (absl::Status s = auth_->MayAdmin(Identity(context), "DescribeGroups"); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (!request->topic().empty()) {
    if (absl::Status s = ValidateName("topic", request->topic()); !s.ok()) {
      return FinishNow(context, ToGrpcStatus(s));
    }
  }
  if (!request->group().empty()) {
    if (absl::Status s = ValidateName("group", request->group()); !s.ok()) {
      return FinishNow(context, ToGrpcStatus(s));
    }
  }
  for (v1::GroupInfo& g : groups_->Describe(request->topic(), request->group())) {
    *response->add_groups() = std::move(g);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* BrokerService::Read(grpc::CallbackServerContext* context,
                                              const v1::ReadRequest* request,
                                              v1::ReadResponse* response) {
  if (absl::Status s = auth_->MayAdmin(Identity(context), "Read"); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (absl::Status s = ValidateReadFilter(*request); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (request->max_events() > kMaxReadEvents) {
    return FinishNow(context,
                     grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  absl::StrCat("max_events ", request->max_events(),
                                               " is above the limit of ", kMaxReadEvents)));
  }
  const uint32_t max_events =
      request->max_events() == 0 ? kDefaultReadEvents : request->max_events();
  const uint64_t end = log_->DurableEnd(request->topic());
  uint64_t next =
      request->has_time()
          ? log_->OffsetForTime(
                request->topic(),
                absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(request->time())))
          : request->offset();
  next = std::max(next, log_->FirstOffset(request->topic()));
  const bool filtered = !request->key().empty() || !request->correlation_id().empty();
  const uint64_t scan_limit = next + (filtered ? kMaxReadScan : max_events);
  size_t bytes = 0;
  bool full = false;
  while (!full && next < end && next < scan_limit &&
         static_cast<uint32_t>(response->events_size()) < max_events) {
    size_t want = filtered ? 1024 : max_events - response->events_size();
    absl::StatusOr<std::vector<Event>> events =
        log_->Read(request->topic(), next, want, kMaxReadBytes);
    if (!events.ok()) return FinishNow(context, ToGrpcStatus(events.status()));
    if (events->empty()) break;
    for (Event& e : *events) {
      if (static_cast<uint32_t>(response->events_size()) >= max_events) break;
      // The answer stays within a default client's message limit (always
      // at least one event); next_offset says where to go on.
      const size_t size = e.ByteSizeLong();
      if (response->events_size() > 0 && bytes + size > kMaxReadBytes) {
        full = true;
        break;
      }
      next = e.offset() + 1;
      if (!request->key().empty() && e.key() != request->key()) continue;
      if (!request->correlation_id().empty()) {
        auto it = e.headers().find("correlation_id");
        if (it == e.headers().end() || it->second != request->correlation_id()) continue;
      }
      bytes += size;
      *response->add_events() = std::move(e);
    }
  }
  response->set_next_offset(next);
  response->set_end_offset(end);
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace relay::broker
