#include "bench/bench_consumer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"

namespace relay::bench {

using relay::broker::v1::SubscribeRequest;
using relay::broker::v1::SubscribeResponse;

BenchConsumer::BenchConsumer(std::shared_ptr<grpc::Channel> channel, Options options, Tally* tally)
    : stub_(relay::broker::v1::Broker::NewStub(channel)),
      options_(std::move(options)),
      tally_(tally) {
  context_.set_deadline(absl::ToChronoTime(options_.deadline));
}

BenchConsumer::~BenchConsumer() { Stop(); }

absl::Status BenchConsumer::Start(absl::Time open_deadline) {
  wall_minus_monotonic_ = absl::GetCurrentTimeNanos() - NowNanos();
  thread_ = std::thread([this] { Run(); });
  absl::MutexLock lock(&mu_);
  auto settled = [this] {
    mu_.AssertHeld();
    return opened_ || ended_;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&settled), open_deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat("subscription of ", options_.member_name, " not opened in time"));
  }
  if (!opened_) {
    return absl::UnavailableError(
        absl::StrCat("subscription of ", options_.member_name, " failed: ", error_));
  }
  return absl::OkStatus();
}

void BenchConsumer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  context_.TryCancel();
  if (thread_.joinable()) thread_.join();
}

uint64_t BenchConsumer::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

uint64_t BenchConsumer::messages() const {
  absl::MutexLock lock(&mu_);
  return messages_;
}

std::string BenchConsumer::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

void BenchConsumer::Run() {
  auto stream = stub_->Subscribe(&context_);
  SubscribeRequest open_request;
  SubscribeRequest::Open* open = open_request.mutable_open();
  open->set_topic(options_.topic);
  open->set_group(options_.group);
  open->mutable_start()->set_earliest(true);
  open->set_max_in_flight(options_.max_in_flight);
  *open->mutable_ack_deadline() = google::protobuf::util::TimeUtil::SecondsToDuration(60);
  open->set_member_name(options_.member_name);

  SubscribeResponse response;
  if (stream->Write(open_request)) {
    while (stream->Read(&response)) {
      const int64_t now = NowNanos();
      if (response.has_opened()) {
        absl::MutexLock lock(&mu_);
        opened_ = true;
      }
      if (response.deliveries().empty()) continue;
      SubscribeRequest settle;
      settle.mutable_acks()->Reserve(response.deliveries_size());
      bool completed = false;
      for (const auto& d : response.deliveries()) {
        const Event& e = d.event();
        if (options_.record_latency) {
          const int64_t scheduled = ScheduledNanos(e);
          const int64_t appended = e.publish_time().seconds() * 1'000'000'000 +
                                   e.publish_time().nanos() - wall_minus_monotonic_;
          latencies_.push_back(now - scheduled);
          to_append_.push_back(appended - scheduled);
          append_to_receive_.push_back(now - appended);
        }
        completed |= tally_->Record(e);
        SubscribeRequest::Ack* ack = settle.add_acks();
        ack->set_offset(e.offset());
        ack->set_attempt(d.attempt());
      }
      {
        absl::MutexLock lock(&mu_);
        received_ += static_cast<uint64_t>(response.deliveries_size());
        ++messages_;
      }
      if (!stream->Write(settle)) break;
      // The workload ends when the acks of the last new event are written.
      if (completed) tally_->MarkComplete(NowNanos());
    }
  }
  context_.TryCancel();
  grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu_);
  ended_ = true;
  if (!stopping_) {
    error_ = status.ok() ? "the broker ended the stream" : status.error_message();
  }
}

}  // namespace relay::bench
