#include "bench/bench_publisher.h"

#include <deque>
#include <future>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/events/publisher.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::bench {
namespace {

using relay::broker::v1::PublishRequest;
using relay::broker::v1::PublishResponse;

// Raw PublishStream: a writer (the caller of Send) and a reader thread that
// matches answers, in order, to the batches in flight.
class StreamPublisher final : public BenchPublisher {
 public:
  StreamPublisher(std::shared_ptr<grpc::Channel> channel, const PublisherOptions& options)
      : stub_(relay::broker::v1::Broker::NewStub(channel)), options_(options) {
    context_.set_deadline(absl::ToChronoTime(options_.deadline));
    stream_ = stub_->PublishStream(&context_);
    reader_ = std::thread([this] { ReadLoop(); });
  }

  ~StreamPublisher() override {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
    if (!finished_) stream_->Finish().IgnoreError();
  }

  absl::Status Send(std::vector<Event> batch) override {
    PublishRequest request;
    request.set_topic(options_.topic);
    request.mutable_events()->Reserve(static_cast<int>(batch.size()));
    for (Event& e : batch) *request.add_events() = std::move(e);
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return !error_.ok() || broken_ ||
               in_flight_.size() < static_cast<size_t>(options_.max_in_flight_batches);
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&ready), options_.deadline)) {
        return absl::DeadlineExceededError(
            absl::StrCat("publish window still full at the deadline (", acked_, " acked)"));
      }
      if (!error_.ok()) return error_;
      if (broken_) return absl::UnavailableError("the publish stream broke");
      request.set_request_id(next_request_id_++);
      in_flight_.push_back({request.request_id(), static_cast<size_t>(request.events_size())});
    }
    if (!stream_->Write(request)) {
      return absl::UnavailableError("writing to the publish stream failed");
    }
    return absl::OkStatus();
  }

  absl::Status Drain(absl::Time deadline) override {
    stream_->WritesDone();
    absl::Status result;
    {
      absl::MutexLock lock(&mu_);
      auto drained = [this] {
        mu_.AssertHeld();
        return in_flight_.empty() || broken_;
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
        result = absl::DeadlineExceededError(absl::StrCat(
            in_flight_.size(), " batches unanswered at the deadline (", acked_, " events acked)"));
      } else if (!error_.ok()) {
        result = error_;
      } else if (!in_flight_.empty()) {
        result = absl::UnavailableError(absl::StrCat("the publish stream broke with ",
                                                     in_flight_.size(), " batches unanswered"));
      }
    }
    if (!result.ok()) context_.TryCancel();
    reader_.join();
    grpc::Status status = stream_->Finish();
    finished_ = true;
    if (result.ok() && !status.ok()) {
      result = absl::UnavailableError(absl::StrCat("publish stream: ", status.error_message()));
    }
    return result;
  }

  uint64_t acked() const override {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  uint64_t duplicates() const override {
    absl::MutexLock lock(&mu_);
    return duplicates_;
  }
  int64_t last_ack_nanos() const override {
    absl::MutexLock lock(&mu_);
    return last_ack_nanos_;
  }

 private:
  struct InFlight {
    uint64_t request_id;
    size_t events;
  };

  void ReadLoop() {
    PublishResponse response;
    while (stream_->Read(&response)) {
      const int64_t now = NowNanos();
      absl::MutexLock lock(&mu_);
      if (in_flight_.empty() || in_flight_.front().request_id != response.request_id()) {
        error_ = absl::InternalError(absl::StrCat("publish answer ", response.request_id(),
                                                  " does not match the oldest request"));
        break;
      }
      const InFlight batch = in_flight_.front();
      in_flight_.pop_front();
      if (response.has_error()) {
        if (error_.ok()) {
          error_ =
              absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                           absl::StrCat("broker rejected a batch: ", response.error().message()));
        }
        continue;
      }
      if (static_cast<size_t>(response.results_size()) != batch.events && error_.ok()) {
        error_ = absl::InternalError(absl::StrCat("broker answered ", response.results_size(),
                                                  " results for ", batch.events, " events"));
      }
      acked_ += static_cast<uint64_t>(response.results_size());
      for (const auto& r : response.results()) duplicates_ += r.duplicate() ? 1 : 0;
      last_ack_nanos_ = now;
    }
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }

  const std::unique_ptr<relay::broker::v1::Broker::Stub> stub_;
  const PublisherOptions options_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<PublishRequest, PublishResponse>> stream_;
  std::thread reader_;
  bool finished_ = false;  // only touched by the writer side

  mutable absl::Mutex mu_;
  std::deque<InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_ack_nanos_ ABSL_GUARDED_BY(mu_) = 0;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // the reader has stopped
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// The client library's Publisher: one future per event; Drain is Flush.
class LibraryPublisher final : public BenchPublisher {
 public:
  LibraryPublisher(std::shared_ptr<grpc::Channel> channel, const PublisherOptions& options)
      : options_(options), publisher_(std::move(channel), LibraryOptions(options)) {}

  absl::Status Send(std::vector<Event> batch) override {
    if (absl::Now() > options_.deadline) {
      return absl::DeadlineExceededError("publishing past the deadline");
    }
    for (Event& e : batch) futures_.push_back(publisher_.Publish(options_.topic, std::move(e)));
    return absl::OkStatus();
  }

  absl::Status Drain(absl::Time deadline) override {
    absl::Status flushed = publisher_.Flush(deadline - absl::Now());
    last_ack_nanos_.store(NowNanos());
    publisher_.Close();  // resolves whatever is left with UNAVAILABLE
    if (!flushed.ok()) return flushed;
    for (auto& f : futures_) {
      absl::StatusOr<uint64_t> offset = f.get();
      if (!offset.ok()) return offset.status();
    }
    return absl::OkStatus();
  }

  uint64_t acked() const override { return publisher_.acked(); }
  uint64_t duplicates() const override { return 0; }
  int64_t last_ack_nanos() const override { return last_ack_nanos_.load(); }

 private:
  static relay::events::Publisher::Options LibraryOptions(const PublisherOptions& o) {
    relay::events::Publisher::Options options;
    options.max_batch_events = o.max_batch_events;
    options.max_in_flight_batches = o.max_in_flight_batches;
    return options;
  }

  const PublisherOptions options_;
  relay::events::Publisher publisher_;
  std::vector<std::future<absl::StatusOr<uint64_t>>> futures_;  // Send/Drain thread only
  std::atomic<int64_t> last_ack_nanos_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<BenchPublisher>> NewPublisher(std::shared_ptr<grpc::Channel> channel,
                                                             const PublisherOptions& options) {
  if (options.client == "stream")
    return std::make_unique<StreamPublisher>(std::move(channel), options);
  if (options.client == "library") {
    return std::make_unique<LibraryPublisher>(std::move(channel), options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--client=", options.client, ": expected stream or library"));
}

}  // namespace relay::bench
