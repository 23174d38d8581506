// ceiling_broker: relay.broker.v1's PublishStream and Subscribe with nothing
// behind them, to measure what the gRPC face alone costs in broker_bench's
// shapes (bench/README.md#ceiling_broker). Events live in memory only; a
// publish is answered as soon as it is read (no log, no fsync, no dedupe);
// each delivery goes once (no ack deadline, no redelivery; an ack only
// frees its member's credit). Per topic, one consumer group (the bench's
// shape; a second is refused), events handed out in offset order to the
// member with the most credit, as relay-broker's scheduler does. Events
// published before the topic's first member joined are dropped (W1 has no
// consumer; W2 and W3 subscribe first), and Open's start position is
// ignored.
//
// It takes relay-broker's flags that broker_bench passes (--listen,
// --port_file, --tls_cert/--tls_key/--tls_ca through relay::Process, and
// --data_dir, --fsync, --policy, which it ignores), so that
//
//   build/release/bench/broker_bench --broker=build/release/bench/ceiling_broker ...
//
// runs the same workloads against it. Never a broker to use: it loses
// everything it holds when it stops.

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/process.h"
#include "relay/broker/v1/broker.grpc.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving");
ABSL_FLAG(std::string, data_dir, "", "ignored (relay-broker's flag; nothing is stored)");
ABSL_FLAG(std::string, fsync, "", "ignored (relay-broker's flag; nothing is synced)");
ABSL_FLAG(std::string, policy, "", "ignored (relay-broker's flag; every peer may do anything)");

namespace {

using relay::broker::v1::Broker;
using relay::broker::v1::DescribeGroupsRequest;
using relay::broker::v1::DescribeGroupsResponse;
using relay::broker::v1::PublishRequest;
using relay::broker::v1::PublishResponse;
using relay::broker::v1::SubscribeRequest;
using relay::broker::v1::SubscribeResponse;
using relay::events::v1::Event;

class Hub;

// The process's one lock: the hub's state and every stream's.
ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);

// One member of a group.
class Member : public grpc::ServerBidiReactor<SubscribeRequest, SubscribeResponse> {
 public:
  explicit Member(Hub* hub);
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  friend class Hub;
  // Starts writing `outgoing_` unless a write is under way.
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Leaves the group; finishes the call with `status` once no write is
  // under way.
  void Close(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  Hub* const hub_;
  SubscribeRequest request_;
  std::string topic_ ABSL_GUARDED_BY(mu);
  bool joined_ ABSL_GUARDED_BY(mu) = false;
  bool closing_ ABSL_GUARDED_BY(mu) = false;
  bool finished_ ABSL_GUARDED_BY(mu) = false;
  bool writing_ ABSL_GUARDED_BY(mu) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu);
  uint32_t max_in_flight_ ABSL_GUARDED_BY(mu) = 0;
  uint32_t in_flight_ ABSL_GUARDED_BY(mu) = 0;
  // Deliveries gathered while a write is under way.
  SubscribeResponse outgoing_ ABSL_GUARDED_BY(mu);
  SubscribeResponse writing_msg_ ABSL_GUARDED_BY(mu);
};

// One publishing stream: answers each request at once, in order.
class Publisher : public grpc::ServerBidiReactor<PublishRequest, PublishResponse> {
 public:
  explicit Publisher(Hub* hub) : hub_(hub) { StartRead(&request_); }
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Ends the call when nothing is left to answer (or a write failed).
  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  Hub* const hub_;
  PublishRequest request_;
  bool reading_done_ ABSL_GUARDED_BY(mu) = false;
  bool broken_ ABSL_GUARDED_BY(mu) = false;
  bool finished_ ABSL_GUARDED_BY(mu) = false;
  bool writing_ ABSL_GUARDED_BY(mu) = false;
  std::deque<PublishResponse> answers_ ABSL_GUARDED_BY(mu);
  PublishResponse writing_msg_ ABSL_GUARDED_BY(mu);
};

class Hub {
 public:
  // Appends the events, returns the answer, hands them out.
  PublishResponse Append(PublishRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Topic& topic = topics_[request.topic()];
    PublishResponse answer;
    answer.set_request_id(request.request_id());
    const google::protobuf::Timestamp now =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::GetCurrentTimeNanos());
    for (Event& event : *request.mutable_events()) {
      const uint64_t offset = topic.base + topic.events.size();
      answer.add_results()->set_offset(offset);
      if (topic.group.empty()) {
        // Nobody to read it (W1): not kept.
        ++topic.base;
        continue;
      }
      event.set_offset(offset);
      *event.mutable_publish_time() = now;
      topic.events.push_back(std::move(event));
    }
    Pump(topic);
    return answer;
  }

  // Joins the topic's group (the first one's name is the group; another is
  // refused).
  grpc::Status Join(Member* member, const SubscribeRequest::Open& open)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Topic& topic = topics_[open.topic()];
    if (!topic.group.empty() && topic.group != open.group()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "ceiling_broker: one consumer group per topic");
    }
    topic.group = open.group();
    member->topic_ = open.topic();
    member->max_in_flight_ = open.max_in_flight() == 0 ? 10000 : open.max_in_flight();
    member->joined_ = true;
    member->outgoing_.mutable_opened()->set_member_id(absl::StrCat("m-", ++topic.members_joined));
    topic.members.push_back(member);
    Pump(topic);  // writes `opened`, with what waits for the new member
    return grpc::Status::OK;
  }

  void Leave(Member* member) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!member->joined_) return;
    std::vector<Member*>& members = topics_[member->topic_].members;
    members.erase(std::find(members.begin(), members.end(), member));
    member->joined_ = false;
  }

  void Acked(Member* member, size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    member->in_flight_ -= static_cast<uint32_t>(std::min<size_t>(n, member->in_flight_));
    Pump(topics_[member->topic_]);
  }

  DescribeGroupsResponse Describe(const std::string& topic_name) {
    absl::MutexLock lock(&mu);
    DescribeGroupsResponse response;
    auto it = topics_.find(topic_name);
    if (it == topics_.end() || it->second.group.empty()) return response;
    auto* group = response.add_groups();
    group->set_topic(topic_name);
    group->set_group(it->second.group);
    // Handed out counts as done: deliveries are never taken back.
    group->set_committed_offset(it->second.base);
    group->set_end_offset(it->second.base + it->second.events.size());
    return response;
  }

 private:
  struct Topic {
    // Offset of events.front(): the next to hand out (handed-out and
    // unread events are not kept).
    uint64_t base = 0;
    std::deque<Event> events;  // from base
    std::string group;         // empty until a member joins
    std::vector<Member*> members;
    uint64_t members_joined = 0;
  };

  // Hands out events in offset order, each to the member with the most
  // credit, then starts the writes. Events leave memory as they go out.
  void Pump(Topic& topic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!topic.events.empty()) {
      Member* best = nullptr;
      for (Member* m : topic.members) {
        if (m->closing_ || m->in_flight_ >= m->max_in_flight_) continue;
        if (best == nullptr ||
            m->max_in_flight_ - m->in_flight_ > best->max_in_flight_ - best->in_flight_) {
          best = m;
        }
      }
      if (best == nullptr) break;
      auto* delivery = best->outgoing_.add_deliveries();
      *delivery->mutable_event() = std::move(topic.events.front());
      delivery->set_attempt(1);
      topic.events.pop_front();
      ++topic.base;
      ++best->in_flight_;
    }
    for (Member* m : topic.members) m->MaybeWrite();
  }

  std::map<std::string, Topic> topics_ ABSL_GUARDED_BY(mu);
};

Member::Member(Hub* hub) : hub_(hub) { StartRead(&request_); }

void Member::MaybeWrite() {
  if (writing_ || closing_) return;
  if (!outgoing_.has_opened() && outgoing_.deliveries().empty()) return;
  writing_msg_.Clear();
  writing_msg_.Swap(&outgoing_);
  writing_ = true;
  StartWrite(&writing_msg_);
}

void Member::Close(const grpc::Status& status) {
  if (!closing_) {
    closing_ = true;
    status_ = status;
    hub_->Leave(this);  // no more deliveries; those in flight are dropped
  }
  if (!writing_ && !finished_) {
    finished_ = true;
    Finish(status_);
  }
}

void Member::OnReadDone(bool ok) {
  absl::MutexLock lock(&mu);
  if (!ok || closing_) return Close(grpc::Status::OK);
  if (request_.has_open()) {
    grpc::Status joined = joined_
                              ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "open sent twice")
                              : hub_->Join(this, request_.open());
    if (!joined.ok()) return Close(joined);
  }
  if (joined_ && request_.acks_size() + request_.nacks_size() > 0) {
    hub_->Acked(this, static_cast<size_t>(request_.acks_size() + request_.nacks_size()));
  }
  request_.Clear();
  StartRead(&request_);
}

void Member::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu);
  writing_ = false;
  if (!ok || closing_) return Close(grpc::Status::OK);
  MaybeWrite();
}

void Publisher::MaybeWrite() {
  if (writing_ || broken_ || answers_.empty()) return;
  writing_msg_ = std::move(answers_.front());
  answers_.pop_front();
  writing_ = true;
  StartWrite(&writing_msg_);
}

void Publisher::MaybeFinish() {
  if (finished_ || writing_ || !(broken_ || (reading_done_ && answers_.empty()))) return;
  finished_ = true;
  Finish(grpc::Status::OK);
}

void Publisher::OnReadDone(bool ok) {
  absl::MutexLock lock(&mu);
  if (!ok || broken_) {
    reading_done_ = true;
    return MaybeFinish();
  }
  answers_.push_back(hub_->Append(request_));
  MaybeWrite();
  request_.Clear();
  StartRead(&request_);
}

void Publisher::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu);
  writing_ = false;
  if (!ok) broken_ = true;  // the pending read fails too once Finish ends the call
  MaybeWrite();
  MaybeFinish();
}

class CeilingService final : public Broker::CallbackService {
 public:
  grpc::ServerBidiReactor<PublishRequest, PublishResponse>* PublishStream(
      grpc::CallbackServerContext*) override {
    return new Publisher(&hub_);
  }
  grpc::ServerBidiReactor<SubscribeRequest, SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext*) override {
    return new Member(&hub_);
  }
  grpc::ServerUnaryReactor* DescribeGroups(grpc::CallbackServerContext* context,
                                           const DescribeGroupsRequest* request,
                                           DescribeGroupsResponse* response) override {
    *response = hub_.Describe(request->topic());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Hub hub_;
};

// Writes `port` to `path` whole (a reader never sees half of it).
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << port << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", temp));
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", temp, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  relay::Process process("ceiling_broker", "RELAY_CEILING_",
                         "relay.broker.v1 publish and subscribe in memory, nothing behind them: "
                         "the gRPC face's ceiling for broker_bench (bench/README.md)");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);
  CeilingService service;
  absl::StatusOr<relay::RunningServer> server =
      relay::StartGrpcServer(absl::GetFlag(FLAGS_listen), {&service});
  if (!server.ok()) return process.Fail(server.status());
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    if (absl::Status s = WritePortFile(absl::GetFlag(FLAGS_port_file), server->port); !s.ok()) {
      return process.Fail(s);
    }
  }
  return process.ServeUntilSignal({{"port", absl::StrCat(server->port)}},
                                  [&] { server->server->Shutdown(); });
}
