#include "broker/consumer_group.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/validation.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kReadBatchEvents = 2048;
constexpr size_t kReadBatchBytes = 4 << 20;
constexpr uint32_t kDefaultMaxInFlight = 1000;
constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);

std::atomic<Scheduler::MemberId> next_member_id{1};

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

absl::flat_hash_map<uint64_t, uint32_t> AttemptsOf(const GroupCheckpoint& c) {
  absl::flat_hash_map<uint64_t, uint32_t> out;
  for (const auto& [offset, attempts] : c.attempts()) out[offset] = attempts;
  return out;
}

}  // namespace

ConsumerGroup::ConsumerGroup(const GroupCheckpoint& checkpoint, Scheduler::Options options,
                             EventLog* log, Clock clock, std::function<void()> wake)
    : topic_(checkpoint.topic()),
      group_(checkpoint.group()),
      types_(checkpoint.types().begin(), checkpoint.types().end()),
      created_unix_micros_(checkpoint.created_unix_micros()),
      log_(log),
      clock_(std::move(clock)),
      wake_(std::move(wake)),
      scheduler_(options, checkpoint.committed_offset(),
                 std::vector<uint64_t>(checkpoint.acked_above().begin(),
                                       checkpoint.acked_above().end()),
                 AttemptsOf(checkpoint)),
      dead_lettered_(checkpoint.dead_lettered()) {}

absl::StatusOr<Scheduler::MemberId> ConsumerGroup::Join(MemberSink* sink,
                                                        const v1::SubscribeRequest::Open& open,
                                                        std::string peer) {
  std::vector<std::string> asked(open.types().begin(), open.types().end());
  std::sort(asked.begin(), asked.end());
  asked.erase(std::unique(asked.begin(), asked.end()), asked.end());
  if (asked != types_) {
    return absl::FailedPreconditionError(
        absl::StrCat("group '", group_, "' of topic '", topic_, "' filters types [",
                     absl::StrJoin(types_, ","), "]; this member asked for [",
                     absl::StrJoin(asked, ","), "]"));
  }
  Member m;
  m.name = open.member_name();
  m.peer = std::move(peer);
  m.connected_at = clock_();
  m.max_in_flight = open.max_in_flight() == 0 ? kDefaultMaxInFlight : open.max_in_flight();
  absl::Duration deadline = open.has_ack_deadline()
                                ? absl::Milliseconds(TimeUtil::DurationToMilliseconds(
                                      open.ack_deadline()))
                                : kDefaultAckDeadline;
  Scheduler::MemberId id = next_member_id.fetch_add(1);
  {
    absl::MutexLock sinks(&sinks_mu_);
    sinks_.emplace(id, sink);
  }
  {
    absl::MutexLock lock(&mu_);
    scheduler_.AddMember(id, m.max_in_flight, deadline);
    members_.emplace(id, std::move(m));
  }
  wake_();
  return id;
}

void ConsumerGroup::Leave(Scheduler::MemberId member) {
  {
    absl::MutexLock lock(&mu_);
    if (members_.erase(member) == 0) return;
    StartDeadLetters(scheduler_.RemoveMember(member, clock_()));
    dirty_ = true;
  }
  {
    // Waits for a Deliver() to this member in progress; none starts after.
    absl::MutexLock sinks(&sinks_mu_);
    sinks_.erase(member);
  }
  wake_();
}

absl::Status ConsumerGroup::Settle(Scheduler::MemberId member,
                                   const v1::SubscribeRequest& request) {
  absl::Time now = clock_();
  std::vector<Event> done;
  done.reserve(static_cast<size_t>(request.acks_size()));
  {
    absl::MutexLock lock(&mu_);
    uint64_t limit = scheduler_.NextOffsetToBuffer();
    for (const auto& ack : request.acks()) {
      if (ack.offset() >= limit) {
        return absl::FailedPreconditionError(absl::StrCat(
            "ack for offset ", ack.offset(), " which group '", group_, "' never delivered"));
      }
    }
    for (const auto& nack : request.nacks()) {
      if (nack.offset() >= limit) {
        return absl::FailedPreconditionError(absl::StrCat(
            "nack for offset ", nack.offset(), " which group '", group_, "' never delivered"));
      }
    }
    for (const auto& ack : request.acks()) {
      if (scheduler_.Ack(member, ack.offset(), ack.attempt()) == Scheduler::AckOutcome::kAcked) {
        auto it = buffer_.find(ack.offset());
        if (it != buffer_.end()) {
          // Freed after the lock is released.
          done.push_back(std::move(it->second));
          buffer_.erase(it);
        }
        dirty_ = true;
      }
    }
    std::vector<Scheduler::DeadLetter> dead;
    for (const auto& nack : request.nacks()) {
      absl::Duration delay =
          nack.has_retry_delay()
              ? absl::Milliseconds(TimeUtil::DurationToMilliseconds(nack.retry_delay()))
              : absl::ZeroDuration();
      if (scheduler_.Nack(member, nack.offset(), nack.attempt(), nack.reason(), delay, now,
                          &dead) == Scheduler::AckOutcome::kAcked) {
        dirty_ = true;
      }
    }
    StartDeadLetters(std::move(dead));
    DropBelowCommitted();
  }
  wake_();
  return absl::OkStatus();
}

absl::Time ConsumerGroup::Pump() {
  uint64_t next;
  size_t room;
  bool window_empty;
  {
    absl::MutexLock lock(&mu_);
    next = scheduler_.NextOffsetToBuffer();
    room = scheduler_.BufferRoom();
    window_empty = scheduler_.committed() == next;
  }
  // Events below the log's first offset are gone (retention): start after
  // them once nothing of the window is outstanding.
  uint64_t first = log_->FirstOffset(topic_);
  if (next < first && window_empty) {
    absl::MutexLock lock(&mu_);
    scheduler_.SkipTo(first);
    buffer_.clear();
    dirty_ = true;
    next = first;
  }
  const uint64_t end = log_->DurableEnd(topic_);
  // Read outside the lock: only this (dispatcher) thread adds to the window,
  // so `next` stays valid while acks go on.
  while (room > 0 && next < end && next >= first) {
    absl::StatusOr<std::vector<Event>> events =
        log_->Read(topic_, next, std::min(room, kReadBatchEvents), kReadBatchBytes);
    if (!events.ok()) {
      RELAY_LOG(Error, "read failed", {{"topic", topic_}, {"group", group_},
                                       {"error", events.status().ToString()}});
      break;
    }
    if (events->empty()) break;
    absl::MutexLock lock(&mu_);
    for (Event& e : *events) {
      if (e.offset() != scheduler_.NextOffsetToBuffer() || scheduler_.BufferRoom() == 0) break;
      bool skip =
          !types_.empty() && !std::binary_search(types_.begin(), types_.end(), e.type());
      scheduler_.Add(e.offset(), e.key(), skip);
      if (!skip) buffer_.emplace(e.offset(), std::move(e));
    }
    DropBelowCommitted();
    next = scheduler_.NextOffsetToBuffer();
    room = scheduler_.BufferRoom();
  }

  absl::flat_hash_map<Scheduler::MemberId, std::vector<v1::Delivery>> batches;
  absl::Time next_wakeup;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_();
    StartDeadLetters(scheduler_.ExpireDeadlines(now));
    std::vector<Scheduler::Assignment> assigned =
        scheduler_.Assign(now, std::numeric_limits<size_t>::max());
    if (!assigned.empty()) dirty_ = true;
    for (const Scheduler::Assignment& a : assigned) {
      auto it = buffer_.find(a.offset);
      if (it == buffer_.end()) continue;  // cannot happen: assigned events are buffered
      v1::Delivery d;
      *d.mutable_event() = it->second;
      d.mutable_event()->set_topic(topic_);
      d.set_attempt(a.attempt);
      batches[a.member].push_back(std::move(d));
    }
    next_wakeup = scheduler_.NextWakeup();
  }
  // Hand over outside mu_: the sink serializes the message. A member that
  // left meanwhile is gone from sinks_, and the scheduler already took its
  // deliveries back (they go out again).
  if (!batches.empty()) {
    absl::MutexLock sinks(&sinks_mu_);
    for (auto& [member, deliveries] : batches) {
      auto s = sinks_.find(member);
      if (s != sinks_.end()) s->second->Deliver(std::move(deliveries));
    }
  }
  return next_wakeup;
}

void ConsumerGroup::StartDeadLetters(std::vector<Scheduler::DeadLetter> dead) {
  for (Scheduler::DeadLetter& d : dead) {
    auto it = buffer_.find(d.offset);
    if (it == buffer_.end()) continue;
    const Event& original = it->second;
    v1::DeadLetter letter;
    letter.set_group(group_);
    *letter.mutable_event() = original;
    letter.mutable_event()->set_topic(topic_);
    letter.set_last_error(d.last_error);
    for (const Scheduler::Attempt& a : d.attempts) {
      v1::DeadLetter::Attempt* pa = letter.add_attempts();
      pa->set_attempt(a.attempt);
      *pa->mutable_delivered_at() = ToProto(a.delivered_at);
      pa->set_outcome(a.outcome);
    }
    Event e;
    // Deterministic id: a dead letter written twice (a crash before the
    // group's checkpoint) is deduplicated by the DLQ topic.
    e.set_id(absl::StrCat("dlq:", group_, ":", d.offset));
    e.set_type("relay.dead_letter");
    e.set_key(original.key());
    e.set_source("relay-broker");
    *e.mutable_time() = ToProto(clock_());
    *e.mutable_headers() = original.headers();
    (*e.mutable_headers())["dlq_group"] = group_;
    (*e.mutable_headers())["dlq_offset"] = absl::StrCat(d.offset);
    e.set_data(letter.SerializeAsString());
    RELAY_LOG(Warn, "event dead-lettered",
              {{"topic", topic_}, {"group", group_}, {"offset", absl::StrCat(d.offset)},
               {"event", original.id()}, {"type", original.type()},
               {"attempts", absl::StrCat(d.attempts.size())}, {"error", d.last_error}});
    std::vector<Event> batch;
    batch.push_back(std::move(e));
    uint64_t offset = d.offset;
    log_->Append(DeadLetterTopic(topic_), std::move(batch),
                 [this, offset](absl::StatusOr<std::vector<AppendResult>> result) {
                   if (!result.ok()) {
                     // The key stays blocked; the event is dead-lettered
                     // again after a restart (its attempts are kept).
                     RELAY_LOG(Error, "dead letter append failed",
                               {{"topic", topic_}, {"group", group_},
                                {"offset", absl::StrCat(offset)},
                                {"error", result.status().ToString()}});
                     return;
                   }
                   {
                     absl::MutexLock lock(&mu_);
                     scheduler_.CompleteDeadLetter(offset);
                     buffer_.erase(offset);
                     ++dead_lettered_;
                     dirty_ = true;
                     DropBelowCommitted();
                   }
                   wake_();
                 });
  }
}

void ConsumerGroup::DropBelowCommitted() {
  buffer_.erase(buffer_.begin(), buffer_.lower_bound(scheduler_.committed()));
}

bool ConsumerGroup::TakeCheckpoint(GroupCheckpoint* out) {
  absl::MutexLock lock(&mu_);
  if (!dirty_) return false;
  dirty_ = false;
  out->Clear();
  out->set_topic(topic_);
  out->set_group(group_);
  out->set_committed_offset(scheduler_.committed());
  for (uint64_t o : scheduler_.AckedAbove()) out->add_acked_above(o);
  for (const std::string& t : types_) out->add_types(t);
  out->set_dead_lettered(dead_lettered_);
  for (const auto& [offset, attempts] : scheduler_.Attempts()) {
    if (attempts > 0) (*out->mutable_attempts())[offset] = attempts;
  }
  out->set_created_unix_micros(created_unix_micros_);
  return true;
}

uint64_t ConsumerGroup::committed() const {
  absl::MutexLock lock(&mu_);
  return scheduler_.committed();
}

v1::GroupInfo ConsumerGroup::Describe() const {
  uint64_t end = log_->DurableEnd(topic_);
  absl::MutexLock lock(&mu_);
  v1::GroupInfo info;
  info.set_topic(topic_);
  info.set_group(group_);
  for (const auto& [id, m] : members_) {
    v1::MemberInfo* mi = info.add_members();
    mi->set_member_id(absl::StrCat("m-", id));
    mi->set_member_name(m.name);
    mi->set_peer(m.peer);
    mi->set_in_flight(scheduler_.InFlight(id));
    mi->set_max_in_flight(m.max_in_flight);
    *mi->mutable_connected_at() = ToProto(m.connected_at);
  }
  std::sort(info.mutable_members()->begin(), info.mutable_members()->end(),
            [](const v1::MemberInfo& a, const v1::MemberInfo& b) {
              return a.member_id() < b.member_id();
            });
  uint64_t committed = scheduler_.committed();
  uint64_t acked_above = scheduler_.AckedAbove().size();
  info.set_committed_offset(committed);
  info.set_end_offset(end);
  info.set_lag(end > committed ? end - committed - std::min(acked_above, end - committed) : 0);
  Scheduler::Stats stats = scheduler_.stats();
  info.set_in_flight(stats.in_flight);
  info.set_waiting_retry(stats.waiting_retry);
  info.set_redelivered(stats.redelivered);
  info.set_dead_lettered(dead_lettered_);
  for (const std::string& t : types_) info.add_types(t);
  return info;
}

}  // namespace relay::broker
