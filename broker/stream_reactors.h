#ifndef RELAY_BROKER_STREAM_REACTORS_H_
#define RELAY_BROKER_STREAM_REACTORS_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "broker/consumer_group.h"
#include "broker/group_manager.h"
#include "broker/policy.h"
#include "broker/validation.h"
#include "grpcpp/support/byte_buffer.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::broker {

// A streaming reactor that shutdown can end early (an idle stream would
// otherwise hold grpc::Server::Shutdown for its whole grace period).
// Reference counted: gRPC's reference lasts until OnDone(); StreamRegistry
// takes one for the time it calls EndForShutdown(), so that call never races
// with OnDone() deleting the reactor. The last Unref() deletes.
class EndableStream {
 public:
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Ends the stream soon, with UNAVAILABLE: at once for a Subscribe stream
  // (its member leaves the group first), once the answers in progress are
  // written for a PublishStream. Any thread; idempotent.
  virtual void EndForShutdown() = 0;
  // Checks the stream against the policy in force (after a reload) and
  // ends it, PERMISSION_DENIED, when its caller lost the right to it. Any
  // thread.
  virtual void Reauthorize() {}

 protected:
  virtual ~EndableStream() = default;

 private:
  std::atomic<int> refs_{1};  // gRPC's, released in OnDone()
};

// The open streams of one BrokerService. Thread-safe.
class StreamRegistry {
 public:
  // Adds `stream` (removed by its OnDone()). Returns false after EndAll():
  // the caller then ends the stream itself.
  bool Add(EndableStream* stream);
  void Remove(EndableStream* stream);
  // Ends every open stream, and refuses new ones from now on.
  void EndAll();
  // Reauthorize() on every open stream.
  void ReauthorizeAll();

 private:
  // The open streams, each with a reference the caller drops; with `end`,
  // refuses new ones from now on.
  std::vector<EndableStream*> Snapshot(bool end);

  absl::Mutex mu_;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<EndableStream*> streams_ ABSL_GUARDED_BY(mu_);
};

// One member's Subscribe stream. Reads: the open, then batches of acks and
// nacks. Writes: `opened`, then batches of deliveries that the group hands
// over through MemberSink::Deliver (several pending batches are merged into
// one message while a write is in flight).
//
// The stream is raw (grpc::ByteBuffer both ways): requests are parsed here,
// and delivery messages are written straight from the events' stored bytes
// (delivery_wire.h) rather than built as protobuf messages.
//
// Lifetime: created by BrokerService::Subscribe, registered in `streams`,
// owned by gRPC until OnDone(), which unregisters it and drops gRPC's
// reference (EndableStream). It leaves its group before it calls Finish(),
// so the group never touches it after that.
class SubscribeReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                               public MemberSink,
                               public EndableStream {
 public:
  // `identity`: the caller's (common/tls.h), checked against `auth` at the open.
  SubscribeReactor(GroupManager* groups, StreamRegistry* streams, std::string peer,
                   const Authorizer* auth, std::string identity);
  void EndForShutdown() override;
  // A member whose identity may no longer subscribe to its topic as its
  // group leaves it, and the stream ends.
  void Reauthorize() override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

  bool Deliver(absl::string_view topic, std::vector<OutgoingDelivery> deliveries) override;
  // More than the group's window of bytes waits to be written; false again
  // once half of it is written (then the group hears Drained()).
  bool Backlogged() const override;

 private:
  void HandleOpen();
  // Leaves the group and finishes the stream with `status` once no write is
  // in flight. From the read path or EndForShutdown(); the first call wins.
  void Close(const grpc::Status& status);
  // Reads the next request unless the stream is closing.
  void ReadNext();
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GroupManager* const groups_;
  StreamRegistry* const streams_;
  const std::string peer_;
  const Authorizer* const auth_;
  const std::string identity_;
  // Only touched by the read path.
  grpc::ByteBuffer raw_request_;
  v1::SubscribeRequest request_;

  // A serialized SubscribeResponse waiting to be written.
  struct Outgoing {
    std::string bytes;
    bool opened = false;  // the `opened` message (no deliveries are added to it)
  };

  mutable absl::Mutex mu_;
  // Responses waiting to be written; the back one is still being filled.
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // in queue_
  bool backlogged_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer writing_msg_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool opened_sent_ ABSL_GUARDED_BY(mu_) = false;  // deliveries wait for `opened`
  // Set when the member joined (read path); Close() leaves with them.
  ConsumerGroup* group_ ABSL_GUARDED_BY(mu_) = nullptr;
  Scheduler::MemberId member_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool left_ ABSL_GUARDED_BY(mu_) = false;  // Finish() only after the group let go
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

// One PublishStream: reads batches, appends each to the log as it arrives,
// and answers them in request order as they become durable. At most
// kMaxOutstanding requests are held, from read until their answer is
// written (appending, or answered but waiting for the client to take the
// answers before it): reading pauses beyond, so a client that writes and
// never reads is held back by flow control instead of growing the queue.
//
// Lifetime: reference counted (EndableStream). gRPC holds one reference
// from creation until OnDone(); every append in progress holds one from
// Append() until its callback (on the log's completer thread) has returned. The last Unref()
// deletes. The callback may call Finish() -- it does when it completes the
// last append of a half-closed stream -- and gRPC may then run OnDone() on
// another thread at once; the append's reference keeps the reactor (and the
// mutex the callback still holds) alive until the callback is out.
class PublishStreamReactor final
    : public grpc::ServerBidiReactor<v1::PublishRequest, v1::PublishResponse>,
      public EndableStream {
 public:
  // `identity`: the caller's (common/tls.h), checked against `auth` for
  // each request, and the source of its events (StampSource).
  PublishStreamReactor(EventLog* log, StreamRegistry* streams, Limits limits,
                       const Authorizer* auth, std::string identity);
  void EndForShutdown() override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  static constexpr size_t kMaxOutstanding = 64;
  // request_ is parsed into again and keeps its events' memory; after
  // requests of this many event bytes in all it starts afresh.
  static constexpr size_t kMaxRetainedRequestBytes = 256 << 10;
  struct Slot {
    bool ready = false;
    v1::PublishResponse response;
  };

  void Complete(uint64_t seq, v1::PublishResponse response);
  // Reads again once a paused stream holds fewer than kMaxOutstanding.
  void MaybeResumeReadingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventLog* const log_;
  StreamRegistry* const streams_;
  const Limits limits_;
  const Authorizer* const auth_;
  const std::string identity_;
  v1::PublishRequest request_;
  size_t retained_bytes_ = 0;   // see kMaxRetainedRequestBytes; read path only
  bool denial_logged_ = false;  // only touched by the read path
  // This stream's batches, in order: once one fails with UNAVAILABLE the
  // log refuses the later ones (EventLog::Append, AppendOrigin).
  const std::shared_ptr<AppendOrigin> origin_ = std::make_shared<AppendOrigin>();

  absl::Mutex mu_;
  std::deque<Slot> slots_ ABSL_GUARDED_BY(mu_);  // slots_[0] has sequence number base_seq_
  uint64_t base_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;  // EndForShutdown(): no more reads
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::PublishResponse writing_msg_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_STREAM_REACTORS_H_
