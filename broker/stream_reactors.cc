#include "broker/stream_reactors.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/delivery_wire.h"
#include "common/grpc_status.h"
#include "common/log.h"

namespace relay::broker {
namespace {
// A delivery message grows up to about this size before a new one starts.
constexpr size_t kMaxResponseBytes = 2 << 20;

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the broker is shutting down");
}
}  // namespace

// ------------------------------------------------------------ StreamRegistry

bool StreamRegistry::Add(EndableStream* stream) {
  absl::MutexLock lock(&mu_);
  if (ending_) return false;
  streams_.insert(stream);
  return true;
}

void StreamRegistry::Remove(EndableStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

std::vector<EndableStream*> StreamRegistry::Snapshot(bool end) {
  std::vector<EndableStream*> streams;
  absl::MutexLock lock(&mu_);
  if (end) ending_ = true;
  for (EndableStream* s : streams_) {
    s->Ref();  // alive until the caller is done, even if its OnDone() runs first
    streams.push_back(s);
  }
  return streams;
}

void StreamRegistry::EndAll() {
  // Not under mu_: ending a stream may run its OnDone(), which takes mu_.
  for (EndableStream* s : Snapshot(/*end=*/true)) {
    s->EndForShutdown();
    s->Unref();
  }
}

void StreamRegistry::ReauthorizeAll() {
  for (EndableStream* s : Snapshot(/*end=*/false)) {
    s->Reauthorize();
    s->Unref();
  }
}

// ---------------------------------------------------------------- Subscribe

SubscribeReactor::SubscribeReactor(GroupManager* groups, StreamRegistry* streams, std::string peer,
                                   const Authorizer* auth, std::string identity)
    : groups_(groups),
      streams_(streams),
      peer_(std::move(peer)),
      auth_(auth),
      identity_(std::move(identity)) {
  StartRead(&raw_request_);
}

void SubscribeReactor::EndForShutdown() { Close(ShuttingDown()); }

void SubscribeReactor::Reauthorize() {
  std::string topic, group;
  {
    absl::MutexLock lock(&mu_);
    if (group_ == nullptr || closing_) return;  // not joined yet: the open checks
    topic = group_->topic();
    group = group_->name();
  }
  absl::Status s = auth_->MaySubscribe(identity_, topic, group);
  if (s.ok()) return;
  RELAY_LOG(Warn, "subscription ended: the reloaded policy no longer allows it",
            {{"identity", identity_}, {"peer", peer_}, {"error", std::string(s.message())}});
  Close(ToGrpcStatus(s));
}

void SubscribeReactor::ReadNext() {
  absl::MutexLock lock(&mu_);
  if (!closing_) StartRead(&raw_request_);
}

void SubscribeReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client half-closed, went away, or the server shuts down
    Close(grpc::Status::OK);
    return;
  }
  if (!grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&raw_request_, &request_)
           .ok()) {
    Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "the request does not parse as a SubscribeRequest"));
    return;
  }
  ConsumerGroup* group;
  Scheduler::MemberId member;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;  // ended for shutdown while this read completed
    group = group_;
    member = member_;
  }
  if (group == nullptr) {
    HandleOpen();
    return;
  }
  if (request_.has_open()) {
    Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                       "the subscription is already open: only the first request carries open"));
    return;
  }
  if (absl::Status s = group->Settle(member, request_); !s.ok()) {
    Close(ToGrpcStatus(s));
    return;
  }
  ReadNext();
}

void SubscribeReactor::HandleOpen() {
  if (!request_.has_open()) {
    Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "the first Subscribe request must carry open"));
    return;
  }
  const v1::SubscribeRequest::Open& open = request_.open();
  if (absl::Status s = ValidateOpen(open); !s.ok()) {
    Close(ToGrpcStatus(s));
    return;
  }
  if (absl::Status s = auth_->MaySubscribe(identity_, open.topic(), open.group()); !s.ok()) {
    RELAY_LOG(Warn, "subscribe denied",
              {{"identity", identity_}, {"peer", peer_}, {"error", std::string(s.message())}});
    Close(ToGrpcStatus(s));
    return;
  }
  absl::StatusOr<std::pair<ConsumerGroup*, bool>> group = groups_->GetOrCreate(open);
  if (!group.ok()) {
    Close(ToGrpcStatus(group.status()));
    return;
  }
  // Deliveries may arrive as soon as Join returns; they queue behind
  // `opened` (opened_sent_ is false until it is queued first).
  absl::StatusOr<Scheduler::MemberId> member = group->first->Join(this, open, peer_);
  if (!member.ok()) {
    Close(ToGrpcStatus(member.status()));
    return;
  }
  bool joined = false;
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      group_ = group->first;
      member_ = *member;
      joined = true;
    }
  }
  if (!joined) {  // EndForShutdown() closed the stream meanwhile
    group->first->Leave(*member);
    return;
  }
  // A policy reload while the group was being created or joined skipped
  // this stream (Reauthorize leaves streams not joined yet to the open's
  // check, made before): check again, now that a later reload would not.
  if (absl::Status s = auth_->MaySubscribe(identity_, open.topic(), open.group()); !s.ok()) {
    RELAY_LOG(Warn, "subscription ended: the reloaded policy no longer allows it",
              {{"identity", identity_}, {"peer", peer_}, {"error", std::string(s.message())}});
    Close(ToGrpcStatus(s));
    return;
  }
  RELAY_LOG(Info, "member joined",
            {{"topic", open.topic()},
             {"group", open.group()},
             {"member", absl::StrCat("m-", *member)},
             {"name", open.member_name()},
             {"peer", peer_}});
  v1::SubscribeResponse opened;
  opened.mutable_opened()->set_member_id(absl::StrCat("m-", *member));
  // Takes the group's lock.
  opened.mutable_opened()->set_committed_offset(group->first->committed());
  opened.mutable_opened()->set_created_group(group->second);
  {
    // Lock order: group, then reactor (the group calls Deliver with its sink
    // lock held), so never call into the group while holding mu_.
    absl::MutexLock lock(&mu_);
    queue_.push_front(Outgoing{opened.SerializeAsString(), /*opened=*/true});
    queued_bytes_ += queue_.front().bytes.size();
    opened_sent_ = true;
    MaybeWriteLocked();
    if (!closing_) StartRead(&raw_request_);
  }
}

bool SubscribeReactor::Deliver(absl::string_view topic, std::vector<OutgoingDelivery> deliveries) {
  absl::MutexLock lock(&mu_);
  if (closing_) return false;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    const OutgoingDelivery& d = deliveries[i];
    const size_t size = DeliveryWireSize(topic, d.event, d.attempt);
    // Only `opened` may be queued: deliveries go in a message of their own.
    if (queue_.empty() || queue_.back().opened ||
        (!queue_.back().bytes.empty() && queue_.back().bytes.size() + size > kMaxResponseBytes)) {
      // Room for what is left of the batch at about this size.
      queue_.emplace_back().bytes.reserve(
          std::min(kMaxResponseBytes, size * (deliveries.size() - i)));
    }
    const size_t before = queue_.back().bytes.size();
    AppendDelivery(topic, d.event, d.attempt, &queue_.back().bytes);
    queued_bytes_ += queue_.back().bytes.size() - before;
  }
  // Deliveries that come before group_ is set (Join() returned) are at
  // most the window.
  const size_t limit = group_ != nullptr ? group_->max_window_bytes() : 0;
  if (!backlogged_ && limit > 0 && queued_bytes_ > limit) {
    backlogged_ = true;
    RELAY_LOG(Warn, "member backlogged: it reads its stream slower than its deliveries expire",
              {{"topic", std::string(topic)},
               {"member", absl::StrCat("m-", member_)},
               {"peer", peer_},
               {"unwritten_bytes", absl::StrCat(queued_bytes_)},
               {"limit_bytes", absl::StrCat(limit)}});
  }
  MaybeWriteLocked();
  return backlogged_;
}

bool SubscribeReactor::Backlogged() const {
  absl::MutexLock lock(&mu_);
  return backlogged_;
}

void SubscribeReactor::MaybeWriteLocked() {
  if (writing_ || finished_ || !opened_sent_ || queue_.empty()) return;
  // The message's bytes go to gRPC as they are: the slice owns them.
  auto* bytes = new std::string(std::move(queue_.front().bytes));
  queue_.pop_front();
  queued_bytes_ -= bytes->size();
  grpc::Slice slice(
      bytes->data(), bytes->size(), [](void* p) { delete static_cast<std::string*>(p); }, bytes);
  writing_msg_ = grpc::ByteBuffer(&slice, 1);
  writing_ = true;
  StartWrite(&writing_msg_);
}

void SubscribeReactor::OnWriteDone(bool ok) {
  ConsumerGroup* drained = nullptr;
  Scheduler::MemberId member = 0;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {  // the stream is broken; the read side will close it
      queue_.clear();
      queued_bytes_ = 0;
    }
    if (closing_) {
      if (left_ && !finished_) {
        finished_ = true;
        Finish(finish_status_);
      }
      return;
    }
    MaybeWriteLocked();
    if (backlogged_ && queued_bytes_ <= group_->max_window_bytes() / 2) {
      backlogged_ = false;
      drained = group_;
      member = member_;
    }
  }
  // Outside mu_: the group takes its own lock, then ours (Backlogged()).
  if (drained != nullptr) drained->Drained(member);
}

void SubscribeReactor::Close(const grpc::Status& status) {
  ConsumerGroup* group;
  Scheduler::MemberId member;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
    finish_status_ = status;
    queue_.clear();
    queued_bytes_ = 0;
    group = group_;
    member = member_;
  }
  if (group != nullptr) {
    group->Leave(member);  // after this the group never calls Deliver()
    RELAY_LOG(Info, "member left",
              {{"topic", group->topic()},
               {"group", group->name()},
               {"member", absl::StrCat("m-", member)},
               {"peer", peer_},
               {"status", status.ok() ? "OK" : status.error_message()}});
  }
  absl::MutexLock lock(&mu_);
  left_ = true;
  if (!writing_ && !finished_) {
    finished_ = true;
    Finish(status);
  }
}

void SubscribeReactor::OnDone() {
  streams_->Remove(this);
  Unref();
}

// ------------------------------------------------------------ PublishStream

PublishStreamReactor::PublishStreamReactor(EventLog* log, StreamRegistry* streams, Limits limits,
                                           const Authorizer* auth, std::string identity)
    : log_(log), streams_(streams), limits_(limits), auth_(auth), identity_(std::move(identity)) {
  StartRead(&request_);
}

void PublishStreamReactor::EndForShutdown() {
  absl::MutexLock lock(&mu_);
  ending_ = true;
  MaybeFinishLocked();
}

void PublishStreamReactor::OnReadDone(bool ok) {
  if (!ok) {
    absl::MutexLock lock(&mu_);
    reads_done_ = true;
    MaybeFinishLocked();
    return;
  }
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    // Finished for shutdown while this read completed: the request is not
    // answered, and the publisher sends it again to the next broker.
    if (finished_) return;
    seq = base_seq_ + slots_.size();
    slots_.emplace_back();
    ++outstanding_;
  }
  absl::Status valid = ValidatePublish(request_, limits_);
  if (valid.ok()) {
    valid = auth_->MayPublish(identity_, request_.topic());
    // Once per stream: a client that keeps trying does not flood the log.
    if (!valid.ok() && !denial_logged_) {
      denial_logged_ = true;
      RELAY_LOG(Warn, "publish denied",
                {{"identity", identity_}, {"error", std::string(valid.message())}});
    }
  }
  // The request is ours until the next StartRead: the log serializes its
  // events where they are, and the next request is parsed into the same
  // messages, reusing their memory.
  size_t bytes = 0;
  if (valid.ok()) {
    for (const Event& e : request_.events()) bytes += e.GetCachedSize();  // sized by validation
    valid = StampSource(identity_, request_.mutable_events());
  }
  if (!valid.ok()) {
    v1::PublishResponse response;
    response.set_request_id(request_.request_id());
    response.mutable_error()->set_code(static_cast<int>(valid.code()));
    response.mutable_error()->set_message(std::string(valid.message()));
    Complete(seq, std::move(response));
  } else {
    uint64_t request_id = request_.request_id();
    Ref();  // released when the callback is done with `this` (see the class comment)
    log_->AppendFrom(
        request_.topic(), request_.mutable_events(),
        [this, seq, request_id](absl::StatusOr<std::vector<AppendResult>> result) {
          v1::PublishResponse response;
          response.set_request_id(request_id);
          if (!result.ok()) {
            response.mutable_error()->set_code(static_cast<int>(result.status().code()));
            response.mutable_error()->set_message(std::string(result.status().message()));
          } else {
            for (const AppendResult& r : *result) {
              v1::PublishResult* pr = response.add_results();
              pr->set_offset(r.offset);
              pr->set_duplicate(r.duplicate);
            }
          }
          Complete(seq, std::move(response));  // may Finish()
          Unref();
        },
        origin_);
  }
  // The memory kept is at most what the requests since the last fresh start
  // held (docs/DELIVERY.md#memory-bounds): a stream that once sent large
  // events does not keep it for good.
  retained_bytes_ += bytes;
  if (!valid.ok() || retained_bytes_ > kMaxRetainedRequestBytes) {
    v1::PublishRequest fresh;
    request_.Swap(&fresh);
    retained_bytes_ = 0;
  }
  // Done with request_: read the next one now, or once appends drain.
  absl::MutexLock lock(&mu_);
  if (ending_) {
    MaybeFinishLocked();
  } else if (slots_.size() < kMaxOutstanding) {
    StartRead(&request_);
  } else {
    read_paused_ = true;
  }
}

void PublishStreamReactor::Complete(uint64_t seq, v1::PublishResponse response) {
  absl::MutexLock lock(&mu_);
  Slot& slot = slots_[seq - base_seq_];
  slot.ready = true;
  slot.response = std::move(response);
  --outstanding_;
  MaybeWriteLocked();
  MaybeResumeReadingLocked();
  MaybeFinishLocked();
}

void PublishStreamReactor::MaybeResumeReadingLocked() {
  if (read_paused_ && !ending_ && slots_.size() < kMaxOutstanding) {
    read_paused_ = false;
    StartRead(&request_);
  }
}

void PublishStreamReactor::MaybeWriteLocked() {
  if (writing_ || slots_.empty() || !slots_.front().ready) return;
  if (write_failed_) {
    while (!slots_.empty() && slots_.front().ready) {
      slots_.pop_front();
      ++base_seq_;
    }
    return;
  }
  writing_msg_ = std::move(slots_.front().response);
  slots_.pop_front();
  ++base_seq_;
  writing_ = true;
  StartWrite(&writing_msg_);
}

void PublishStreamReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) write_failed_ = true;
  MaybeWriteLocked();
  MaybeResumeReadingLocked();
  MaybeFinishLocked();
}

void PublishStreamReactor::MaybeFinishLocked() {
  if (finished_ || !(reads_done_ || ending_) || outstanding_ > 0 || writing_) return;
  if (!slots_.empty() && !write_failed_) return;
  finished_ = true;
  Finish(reads_done_ ? grpc::Status::OK : ShuttingDown());
}

void PublishStreamReactor::OnDone() {
  streams_->Remove(this);
  Unref();
}

}  // namespace relay::broker
