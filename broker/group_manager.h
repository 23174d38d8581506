#ifndef RELAY_BROKER_GROUP_MANAGER_H_
#define RELAY_BROKER_GROUP_MANAGER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/consumer_group.h"
#include "broker/group_store.h"
#include "common/worker.h"

namespace relay::broker {

// Owns every consumer group of the broker, the dispatcher thread that moves
// their events, and the checkpointer thread that makes their progress
// durable (lazily, every `checkpoint_interval`: a crash loses at most the
// last acks, which only causes redeliveries).
//
// A store that fences writers (JetStreamGroupStore) may refuse a group's
// checkpoint with ABORTED: another broker wrote that group since this one
// read it. The group is then *fenced*: logged once at Error, counted
// (fenced_groups()), and never checkpointed again by this manager; it keeps
// serving its members from its in-memory state, whose progress is no longer
// durable (docs/JETSTREAM.md#group-state). A new group whose creation is
// refused so is not created: GetOrCreate returns the ABORTED status.
//
// Thread-safe.
class GroupManager {
 public:
  struct Options {
    Scheduler::Options scheduler;
    // Bytes of events each group's window holds at most.
    size_t max_window_bytes = size_t{64} << 20;
    absl::Duration checkpoint_interval = absl::Milliseconds(200);
    // Whether the log's durability listener pumps the topic's groups on the
    // log's thread when the dispatcher is idle (one thread switch less
    // before delivery), rather than only waking the dispatcher. For logs
    // that serve the tail from memory (EventLog::ServesTailFromMemory).
    bool deliver_on_log_thread = false;
    Clock clock = [] { return absl::Now(); };
  };

  // `log` and `store` must outlive the manager.
  GroupManager(Options options, EventLog* log, GroupStore* store);
  ~GroupManager();

  // Loads the groups of the checkpoints in the store and sets each topic's
  // retention floor from them (the log's retention may already run). Call
  // once, before Start(). An unreadable checkpoint file is an error
  // (DATA_LOSS, naming the file and what to do): the broker does not start
  // rather than guess.
  absl::Status Load();
  // Starts the threads and listens to the log's durability notices.
  void Start();
  // Stops the threads and writes a last checkpoint of every group.
  // Idempotent.
  void Stop();

  // The group `open` names, created (durably, before this returns) from
  // `open.start` when it does not exist yet. Second: whether it was created.
  absl::StatusOr<std::pair<ConsumerGroup*, bool>> GetOrCreate(
      const v1::SubscribeRequest::Open& open);

  // Groups of `topic` (empty: all) named `group` (empty: all), sorted.
  std::vector<v1::GroupInfo> Describe(const std::string& topic, const std::string& group) const;

  // Asks the dispatcher to pump the groups soon. Never blocks for long.
  void Wake();

  // How many groups are fenced (above). Waits for a running checkpoint
  // pass.
  size_t fenced_groups() const;

 private:
  using Key = std::pair<std::string, std::string>;  // topic, group

  std::unique_ptr<ConsumerGroup> MakeGroup(const GroupCheckpoint& checkpoint);
  // Writes the changed groups' checkpoints, all in one GroupStore::SaveAll
  // batch, and moves the log's retention floors up to what the groups
  // still need.
  void CheckpointOnce();
  std::vector<ConsumerGroup*> Snapshot() const;
  // The groups of `topic`.
  std::vector<ConsumerGroup*> Snapshot(const std::string& topic) const;
  // The log's durability listener: `topic` has durable events up to `end`.
  void Durable(const std::string& topic, uint64_t end);
  // Durable() pumps a group itself only when it lags `end` by at most this
  // many events: a small commit's worth, where the thread switch saved is a
  // visible part of the latency. A larger catch goes to the dispatcher,
  // which delivers it while the log's thread answers the commit's
  // publishers: under load that wins back more than the switch costs
  // (bench/README.md, "Large catches to the dispatcher").
  static constexpr uint64_t kMaxInlineLag = 256;

  const Options options_;
  EventLog* const log_;
  GroupStore* const store_;

  absl::Mutex create_mu_ ABSL_ACQUIRED_BEFORE(groups_mu_);  // see GetOrCreate()
  mutable absl::Mutex groups_mu_;
  std::map<Key, std::unique_ptr<ConsumerGroup>> groups_ ABSL_GUARDED_BY(groups_mu_);

  mutable absl::Mutex checkpoint_mu_;  // serializes CheckpointOnce()
  // Groups whose checkpoint the store refused with ABORTED: not saved again.
  std::set<Key> fenced_ ABSL_GUARDED_BY(checkpoint_mu_);

  // Held for the whole of Stop(): a second call waits for the first.
  absl::Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(checkpoint_mu_);
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;

  // Held by whoever pumps groups: the dispatcher's pass, or Durable() on
  // the log's thread when the dispatcher is idle. ConsumerGroup::Pump() runs
  // on one thread at a time.
  absl::Mutex pump_mu_ ABSL_ACQUIRED_BEFORE(groups_mu_);
  // When the dispatcher's last pass planned its next one.
  absl::Time planned_due_ ABSL_GUARDED_BY(pump_mu_) = absl::InfiniteFuture();
  bool pumps_stopped_ ABSL_GUARDED_BY(pump_mu_) = false;

  // Pumps every group whenever woken (new durable events, acks, members)
  // and at the earliest due time of any of them.
  relay::Worker dispatcher_;
  // CheckpointOnce() every checkpoint_interval.
  relay::Worker checkpointer_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_GROUP_MANAGER_H_
