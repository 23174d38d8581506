#include "broker/group_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {
using google::protobuf::util::TimeUtil;
}  // namespace

GroupManager::GroupManager(Options options, EventLog* log, GroupStore* store)
    : options_(std::move(options)),
      log_(log),
      store_(store),
      dispatcher_("dispatcher",
                  [this] {
                    // Until the earliest due time of any group (a redelivery,
                    // an ack deadline), or the next Wake().
                    absl::MutexLock lock(&pump_mu_);
                    absl::Time next_due = absl::InfiniteFuture();
                    for (ConsumerGroup* g : Snapshot()) next_due = std::min(next_due, g->Pump());
                    planned_due_ = next_due;
                    return next_due - absl::Now();
                  }),
      checkpointer_("checkpointer", [this] {
        CheckpointOnce();
        return options_.checkpoint_interval;
      }) {}

GroupManager::~GroupManager() { Stop(); }

std::unique_ptr<ConsumerGroup> GroupManager::MakeGroup(const GroupCheckpoint& checkpoint) {
  ConsumerGroup::Options options;
  options.scheduler = options_.scheduler;
  options.max_window_bytes = options_.max_window_bytes;
  return std::make_unique<ConsumerGroup>(checkpoint, options, log_, options_.clock,
                                         [this] { Wake(); });
}

absl::Status GroupManager::Load() {
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store_->LoadAll();
  if (!all.ok()) return all.status();
  std::map<std::string, uint64_t> floors;
  {
    absl::MutexLock lock(&groups_mu_);
    for (const GroupCheckpoint& c : *all) {
      RELAY_LOG(Info, "group loaded",
                {{"topic", c.topic()},
                 {"group", c.group()},
                 {"committed", absl::StrCat(c.committed_offset())}});
      groups_[{c.topic(), c.group()}] = MakeGroup(c);
      auto [it, inserted] = floors.emplace(c.topic(), c.committed_offset());
      if (!inserted) it->second = std::min(it->second, c.committed_offset());
    }
  }
  // At once, not at the first checkpoint pass: a retention pass before it
  // would take the topic for one without groups and delete what they have
  // not read.
  for (const auto& [topic, floor] : floors) log_->SetRetentionFloor(topic, floor);
  return absl::OkStatus();
}

void GroupManager::Start() {
  log_->SetDurabilityListener(
      [this](const std::string& topic, uint64_t end) { Durable(topic, end); });
  dispatcher_.Start();
  checkpointer_.Start(options_.checkpoint_interval);
}

void GroupManager::Stop() {
  absl::MutexLock lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  dispatcher_.Stop();
  {
    absl::MutexLock lock(&pump_mu_);
    pumps_stopped_ = true;  // Durable() pumps nothing more
  }
  checkpointer_.Stop();
  CheckpointOnce();
}

void GroupManager::Wake() { dispatcher_.Wake(); }

void GroupManager::Durable(const std::string& topic, uint64_t end) {
  // Deliver on this thread (the log's) when the dispatcher is idle: one
  // thread hop less between the fsync and the consumers. A dispatcher pass
  // under way may have read the topic before these events: wake it for
  // another. Only groups close behind `end` are pumped here, so that this
  // thread reads about one commit per group (from the tail cache) before it
  // answers the commit's publishers; the others are the dispatcher's.
  if (!options_.deliver_on_log_thread) {
    Wake();
    return;
  }
  if (!pump_mu_.TryLock()) {
    Wake();
    return;
  }
  bool wake = false;  // after Stop(), nothing pumps
  if (!pumps_stopped_) {
    absl::Time next_due = absl::InfiniteFuture();
    for (ConsumerGroup* g : Snapshot(topic)) {
      if (end - std::min(end, g->next_to_buffer()) > kMaxInlineLag) {
        wake = true;
        continue;
      }
      next_due = std::min(next_due, g->Pump());
    }
    // The dispatcher sleeps until planned_due_: a sooner due time (the
    // first ack deadline of these deliveries, say) needs a new plan.
    wake = wake || next_due < planned_due_;
  }
  pump_mu_.Unlock();
  if (wake) Wake();
}

absl::StatusOr<std::pair<ConsumerGroup*, bool>> GroupManager::GetOrCreate(
    const v1::SubscribeRequest::Open& open) {
  // Creations are serialized by create_mu_, which is held across the fsync
  // of the new checkpoint; groups_mu_ is not, so the dispatcher, the
  // checkpointer and Describe() never wait for a disk.
  absl::MutexLock create(&create_mu_);
  {
    absl::MutexLock lock(&groups_mu_);
    auto it = groups_.find({open.topic(), open.group()});
    if (it != groups_.end()) return std::make_pair(it->second.get(), false);
  }

  GroupCheckpoint c;
  c.set_topic(open.topic());
  c.set_group(open.group());
  std::vector<std::string> types(open.types().begin(), open.types().end());
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  for (const std::string& t : types) c.add_types(t);
  uint64_t first = log_->FirstOffset(open.topic());
  uint64_t end = log_->DurableEnd(open.topic());
  uint64_t start = first;
  const auto& pos = open.start();
  switch (pos.position_case()) {
    case v1::SubscribeRequest::StartPosition::kLatest:
      start = end;
      break;
    case v1::SubscribeRequest::StartPosition::kOffset:
      start = std::clamp<uint64_t>(pos.offset(), first, std::max(first, end));
      break;
    case v1::SubscribeRequest::StartPosition::kTime:
      start = log_->OffsetForTime(
          open.topic(), absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(pos.time())));
      break;
    default:
      break;
  }
  c.set_committed_offset(start);
  c.set_created_unix_micros(absl::ToUnixMicros(options_.clock()));
  // The start must survive a restart before anyone consumes from it.
  if (absl::Status s = store_->Save(c); !s.ok()) return s;
  RELAY_LOG(Info, "group created",
            {{"topic", c.topic()}, {"group", c.group()}, {"start", absl::StrCat(start)}});
  std::unique_ptr<ConsumerGroup> group = MakeGroup(c);
  absl::MutexLock lock(&groups_mu_);
  ConsumerGroup* g = (groups_[{c.topic(), c.group()}] = std::move(group)).get();
  return std::make_pair(g, true);
}

size_t GroupManager::fenced_groups() const {
  absl::MutexLock lock(&checkpoint_mu_);
  return fenced_.size();
}

std::vector<ConsumerGroup*> GroupManager::Snapshot() const {
  absl::MutexLock lock(&groups_mu_);
  std::vector<ConsumerGroup*> out;
  out.reserve(groups_.size());
  for (const auto& [key, g] : groups_) out.push_back(g.get());
  return out;
}

std::vector<ConsumerGroup*> GroupManager::Snapshot(const std::string& topic) const {
  absl::MutexLock lock(&groups_mu_);
  std::vector<ConsumerGroup*> out;
  // The map is sorted by topic first: the topic's groups are one run.
  for (auto it = groups_.lower_bound({topic, std::string()});
       it != groups_.end() && it->first.first == topic; ++it) {
    out.push_back(it->second.get());
  }
  return out;
}

std::vector<v1::GroupInfo> GroupManager::Describe(const std::string& topic,
                                                  const std::string& group) const {
  std::vector<v1::GroupInfo> out;
  for (ConsumerGroup* g : Snapshot()) {
    if (!topic.empty() && g->topic() != topic) continue;
    if (!group.empty() && g->name() != group) continue;
    out.push_back(g->Describe());
  }
  return out;
}

void GroupManager::CheckpointOnce() {
  absl::MutexLock lock(&checkpoint_mu_);
  const std::vector<ConsumerGroup*> groups = Snapshot();
  // Every changed group in one batch: the store may make it durable with
  // one write and one sync however many groups there are.
  std::vector<ConsumerGroup*> saving;
  std::vector<GroupCheckpoint> batch;
  for (ConsumerGroup* g : groups) {
    if (fenced_.count({g->topic(), g->name()}) != 0) continue;
    GroupCheckpoint c;
    if (g->TakeCheckpoint(&c)) {
      saving.push_back(g);
      batch.push_back(std::move(c));
    }
  }
  std::vector<absl::Status> saved;
  if (!batch.empty()) saved = store_->SaveAll(batch);
  for (size_t i = 0; i < saving.size(); ++i) {
    ConsumerGroup* g = saving[i];
    const absl::Status s =
        i < saved.size() ? saved[i] : absl::InternalError("the group store returned no status");
    if (absl::IsAborted(s)) {
      // Another broker advanced the group: writing on would undo its
      // progress. Nothing makes this broker step down yet: the group goes
      // on here, without checkpoints.
      fenced_.insert({g->topic(), g->name()});
      RELAY_LOG(Error, "group fenced: another broker wrote its checkpoint; no longer saving it",
                {{"topic", g->topic()}, {"group", g->name()}, {"error", s.ToString()}});
    } else if (!s.ok()) {
      // Written again on the next pass: the group stays dirty.
      g->CheckpointFailed();
      RELAY_LOG(Error, "group checkpoint failed; retrying",
                {{"topic", g->topic()}, {"group", g->name()}, {"error", s.ToString()}});
    }
  }
  std::map<std::string, uint64_t> floors;
  for (ConsumerGroup* g : groups) {
    uint64_t committed = g->committed();
    auto [it, inserted] = floors.emplace(g->topic(), committed);
    if (!inserted) it->second = std::min(it->second, committed);
  }
  for (const auto& [topic, floor] : floors) log_->SetRetentionFloor(topic, floor);
}

}  // namespace relay::broker
