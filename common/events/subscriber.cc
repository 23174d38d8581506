#include "common/events/subscriber.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/log.h"
#include "common/text.h"
#include "google/protobuf/util/time_util.h"

namespace relay::events {
namespace {
// Nack.reason's bound (broker.proto): the broker ends a stream that sends a
// longer one, so a handler's long error is cut to fit.
constexpr size_t kMaxNackReasonBytes = 1024;
}  // namespace

using relay::broker::v1::SubscribeRequest;
using relay::broker::v1::SubscribeResponse;

Subscriber::Subscriber(std::shared_ptr<ChannelSet> brokers, Options options)
    : brokers_(std::move(brokers)), options_(std::move(options)) {}

Subscriber::Subscriber(std::shared_ptr<grpc::Channel> channel, Options options)
    : Subscriber(std::make_shared<ChannelSet>(std::move(channel)), std::move(options)) {}

Subscriber::~Subscriber() { Stop(); }

void Subscriber::On(const std::string& type, Handler handler) {
  handlers_[type] = std::move(handler);
}

void Subscriber::OnBatch(BatchHandler handler) { batch_handler_ = std::move(handler); }

void Subscriber::Start() {
  {
    absl::MutexLock lock(&mu_);
    running_ = true;
  }
  thread_ = std::thread([this] { Run(); });
}

void Subscriber::Stop() {
  // A second, concurrent Stop() waits here for the first to end the thread,
  // instead of joining it as well.
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    HalfCloseIfIdleLocked();
    auto ended = [this] {
      mu_.AssertHeld();
      return !running_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), options_.stop_timeout) &&
        context_ != nullptr) {
      RELAY_LOG(Warn, "subscriber stop timed out, cancelling the stream",
                {{"topic", options_.topic},
                 {"group", options_.group},
                 {"timeout", absl::FormatDuration(options_.stop_timeout)}});
      context_->TryCancel();
    }
  }
  if (thread_.joinable()) thread_.join();
}

bool Subscriber::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Subscriber::HalfCloseIfIdleLocked() {
  if (stream_ == nullptr || handling_ || writes_done_) return;
  writes_done_ = true;
  // The broker answers a half-close by ending the stream once it has read
  // everything before it: the acks sent so far count.
  stream_->WritesDone();
}

bool Subscriber::WaitUntilOpen(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto open = [this] {
    mu_.AssertHeld();
    return open_;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&open), timeout);
}

absl::Status Subscriber::refusal() const {
  absl::MutexLock lock(&mu_);
  return refusal_;
}

uint64_t Subscriber::handled() const {
  absl::MutexLock lock(&mu_);
  return handled_;
}

uint64_t Subscriber::queued() const {
  absl::MutexLock lock(&mu_);
  return queued_;
}

std::string Subscriber::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

void Subscriber::Run() {
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (true) {
    bool opened = RunStream();
    absl::MutexLock lock(&mu_);
    open_ = false;
    auto stopping = [this] {
      mu_.AssertHeld();
      return stopping_;
    };
    if (!stopping_) {
      if (opened) backoff.Reset();
      mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff.Next());
    }
    if (stopping_) {
      running_ = false;
      return;
    }
  }
}

bool Subscriber::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    context_ = &context;
  }
  std::unique_ptr<relay::broker::v1::Broker::Stub> stub =
      relay::broker::v1::Broker::NewStub(brokers_->Pick());
  auto stream = stub->Subscribe(&context);
  SubscribeRequest open_request;
  SubscribeRequest::Open* open = open_request.mutable_open();
  open->set_topic(options_.topic);
  open->set_group(options_.group);
  if (options_.filter_types) {
    for (const auto& [type, handler] : handlers_) open->add_types(type);
  }
  *open->mutable_start() = options_.start;
  open->set_max_in_flight(options_.max_in_flight);
  *open->mutable_ack_deadline() = google::protobuf::util::TimeUtil::MillisecondsToDuration(
      absl::ToInt64Milliseconds(options_.ack_deadline));
  open->set_member_name(options_.member_name);

  bool opened = false;
  SubscribeResponse response;
  if (stream->Write(open_request)) {
    {
      absl::MutexLock lock(&mu_);
      stream_ = stream.get();
      handling_ = false;
      writes_done_ = false;
      queue_.clear();
      queued_ = 0;
      reading_ = true;
      if (stopping_) HalfCloseIfIdleLocked();
    }
    std::thread handler([this, &context, &stream] { HandleQueued(&context, stream.get()); });
    while (stream->Read(&response)) {
      if (response.has_opened()) {
        opened = true;
        bool was_refused;
        {
          absl::MutexLock lock(&mu_);
          open_ = true;
          failing_ = false;
          was_refused = !refusal_.ok();
          refusal_ = absl::OkStatus();
          RELAY_LOG(Info, "subscribed",
                    {{"topic", options_.topic},
                     {"group", options_.group},
                     {"member", response.opened().member_id()},
                     {"committed", absl::StrCat(response.opened().committed_offset())}});
        }
        if (was_refused && options_.on_refusal_change) options_.on_refusal_change(absl::OkStatus());
      }
      if (response.deliveries().empty()) continue;
      absl::MutexLock lock(&mu_);
      // Half-closed: nothing handled now could be acked. These go back to
      // the group when the broker ends the stream.
      if (writes_done_) continue;
      queued_ += static_cast<uint64_t>(response.deliveries_size());
      queue_.push_back(std::move(response));
      response.Clear();
    }
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
    }
    handler.join();
  }
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    // Received, never handled: the broker hands them out again.
    queue_.clear();
    queued_ = 0;
  }
  grpc::Status status = stream->Finish();
  // The broker refused the open itself: retrying cannot help until someone
  // changes the group or this service. Said loudly, and exposed.
  const bool refused = !opened && (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
                                   status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  absl::Status refusal;
  bool refusal_changed = false;
  {
    absl::MutexLock lock(&mu_);
    if (refused && !stopping_) {
      refusal =
          absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
      refusal_changed = refusal_ != refusal;
      if (refusal_changed) {
        refusal_ = refusal;
        RELAY_LOG(Error, "subscription refused by the broker, retrying with backoff",
                  {{"topic", options_.topic},
                   {"group", options_.group},
                   {"code", absl::StrCat(status.error_code())},
                   {"error", status.error_message()}});
      }
    }
  }
  if (refusal_changed && options_.on_refusal_change) options_.on_refusal_change(refusal);
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  if (!status.ok() && !stopping_) {
    last_error_ = status.error_message();
    // One line per outage, not one per reconnect attempt.
    if (opened || !failing_) {
      RELAY_LOG(Warn,
                opened ? "subscription stream ended, reconnecting"
                       : "cannot open subscription, retrying with backoff",
                {{"topic", options_.topic},
                 {"group", options_.group},
                 {"code", absl::StrCat(status.error_code())},
                 {"error", status.error_message()}});
    }
    failing_ = !opened;
  }
  return opened;
}

void Subscriber::HandleQueued(
    grpc::ClientContext* context,
    grpc::ClientReaderWriter<SubscribeRequest, SubscribeResponse>* stream) {
  while (true) {
    std::vector<SubscribeResponse> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return !queue_.empty() || !reading_ || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      // Stopping: no new batch (Stop() half-closes; what is queued goes back
      // to the group). Reads ended: nothing handled now could be acked.
      if (stopping_ || !reading_ || writes_done_) return;
      batch.swap(queue_);
      queued_ = 0;
      handling_ = true;
    }
    SubscribeRequest settle = Handle(batch);
    const bool sent = stream->Write(settle);
    {
      absl::MutexLock lock(&mu_);
      handling_ = false;
      if (sent && stopping_) HalfCloseIfIdleLocked();  // the acks first, then the half-close
    }
    if (!sent) {
      // The stream broke: end the reads too, so RunStream() gets its status.
      context->TryCancel();
      return;
    }
  }
}

SubscribeRequest Subscriber::Handle(const std::vector<SubscribeResponse>& batch) {
  std::vector<Delivery> deliveries;
  for (const SubscribeResponse& response : batch) {
    for (const auto& d : response.deliveries()) {
      deliveries.push_back(Delivery{&d.event(), DeliveryInfo{d.attempt()}});
    }
  }
  std::vector<absl::Status> batch_statuses;
  if (batch_handler_) batch_statuses = batch_handler_(deliveries);
  SubscribeRequest settle;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    const Event& e = *deliveries[i].event;
    absl::Status s = absl::OkStatus();
    if (batch_handler_) {
      s = i < batch_statuses.size()
              ? batch_statuses[i]
              : absl::InternalError("batch handler returned no status for this delivery");
    } else {
      auto it = handlers_.find(e.type());
      if (it != handlers_.end()) s = it->second(e, deliveries[i].info);
    }
    if (s.ok()) {
      auto* ack = settle.add_acks();
      ack->set_offset(e.offset());
      ack->set_attempt(deliveries[i].info.attempt);
    } else {
      auto* nack = settle.add_nacks();
      nack->set_offset(e.offset());
      nack->set_attempt(deliveries[i].info.attempt);
      std::string reason(Utf8Prefix(s.ToString(), kMaxNackReasonBytes));
      // A proto3 string must be UTF-8, or the broker cannot parse the request.
      if (!IsUtf8(reason)) {
        reason = absl::StrCat(absl::StatusCodeToString(s.code()), ": (message not UTF-8)");
      }
      nack->set_reason(std::move(reason));
    }
  }
  absl::MutexLock lock(&mu_);
  handled_ += deliveries.size();
  return settle;
}

}  // namespace relay::events
