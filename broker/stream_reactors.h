#ifndef RELAY_BROKER_STREAM_REACTORS_H_
#define RELAY_BROKER_STREAM_REACTORS_H_

#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "broker/consumer_group.h"
#include "broker/group_manager.h"
#include "broker/validation.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::broker {

// One member's Subscribe stream. Reads: the open, then batches of acks and
// nacks. Writes: `opened`, then batches of deliveries that the group hands
// over through MemberSink::Deliver (several pending batches are merged into
// one message while a write is in flight).
//
// Lifetime: created by BrokerService::Subscribe, owned by gRPC, deletes
// itself in OnDone(). It leaves its group before it calls Finish(), so the
// group never touches it after that.
class SubscribeReactor final
    : public grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>,
      public MemberSink {
 public:
  SubscribeReactor(GroupManager* groups, std::string peer);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

  void Deliver(std::vector<v1::Delivery> deliveries) override;

 private:
  void HandleOpen();
  // Leaves the group and finishes the stream with `status` once no write is
  // in flight. Called at most once, from the read path.
  void Close(const grpc::Status& status);
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GroupManager* const groups_;
  const std::string peer_;
  v1::SubscribeRequest request_;  // only touched by the read path
  ConsumerGroup* group_ = nullptr;
  Scheduler::MemberId member_ = 0;

  absl::Mutex mu_;
  // Responses waiting to be written; the back one is still being filled.
  std::deque<v1::SubscribeResponse> queue_ ABSL_GUARDED_BY(mu_);
  size_t back_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  v1::SubscribeResponse writing_msg_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool opened_sent_ ABSL_GUARDED_BY(mu_) = false;  // deliveries wait for `opened`
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

// One PublishStream: reads batches, appends each to the log as it arrives
// (at most kMaxOutstanding not yet durable; reading pauses beyond), and
// answers them in request order as they become durable.
//
// Lifetime: owned by gRPC, deletes itself in OnDone(); it finishes only once
// every append it started has called back.
class PublishStreamReactor final
    : public grpc::ServerBidiReactor<v1::PublishRequest, v1::PublishResponse> {
 public:
  PublishStreamReactor(EventLog* log, Limits limits);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  static constexpr int kMaxOutstanding = 64;
  struct Slot {
    bool ready = false;
    v1::PublishResponse response;
  };

  void Complete(uint64_t seq, v1::PublishResponse response);
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventLog* const log_;
  const Limits limits_;
  v1::PublishRequest request_;

  absl::Mutex mu_;
  std::deque<Slot> slots_ ABSL_GUARDED_BY(mu_);  // slots_[0] has sequence number base_seq_
  uint64_t base_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::PublishResponse writing_msg_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STREAM_REACTORS_H_
