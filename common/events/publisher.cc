#include "common/events/publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/log.h"
#include "google/protobuf/io/coded_stream.h"

namespace relay::events {

using relay::broker::v1::PublishRequest;
using relay::broker::v1::PublishResponse;

namespace {

// What an event of `event_bytes` adds to a PublishRequest: its bytes, the
// field tag and the length prefix.
size_t FramedBytes(size_t event_bytes) {
  return event_bytes + 1 +
         google::protobuf::io::CodedOutputStream::VarintSize64(static_cast<uint64_t>(event_bytes));
}

// A request for `topic` with the largest request id and no event yet.
size_t RequestHeaderBytes(const std::string& topic) {
  PublishRequest header;
  header.set_topic(topic);
  header.set_request_id(UINT64_MAX);
  return header.ByteSizeLong();
}

}  // namespace

Publisher::Publisher(std::shared_ptr<ChannelSet> brokers, Options options)
    : brokers_(std::move(brokers)), options_(options), thread_([this] { Run(); }) {}

Publisher::Publisher(std::shared_ptr<grpc::Channel> channel, Options options)
    : Publisher(std::make_shared<ChannelSet>(std::move(channel)), options) {}

Publisher::~Publisher() { Close(); }

std::future<absl::StatusOr<uint64_t>> Publisher::Publish(const std::string& topic,
                                                         relay::events::v1::Event event) {
  Pending p;
  p.topic = topic;
  p.event = std::move(event);
  std::future<absl::StatusOr<uint64_t>> future = p.promise.get_future();
  const size_t event_bytes = p.event.ByteSizeLong();
  absl::MutexLock lock(&mu_);
  EnqueueLocked(std::move(p), event_bytes);
  return future;
}

std::vector<std::future<absl::StatusOr<uint64_t>>> Publisher::PublishBatch(
    const std::string& topic, std::vector<relay::events::v1::Event> events) {
  std::vector<Pending> pending(events.size());
  std::vector<std::future<absl::StatusOr<uint64_t>>> futures;
  futures.reserve(events.size());
  size_t request_bytes = RequestHeaderBytes(topic);
  for (size_t i = 0; i < events.size(); ++i) {
    pending[i].topic = topic;
    pending[i].event = std::move(events[i]);
    request_bytes += FramedBytes(pending[i].event.ByteSizeLong());
    futures.push_back(pending[i].promise.get_future());
  }
  if (pending.empty()) return futures;
  absl::MutexLock lock(&mu_);
  const absl::Status refused =
      RefusalLocked(request_bytes, pending.size(),
                    absl::StrCat("a request of these ", pending.size(), " events"));
  if (!refused.ok()) {
    for (Pending& p : pending) p.promise.set_value(refused);
    return futures;
  }
  pending.front().request_events = pending.size();
  pending_ += pending.size();
  for (Pending& p : pending) queue_.push_back(std::move(p));
  return futures;
}

absl::Status Publisher::RefusalLocked(size_t request_bytes, size_t events,
                                      absl::string_view request) const {
  if (request_bytes > options_.max_message_bytes) {
    // Never sendable: the broker's gRPC limit would reject every resend.
    return absl::InvalidArgumentError(absl::StrCat(
        request, " (", request_bytes, " bytes) exceeds the largest message the broker receives (",
        options_.max_message_bytes, " bytes)"));
  }
  if (closed_) return absl::UnavailableError("publisher is closed");
  if (pending_ + events > options_.max_pending_events) {
    return absl::ResourceExhaustedError(
        events == 1
            ? absl::StrCat("publisher holds ", pending_, " unacknowledged events (the limit)")
            : absl::StrCat("publisher holds ", pending_, " unacknowledged events; ", events,
                           " more would pass the limit"));
  }
  return absl::OkStatus();
}

void Publisher::EnqueueLocked(Pending p, size_t event_bytes) {
  const absl::Status refused = RefusalLocked(
      RequestHeaderBytes(p.topic) + FramedBytes(event_bytes), 1,
      absl::StrCat("event ", p.event.id(), " is ", event_bytes, " bytes: a request of it alone"));
  if (!refused.ok()) {
    p.promise.set_value(refused);
    return;
  }
  ++pending_;
  queue_.push_back(std::move(p));
}

absl::Status Publisher::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto drained = [this] {
    mu_.AssertHeld();
    return pending_ == 0;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&drained), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(pending_, " events still unacknowledged after ",
                                                    absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

void Publisher::Close() {
  // A second, concurrent Close() waits here for the first to join and
  // resolve everything, instead of joining the thread as well.
  absl::MutexLock close_lock(&close_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      if (!thread_.joinable()) return;
    }
    closed_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  absl::Status closed = absl::UnavailableError("publisher closed before the broker acknowledged");
  for (auto& b : resend_) {
    for (auto& p : b->promises) p.set_value(closed);
  }
  for (Pending& p : queue_) p.promise.set_value(closed);
  resend_.clear();
  queue_.clear();
  pending_ = 0;
}

uint64_t Publisher::acked() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

void Publisher::Run() {
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (true) {
    bool progressed = RunStream();
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    if (progressed) backoff.Reset();
    auto closed = [this] {
      mu_.AssertHeld();
      return closed_;
    };
    if (mu_.AwaitWithTimeout(absl::Condition(&closed), backoff.Next())) return;
  }
}

std::shared_ptr<Publisher::Batch> Publisher::TakeBatchLocked() {
  if (!resend_.empty()) {
    std::shared_ptr<Batch> b = std::move(resend_.front());
    resend_.pop_front();
    return b;
  }
  auto b = std::make_shared<Batch>();
  b->request.set_topic(queue_.front().topic);
  b->request.set_request_id(next_request_id_++);
  auto take_front = [this, &b] {
    mu_.AssertHeld();
    *b->request.add_events() = std::move(queue_.front().event);
    b->promises.push_back(std::move(queue_.front().promise));
    queue_.pop_front();
  };
  if (const size_t n = queue_.front().request_events; n > 0) {
    // A PublishBatch(): exactly its events, alone (they fit, it checked).
    for (size_t i = 0; i < n; ++i) take_front();
    b->whole = true;
    return b;
  }
  size_t bytes = 0;  // the events'
  size_t message_bytes = RequestHeaderBytes(b->request.topic());
  while (!queue_.empty() && queue_.front().topic == b->request.topic() &&
         queue_.front().request_events == 0 && b->promises.size() < options_.max_batch_events) {
    size_t size = queue_.front().event.ByteSizeLong();
    // Publish() let in only events that fit a request alone.
    if (!b->promises.empty() && (bytes + size > options_.max_batch_bytes ||
                                 message_bytes + FramedBytes(size) > options_.max_message_bytes)) {
      break;
    }
    bytes += size;
    message_bytes += FramedBytes(size);
    take_front();
  }
  return b;
}

void Publisher::SplitLocked(Batch& batch) {
  for (size_t i = batch.promises.size(); i-- > 0;) {
    auto single = std::make_shared<Batch>();
    single->request.set_topic(batch.request.topic());
    single->request.set_request_id(next_request_id_++);
    *single->request.add_events() = std::move(*batch.request.mutable_events(static_cast<int>(i)));
    single->promises.push_back(std::move(batch.promises[i]));
    single->whole = true;
    resend_.push_front(std::move(single));
  }
}

void Publisher::ResolveLocked(Batch& batch, const PublishResponse& response) {
  size_t n = batch.promises.size();
  if (response.has_error()) {
    absl::Status error(static_cast<absl::StatusCode>(response.error().code()),
                       response.error().message());
    for (auto& p : batch.promises) p.set_value(error);
  } else {
    for (size_t i = 0; i < n; ++i) {
      if (i < static_cast<size_t>(response.results_size())) {
        batch.promises[i].set_value(response.results(static_cast<int>(i)).offset());
        ++acked_;
      } else {
        batch.promises[i].set_value(absl::InternalError("broker answered fewer results"));
      }
    }
  }
  pending_ -= n;
}

bool Publisher::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    stream_context_ = &context;
    stream_broken_ = false;
  }
  std::unique_ptr<relay::broker::v1::Broker::Stub> stub =
      relay::broker::v1::Broker::NewStub(brokers_->Pick());
  std::shared_ptr<grpc::ClientReaderWriter<PublishRequest, PublishResponse>> stream =
      stub->PublishStream(&context);
  bool progressed = false;

  // Answers come in request order: the reader matches them to in_flight_.
  std::thread reader([&] {
    PublishResponse response;
    while (stream->Read(&response)) {
      absl::MutexLock lock(&mu_);
      if (in_flight_.empty() || in_flight_.front()->request.request_id() != response.request_id()) {
        RELAY_LOG(Error, "publish answer does not match the oldest request",
                  {{"request", absl::StrCat(response.request_id())}});
        break;
      }
      const int code = response.error().code();
      if (response.has_error() && (code == static_cast<int>(absl::StatusCode::kUnavailable) ||
                                   code == static_cast<int>(absl::StatusCode::kInternal))) {
        break;  // the broker could not store it: resend on a new stream
      }
      std::shared_ptr<Batch> batch = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (response.has_error() && !batch->whole && batch->promises.size() > 1 &&
          (code == static_cast<int>(absl::StatusCode::kInvalidArgument) ||
           code == static_cast<int>(absl::StatusCode::kPermissionDenied))) {
        // Refused whole for what may be one event of another caller's: each
        // gets its own answer.
        SplitLocked(*batch);
        continue;
      }
      ResolveLocked(*batch, response);
      progressed = true;
    }
    absl::MutexLock lock(&mu_);
    stream_broken_ = true;
  });

  while (true) {
    std::shared_ptr<Batch> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return closed_ || stream_broken_ ||
               ((!queue_.empty() || !resend_.empty()) &&
                in_flight_.size() < static_cast<size_t>(options_.max_in_flight_batches));
      };
      mu_.Await(absl::Condition(&ready));
      if (closed_ || stream_broken_) break;
      batch = TakeBatchLocked();
      in_flight_.push_back(batch);
    }
    if (!stream->Write(batch->request)) break;
  }
  context.TryCancel();
  reader.join();
  stream->Finish().IgnoreError();  // the cause shows in what was (not) answered
  absl::MutexLock lock(&mu_);
  stream_context_ = nullptr;
  // Unanswered batches go out again first, in their order.
  while (!in_flight_.empty()) {
    resend_.push_front(std::move(in_flight_.back()));
    in_flight_.pop_back();
  }
  return progressed;
}

}  // namespace relay::events
