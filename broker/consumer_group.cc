#include "broker/consumer_group.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/validation.h"
#include "common/log.h"
#include "common/text.h"
#include "google/protobuf/util/time_util.h"

namespace relay::broker {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kReadBatchEvents = 2048;
constexpr size_t kReadBatchBytes = 4 << 20;
constexpr uint32_t kDefaultMaxInFlight = 1000;
// A read that finds the event damaged (DATA_LOSS) is retried this many
// times, this far apart, before the event at that offset is skipped as
// unreadable. Any other read error (the log's store unreachable, a JetStream
// stream without a leader) is retried this far apart for as long as it lasts:
// the event is there, and skipping it would lose it.
constexpr int kMaxReadErrors = 3;
constexpr absl::Duration kReadRetryDelay = absl::Seconds(1);
// A read error that lasts is logged at its first attempts, then every this
// many.
constexpr int kReadErrorLogEvery = 60;
// The longest retry delay a nack may ask for (a day).
constexpr int64_t kMaxRetryDelaySeconds = 24 * 3600;
// Nack.reason's bound (broker.proto): every attempt's reason is kept until
// the event is acked or dead-lettered, and goes into the dead letter.
constexpr size_t kMaxNackReasonBytes = 1024;
// A dead letter whose append failed is tried again this much later.
constexpr absl::Duration kDeadLetterRetryDelay = absl::Seconds(1);
// A trimmed dead letter (DeadLetter.event_trimmed) keeps the last this many
// attempts, each outcome cut to this many bytes: with a large
// --max_deliveries the attempts alone could make it too large.
constexpr size_t kTrimmedAttempts = 16;
constexpr size_t kTrimmedOutcomeBytes = 128;
constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);

std::atomic<Scheduler::MemberId> next_member_id{1};

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

// The acked runs of a checkpoint: `acked_runs` (alternating gap and length
// from committed_offset) and, from checkpoints of older brokers, single
// offsets in `acked_above`.
std::vector<Scheduler::Range> AckedOf(const GroupCheckpoint& c) {
  std::vector<Scheduler::Range> out;
  for (uint64_t o : c.acked_above()) out.push_back(Scheduler::Range{o, o + 1});
  uint64_t at = c.committed_offset();
  for (int i = 0; i + 1 < c.acked_runs_size(); i += 2) {
    at += c.acked_runs(i);
    out.push_back(Scheduler::Range{at, at + c.acked_runs(i + 1)});
    at += c.acked_runs(i + 1);
  }
  return out;
}

std::vector<std::string> SortedTypes(const google::protobuf::RepeatedPtrField<std::string>& in) {
  std::vector<std::string> out(in.begin(), in.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

absl::flat_hash_map<uint64_t, uint32_t> AttemptsOf(const GroupCheckpoint& c) {
  absl::flat_hash_map<uint64_t, uint32_t> out;
  for (const auto& [offset, attempts] : c.attempts()) out[offset] = attempts;
  return out;
}

}  // namespace

ConsumerGroup::ConsumerGroup(const GroupCheckpoint& checkpoint, Options options, EventLog* log,
                             Clock clock, std::function<void()> wake)
    : topic_(checkpoint.topic()),
      group_(checkpoint.group()),
      created_unix_micros_(checkpoint.created_unix_micros()),
      max_window_bytes_(options.max_window_bytes),
      log_(log),
      clock_(std::move(clock)),
      wake_(std::move(wake)),
      scheduler_(options.scheduler, checkpoint.committed_offset(), AckedOf(checkpoint),
                 AttemptsOf(checkpoint)),
      types_(SortedTypes(checkpoint.types())),
      dead_lettered_(checkpoint.dead_lettered()),
      skipped_(checkpoint.skipped_offsets()),
      counters_(CountersFor(topic_, group_)) {}

absl::StatusOr<Scheduler::MemberId> ConsumerGroup::Join(MemberSink* sink,
                                                        const v1::SubscribeRequest::Open& open,
                                                        std::string peer) {
  std::vector<std::string> asked = SortedTypes(open.types());
  Member m;
  m.name = open.member_name();
  m.peer = std::move(peer);
  m.connected_at = clock_();
  m.max_in_flight = open.max_in_flight() == 0 ? kDefaultMaxInFlight : open.max_in_flight();
  absl::Duration deadline =
      open.has_ack_deadline()
          ? absl::Milliseconds(TimeUtil::DurationToMilliseconds(open.ack_deadline()))
          : kDefaultAckDeadline;
  Scheduler::MemberId id = next_member_id.fetch_add(1);
  // The sink goes in first: once the scheduler knows the member, Pump() may
  // hand it deliveries.
  {
    absl::MutexLock sinks(&sinks_mu_);
    sinks_.emplace(id, sink);
  }
  std::vector<StoredEvent> freed;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (asked != types_) {
      if (!members_.empty()) {
        refused = absl::FailedPreconditionError(absl::StrCat(
            "group '", group_, "' of topic '", topic_, "' filters types [",
            absl::StrJoin(types_, ","), "] and has ", members_.size(),
            " member(s) connected with that filter; this member asked for [",
            absl::StrJoin(asked, ","), "]. Stop the old members to change the filter"));
      } else {
        RELAY_LOG(Warn, "group type filter changed",
                  {{"topic", topic_},
                   {"group", group_},
                   {"from", absl::StrJoin(types_, ",")},
                   {"to", absl::StrJoin(asked, ",")}});
        types_ = std::move(asked);
        dirty_ = true;
        // Buffered events the new filter excludes are done for the group.
        // No member is connected, so none is in flight.
        for (auto it = buffer_.begin(); it != buffer_.end();) {
          if (Wanted(buffer_.value(it))) {
            ++it;
          } else {
            scheduler_.Drop(it->first);
            it = Unbuffer(it, &freed);
          }
        }
        DropBelowCommitted();
      }
    }
    if (refused.ok()) {
      scheduler_.AddMember(id, m.max_in_flight, deadline);
      members_.emplace(id, std::move(m));
    }
  }
  if (!refused.ok()) {
    absl::MutexLock sinks(&sinks_mu_);
    sinks_.erase(id);
    return refused;
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
  SendDeadLetters();
  {
    // Waits for a Deliver() to this member in progress; none starts after.
    absl::MutexLock sinks(&sinks_mu_);
    sinks_.erase(member);
  }
  wake_();
}

void ConsumerGroup::Drained(Scheduler::MemberId member) {
  {
    absl::MutexLock lock(&mu_);
    if (!scheduler_.Backlogged(member)) return;
    scheduler_.SetBacklogged(member, false);
  }
  wake_();
}

absl::Status ConsumerGroup::Settle(Scheduler::MemberId member,
                                   const v1::SubscribeRequest& request) {
  absl::Time now = clock_();
  std::vector<StoredEvent> done;
  done.reserve(static_cast<size_t>(request.acks_size()));
  bool wake;
  uint64_t buffered_to;
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
      // Checked in seconds first: the conversion to milliseconds overflows.
      if (nack.has_retry_delay() &&
          (nack.retry_delay().seconds() < 0 || nack.retry_delay().nanos() < 0 ||
           nack.retry_delay().seconds() > kMaxRetryDelaySeconds)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "nack for offset ", nack.offset(), " has retry_delay ", nack.retry_delay().seconds(),
            " s outside [0, ", kMaxRetryDelaySeconds, " s]"));
      }
      if (nack.reason().size() > kMaxNackReasonBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("nack for offset ", nack.offset(), " has a reason of ",
                         nack.reason().size(), " bytes; the limit is ", kMaxNackReasonBytes));
      }
    }
    if (!request.acks().empty()) {
      std::vector<Scheduler::AckRef> acks;
      acks.reserve(static_cast<size_t>(request.acks_size()));
      for (const auto& ack : request.acks()) acks.push_back({ack.offset(), ack.attempt()});
      std::vector<uint64_t> acked;
      acked.reserve(acks.size());
      scheduler_.AckAll(member, acks, &acked);
      auto hint = buffer_.end();
      for (uint64_t offset : acked) {
        auto it = buffer_.FindFrom(hint, offset);
        // Freed after the lock is released.
        if (it != buffer_.end()) hint = Unbuffer(it, &done);
      }
      if (!acked.empty()) {
        counters_.acked->Add(acked.size());
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
        counters_.nacked->Add();
        dirty_ = true;
      }
    }
    StartDeadLetters(std::move(dead));
    DropBelowCommitted();
    // A pump can only do more now if events wait to be handed out (an ack
    // makes room, and releases its key's next event), a nack scheduled a
    // retry or a dead letter, or the window can take events it had no room
    // for. Otherwise a wake-up per ack message would cost the dispatcher a
    // pass (and a thread switch) for nothing. (A dead letter's append wakes
    // it when it completes.)
    wake = !request.nacks().empty() || scheduler_.HasWaiting();
    buffered_to = scheduler_.NextOffsetToBuffer();
  }
  SendDeadLetters();
  if (wake || buffered_to < log_->DurableEnd(topic_)) wake_();
  return absl::OkStatus();
}

bool ConsumerGroup::Wanted(const StoredEvent& e) const {
  return types_.empty() || std::binary_search(types_.begin(), types_.end(), e.type());
}

SlotMap<StoredEvent>::iterator ConsumerGroup::Unbuffer(SlotMap<StoredEvent>::iterator it,
                                                       std::vector<StoredEvent>* freed) {
  // A stored event's size never changes: the count comes down by what
  // Buffer() added.
  StoredEvent& e = buffer_.value(it);
  buffer_bytes_ -= std::min(buffer_bytes_, e.size());
  if (freed != nullptr) freed->push_back(std::move(e));
  return buffer_.erase(it);
}

void ConsumerGroup::SkipGap(uint64_t to, absl::string_view why) {
  const uint64_t from = scheduler_.NextOffsetToBuffer();
  const uint64_t n = scheduler_.SkipAhead(to);
  if (n == 0) return;
  skipped_ += n;
  dirty_ = true;
  RELAY_LOG(Error, "offsets skipped",
            {{"topic", topic_},
             {"group", group_},
             {"from", absl::StrCat(from)},
             {"to", absl::StrCat(to)},
             {"count", absl::StrCat(n)},
             {"why", std::string(why)},
             {"skipped_total", absl::StrCat(skipped_)}});
}

void ConsumerGroup::Buffer(std::vector<StoredEvent>* events) {
  for (StoredEvent& e : *events) {
    const uint64_t next = scheduler_.NextOffsetToBuffer();
    if (e.offset() < next) continue;  // already buffered
    if (e.offset() > next) SkipGap(e.offset(), "not in the log (damaged or deleted)");
    if (scheduler_.BufferRoom() == 0) break;
    const bool wanted = Wanted(e);
    if (wanted && !buffer_.empty() && buffer_bytes_ >= max_window_bytes_) break;
    const bool kept = scheduler_.Add(e.offset(), e.key(), !wanted);
    if (!wanted) counters_.filtered->Add();
    // Only what the window keeps: an event acked before a restart (the
    // checkpoint's acked runs) would never leave the buffer while an offset
    // below it stays unacked, and its bytes would hold the window shut for
    // every other key.
    if (kept) {
      buffer_bytes_ += e.size();
      buffer_.Insert(e.offset(), std::move(e));  // the largest offset yet
    }
  }
  DropBelowCommitted();
}

absl::Time ConsumerGroup::Fill() {
  const absl::Time now = clock_();
  if (now < read_retry_at_) return read_retry_at_;
  uint64_t next;
  size_t room;
  size_t bytes_room;
  // Asked before taking mu_: no log lock is ever held inside the group's.
  const uint64_t first = log_->FirstOffset(topic_);
  {
    absl::MutexLock lock(&mu_);
    // Events below the log's first offset are gone (retention): the window
    // moves past them. What is buffered below stays until acked.
    if (scheduler_.NextOffsetToBuffer() < first) SkipGap(first, "deleted by retention");
    next = scheduler_.NextOffsetToBuffer();
    room = scheduler_.BufferRoom();
    bytes_room = buffer_.empty() ? max_window_bytes_
                                 : max_window_bytes_ - std::min(max_window_bytes_, buffer_bytes_);
  }
  const uint64_t end = log_->DurableEnd(topic_);
  // Read outside the lock: only Pump() (one thread at a time) adds to the
  // window, so `next` stays valid while acks go on.
  while (room > 0 && bytes_room > 0 && next < end) {
    absl::StatusOr<std::vector<StoredEvent>> events = log_->ReadStored(
        topic_, next, std::min(room, kReadBatchEvents), std::min(bytes_room, kReadBatchBytes));
    if (!events.ok()) {
      // Narrow it down: the batch may fail on one bad record further on,
      // and only the event at `next` may be blamed (and skipped) here.
      events = log_->ReadStored(topic_, next, 1, kReadBatchBytes);
    }
    if (!events.ok()) {
      if (read_error_offset_ != next) read_errors_ = damaged_reads_ = 0;
      read_error_offset_ = next;
      ++read_errors_;
      if (absl::IsDataLoss(events.status())) ++damaged_reads_;
      if (read_errors_ <= kMaxReadErrors || read_errors_ % kReadErrorLogEvery == 0) {
        RELAY_LOG(Error, "read failed",
                  {{"topic", topic_},
                   {"group", group_},
                   {"offset", absl::StrCat(next)},
                   {"attempt", absl::StrCat(read_errors_)},
                   {"error", events.status().ToString()}});
      }
      if (damaged_reads_ < kMaxReadErrors) {
        read_retry_at_ = now + kReadRetryDelay;
        return read_retry_at_;
      }
      // A damaged event: skip it alone rather than stop the group for good.
      absl::MutexLock lock(&mu_);
      SkipGap(next + 1, "unreadable");
      read_errors_ = damaged_reads_ = 0;
      next = scheduler_.NextOffsetToBuffer();
      continue;
    }
    read_errors_ = damaged_reads_ = 0;
    if (events->empty()) break;
    absl::MutexLock lock(&mu_);
    Buffer(&*events);
    const uint64_t before = next;
    next = scheduler_.NextOffsetToBuffer();
    room = scheduler_.BufferRoom();
    bytes_room = buffer_.empty() ? max_window_bytes_
                                 : max_window_bytes_ - std::min(max_window_bytes_, buffer_bytes_);
    if (next == before) break;  // the window is full
  }
  return absl::InfiniteFuture();
}

absl::Time ConsumerGroup::Pump() {
  const absl::Time read_retry = Fill();

  absl::flat_hash_map<Scheduler::MemberId, std::vector<OutgoingDelivery>> batches;
  absl::Time next_wakeup;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_();
    StartDeadLetters(scheduler_.ExpireDeadlines(now));
    for (auto it = dead_retries_.begin(); it != dead_retries_.end();) {
      if (it->due <= now) {
        StartDeadLetter(std::move(it->letter), it->trim);
        it = dead_retries_.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<Scheduler::Assignment> assigned =
        scheduler_.Assign(now, std::numeric_limits<size_t>::max());
    if (!assigned.empty()) dirty_ = true;
    // Assignments come in ascending offsets, mostly neighbours in buffer_.
    auto hint = buffer_.end();
    for (const Scheduler::Assignment& a : assigned) {
      if (hint != buffer_.end()) ++hint;
      auto it = buffer_.FindFrom(hint, a.offset);
      if (it == buffer_.end()) continue;  // cannot happen: assigned events are buffered
      hint = it;
      batches[a.member].push_back(OutgoingDelivery{buffer_.value(it), a.attempt});
      counters_.delivered->Add();
    }
    next_wakeup = std::min(scheduler_.NextWakeup(), read_retry);
    for (const DeadLetterRetry& r : dead_retries_) next_wakeup = std::min(next_wakeup, r.due);
  }
  SendDeadLetters();
  // Hand over outside mu_: the sink serializes the message. A member that
  // left meanwhile is gone from sinks_, and the scheduler already took its
  // deliveries back (they go out again).
  if (!batches.empty()) {
    absl::MutexLock sinks(&sinks_mu_);
    for (auto& [member, deliveries] : batches) {
      auto s = sinks_.find(member);
      if (s == sinks_.end()) continue;
      if (s->second->Deliver(topic_, std::move(deliveries))) {
        // Asked again under mu_, which Drained() takes: a sink that drains
        // after this answers false here, or its Drained() comes after.
        absl::MutexLock lock(&mu_);
        if (s->second->Backlogged()) scheduler_.SetBacklogged(member, true);
      }
    }
  }
  return next_wakeup;
}

void ConsumerGroup::StartDeadLetters(std::vector<Scheduler::DeadLetter> dead) {
  for (Scheduler::DeadLetter& d : dead) StartDeadLetter(std::move(d), /*trim=*/false);
}

void ConsumerGroup::StartDeadLetter(Scheduler::DeadLetter d, bool trim) {
  auto it = buffer_.find(d.offset);
  if (it == buffer_.end()) {
    // Only a Join() that changed the group's types unbuffers such an event,
    // and it drops the event from the scheduler too: nobody waits for it.
    RELAY_LOG(Warn, "dead letter not written: the event left the group's window",
              {{"topic", topic_}, {"group", group_}, {"offset", absl::StrCat(d.offset)}});
    return;
  }
  const Event original = buffer_.value(it).ToEvent(topic_);
  v1::DeadLetter letter;
  letter.set_group(group_);
  *letter.mutable_event() = original;
  letter.set_last_error(d.last_error);
  size_t first_attempt = 0;
  if (trim) {
    // Bounded by construction: the ids, names and at most kTrimmedAttempts
    // short outcomes. The data and headers stay in the original topic.
    letter.mutable_event()->clear_data();
    letter.mutable_event()->clear_headers();
    letter.set_event_trimmed(true);
    letter.set_last_error(std::string(Utf8Prefix(d.last_error, kMaxNackReasonBytes + 16)));
    if (d.attempts.size() > kTrimmedAttempts) {
      first_attempt = d.attempts.size() - kTrimmedAttempts;
      letter.set_attempts_omitted(static_cast<uint32_t>(first_attempt));
    }
  }
  for (size_t i = first_attempt; i < d.attempts.size(); ++i) {
    const Scheduler::Attempt& a = d.attempts[i];
    v1::DeadLetter::Attempt* pa = letter.add_attempts();
    pa->set_attempt(a.attempt);
    *pa->mutable_delivered_at() = ToProto(a.delivered_at);
    pa->set_outcome(trim ? std::string(Utf8Prefix(a.outcome, kTrimmedOutcomeBytes)) : a.outcome);
  }
  Event e;
  // Deterministic id: a dead letter written twice (a crash before the
  // group's checkpoint) is deduplicated by the DLQ topic.
  e.set_id(absl::StrCat("dlq:", group_, ":", d.offset));
  e.set_type("relay.dead_letter");
  e.set_key(original.key());
  e.set_source("relay-broker");
  *e.mutable_time() = ToProto(clock_());
  if (!trim) *e.mutable_headers() = original.headers();
  (*e.mutable_headers())["dlq_group"] = group_;
  (*e.mutable_headers())["dlq_offset"] = absl::StrCat(d.offset);
  e.set_data(letter.SerializeAsString());
  if (!trim) {
    RELAY_LOG(Warn, "event dead-lettered",
              {{"topic", topic_},
               {"group", group_},
               {"offset", absl::StrCat(d.offset)},
               {"event", original.id()},
               {"type", original.type()},
               {"attempts", absl::StrCat(d.attempts.size())},
               {"error", d.last_error}});
  }
  dead_out_.push_back(PendingDeadLetter{std::move(e), std::move(d), trim});
}

void ConsumerGroup::SendDeadLetters() {
  std::vector<PendingDeadLetter> out;
  {
    absl::MutexLock lock(&mu_);
    out.swap(dead_out_);
  }
  // Appended outside mu_: the log may answer inline (when closed).
  for (PendingDeadLetter& p : out) {
    std::vector<Event> batch;
    batch.push_back(std::move(p.event));
    log_->Append(DeadLetterTopic(topic_), std::move(batch),
                 [this, letter = std::move(p.letter),
                  trimmed = p.trimmed](absl::StatusOr<std::vector<AppendResult>> result) mutable {
                   std::vector<StoredEvent> freed;  // destroyed outside mu_
                   {
                     absl::MutexLock lock(&mu_);
                     if (!result.ok() && !trimmed && absl::IsInvalidArgument(result.status())) {
                       // Too large for the log (an event near its largest, the
                       // letter's fields on top): written again at once in the
                       // trimmed form, which a retry of the whole would never pass.
                       RELAY_LOG(Warn,
                                 "dead letter too large for the log; writing it without the "
                                 "event's data",
                                 {{"topic", topic_},
                                  {"group", group_},
                                  {"offset", absl::StrCat(letter.offset)},
                                  {"error", result.status().ToString()}});
                       dead_retries_.push_back(DeadLetterRetry{clock_(), std::move(letter), true});
                     } else if (!result.ok()) {
                       // The key stays blocked until the dead letter is written: try
                       // again soon (and after a restart: the attempts are kept).
                       RELAY_LOG(Error, "dead letter append failed; retrying",
                                 {{"topic", topic_},
                                  {"group", group_},
                                  {"offset", absl::StrCat(letter.offset)},
                                  {"error", result.status().ToString()}});
                       dead_retries_.push_back(DeadLetterRetry{clock_() + kDeadLetterRetryDelay,
                                                               std::move(letter), trimmed});
                     } else {
                       scheduler_.CompleteDeadLetter(letter.offset);
                       if (auto it = buffer_.find(letter.offset); it != buffer_.end()) {
                         Unbuffer(it, &freed);
                       }
                       ++dead_lettered_;
                       dirty_ = true;
                       DropBelowCommitted();
                     }
                   }
                   wake_();
                 });
  }
}

void ConsumerGroup::DropBelowCommitted() {
  const uint64_t committed = scheduler_.committed();
  while (!buffer_.empty() && buffer_.begin()->first < committed) {
    Unbuffer(buffer_.begin(), nullptr);
  }
}

bool ConsumerGroup::TakeCheckpoint(GroupCheckpoint* out) {
  absl::MutexLock lock(&mu_);
  if (!dirty_) return false;
  dirty_ = false;
  out->Clear();
  out->set_topic(topic_);
  out->set_group(group_);
  const uint64_t committed = scheduler_.committed();
  out->set_committed_offset(committed);
  uint64_t at = committed;
  for (const Scheduler::Range& r : scheduler_.AckedAbove()) {
    out->add_acked_runs(r.begin - at);
    out->add_acked_runs(r.end - r.begin);
    at = r.end;
  }
  for (const std::string& t : types_) out->add_types(t);
  out->set_dead_lettered(dead_lettered_);
  out->set_skipped_offsets(skipped_);
  for (const auto& [offset, attempts] : scheduler_.Attempts()) {
    if (attempts > 0) (*out->mutable_attempts())[offset] = attempts;
  }
  out->set_created_unix_micros(created_unix_micros_);
  return true;
}

void ConsumerGroup::CheckpointFailed() {
  absl::MutexLock lock(&mu_);
  dirty_ = true;
}

uint64_t ConsumerGroup::committed() const {
  absl::MutexLock lock(&mu_);
  return scheduler_.committed();
}

uint64_t ConsumerGroup::next_to_buffer() const {
  absl::MutexLock lock(&mu_);
  return scheduler_.NextOffsetToBuffer();
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
    mi->set_stalled(scheduler_.Stalled(id));
    mi->set_backlogged(scheduler_.Backlogged(id));
    *mi->mutable_connected_at() = ToProto(m.connected_at);
  }
  std::sort(info.mutable_members()->begin(), info.mutable_members()->end(),
            [](const v1::MemberInfo& a, const v1::MemberInfo& b) {
              return a.member_id() < b.member_id();
            });
  uint64_t committed = scheduler_.committed();
  uint64_t acked_above = scheduler_.AckedAboveCount();
  info.set_committed_offset(committed);
  info.set_end_offset(end);
  info.set_lag(end > committed ? end - committed - std::min(acked_above, end - committed) : 0);
  Scheduler::Stats stats = scheduler_.stats();
  info.set_in_flight(stats.in_flight);
  info.set_waiting_retry(stats.waiting_retry);
  info.set_redelivered(stats.redelivered);
  info.set_dead_lettered(dead_lettered_);
  for (const std::string& t : types_) info.add_types(t);
  info.set_skipped_offsets(skipped_);
  info.set_window_bytes(buffer_bytes_);
  return info;
}

}  // namespace relay::broker
