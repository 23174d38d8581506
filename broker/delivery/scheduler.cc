#include "broker/delivery/scheduler.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"

namespace relay::broker {

Scheduler::Scheduler(Options options, uint64_t committed, const std::vector<Range>& acked_above,
                     const absl::flat_hash_map<uint64_t, uint32_t>& attempts)
    : options_(options), next_(committed) {
  std::vector<Range> ranges;
  for (Range r : acked_above) {
    r.begin = std::max(r.begin, committed);
    if (r.begin < r.end) ranges.push_back(r);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  // Merge overlapping and adjacent runs.
  for (const Range& r : ranges) {
    if (!acked_ahead_.empty()) {
      auto last = std::prev(acked_ahead_.end());
      if (r.begin <= last->second) {
        last->second = std::max(last->second, r.end);
        continue;
      }
    }
    acked_ahead_.emplace(r.begin, r.end);
  }
  for (const auto& [offset, count] : attempts) {
    if (offset < committed || count == 0) continue;
    auto it = acked_ahead_.upper_bound(offset);
    if (it != acked_ahead_.begin() && std::prev(it)->second > offset) continue;  // acked
    attempts_ahead_.emplace(offset, count);
  }
}

uint64_t Scheduler::NextOffsetToBuffer() const { return next_; }

bool Scheduler::HasWaiting() const { return !ready_.empty() || !exhausted_.empty(); }

size_t Scheduler::BufferRoom() const {
  return events_.size() >= options_.max_buffered ? 0 : options_.max_buffered - events_.size();
}

bool Scheduler::Add(uint64_t offset, absl::string_view key, bool skip) {
  assert(offset == next_);
  assert(BufferRoom() > 0);
  next_ = offset + 1;
  uint32_t attempts = 0;
  // Both sets hold only offsets >= next_ (SkipTo() trims them), so the
  // smallest entry is the only one that can match.
  if (auto it = attempts_ahead_.begin(); it != attempts_ahead_.end() && it->first == offset) {
    attempts = it->second;
    attempts_ahead_.erase(it);
  }
  if (auto it = acked_ahead_.begin(); it != acked_ahead_.end() && it->first == offset) {
    const uint64_t end = it->second;
    acked_ahead_.erase(it);
    if (offset + 1 < end) acked_ahead_.emplace(offset + 1, end);
    skip = true;
  }
  if (skip) return false;  // Acked: not stored (see Event).

  // The largest offset yet: the end is where it goes.
  Event& e = events_.value(events_.Insert(offset, Event()));
  e.key = std::string(key);
  e.attempts = attempts;
  if (key.empty()) {
    Release(offset, e);
    return true;
  }
  KeyQueue& queue = keys_[key];
  queue.offsets.push_back(offset);
  if (queue.front() == offset) Release(offset, e);
  return true;
}

void Scheduler::SkipTo(uint64_t offset) {
  // Ascending, so a key's next event released by Remove() is either removed
  // in a later iteration or legitimately the new head.
  while (!events_.empty() && events_.begin()->first < offset) Remove(events_.begin());
  SkipAhead(offset);
}

uint64_t Scheduler::SkipAhead(uint64_t offset) {
  if (offset <= next_) return 0;
  const uint64_t skipped = offset - next_;
  next_ = offset;
  while (!acked_ahead_.empty() && acked_ahead_.begin()->first < next_) {
    auto it = acked_ahead_.begin();
    const uint64_t end = it->second;
    acked_ahead_.erase(it);
    if (end > next_) acked_ahead_.emplace(next_, end);
  }
  attempts_ahead_.erase(attempts_ahead_.begin(), attempts_ahead_.lower_bound(next_));
  return skipped;
}

void Scheduler::Drop(uint64_t offset) {
  auto it = events_.find(offset);
  if (it == events_.end()) return;
  assert(events_.value(it).state != State::kInFlight);
  Remove(it);
}

void Scheduler::AddMember(MemberId member, uint32_t max_in_flight, absl::Duration ack_deadline) {
  auto [it, inserted] = members_.try_emplace(member);
  Member& m = it->second;
  if (!inserted) available_.erase(LoadOf(member, m));
  // A member re-added keeps its deliveries; the new settings apply to the
  // next ones.
  m.max_in_flight = max_in_flight;
  m.ack_deadline = ack_deadline;
  OfferIfAvailable(member, m);
}

std::vector<Scheduler::DeadLetter> Scheduler::RemoveMember(MemberId member, absl::Time now) {
  std::vector<DeadLetter> dead;
  auto mit = members_.find(member);
  if (mit == members_.end()) return dead;
  Member& m = mit->second;
  available_.erase(LoadOf(member, m));
  std::vector<uint64_t> held;
  held.reserve(m.in_flight());
  for (const Deadline& d : m.deadlines) {
    if (!m.ended.contains({d.offset, d.attempt})) held.push_back(d.offset);
  }
  std::sort(held.begin(), held.end());
  members_.erase(mit);
  for (uint64_t offset : held) {
    Event& e = events_.value(events_.find(offset));
    e.state = State::kPending;  // Unassigned; Fail() decides what follows.
    Fail(offset, e, "member left", absl::ZeroDuration(), now, &dead);
  }
  return dead;
}

std::vector<Scheduler::Assignment> Scheduler::Assign(absl::Time now, size_t max) {
  while (!retries_.empty() && retries_.begin()->first <= now) {
    const uint64_t offset = retries_.begin()->second;
    retries_.erase(retries_.begin());
    events_.value(events_.find(offset)).state = State::kReady;
    ready_.insert(offset);
  }
  std::vector<Assignment> out;
  // Ready offsets ascend and are mostly neighbours in events_ too.
  auto hint = events_.end();
  while (out.size() < max && !ready_.empty() && !available_.empty()) {
    const MemberId id = std::get<2>(*available_.begin());
    available_.erase(available_.begin());
    Member& m = members_.find(id)->second;
    // The least loaded member stays so for every event while it is the
    // only one with room: it takes them in one run, without leaving and
    // re-entering available_ for each.
    const bool alone = available_.empty();
    do {
      const uint64_t offset = *ready_.begin();
      ready_.erase(ready_.begin());
      if (hint != events_.end()) ++hint;
      auto it = events_.FindFrom(hint, offset);
      hint = it;
      Event& e = events_.value(it);

      e.state = State::kInFlight;
      e.member = id;
      e.attempts++;
      e.delivered_at = now;
      e.due = now + m.ack_deadline;
      if (!m.deadlines.empty()) e.due = std::max(e.due, m.deadlines.back().due);
      m.deadlines.push_back(Deadline{e.due, offset, e.attempts});
      m.last_assigned = ++assign_seq_;
      if (e.attempts > 1) redelivered_++;
      out.push_back(Assignment{id, offset, e.attempts});
    } while (alone && out.size() < max && !ready_.empty() && m.in_flight() < m.max_in_flight);
    OfferIfAvailable(id, m);
  }
  return out;
}

Scheduler::AckOutcome Scheduler::Ack(MemberId member, uint64_t offset, uint32_t attempt) {
  if (offset >= next_) return AckOutcome::kUnknown;
  // Any member may ack the latest attempt: the work is done.
  HeardFrom(member);
  auto it = events_.find(offset);
  if (it == events_.end()) return AckOutcome::kStale;  // acked, or below committed()
  const Event& e = events_.value(it);
  // An event being dead-lettered stays so: its key waits for
  // CompleteDeadLetter() as promised.
  if (attempt == 0 || attempt != e.attempts || e.state == State::kDeadLettering) {
    return AckOutcome::kStale;
  }
  Remove(it);
  return AckOutcome::kAcked;
}

void Scheduler::AckAll(MemberId member, absl::Span<const AckRef> acks,
                       std::vector<uint64_t>* acked) {
  // As Ack(): an ack below next_ shows the member alive. Done first, so that
  // no offer of `member` happens while its bookkeeping is deferred.
  for (const AckRef& a : acks) {
    if (a.offset < next_) {
      HeardFrom(member);
      break;
    }
  }
  deferring_ = true;
  auto hint = events_.end();
  for (const AckRef& a : acks) {
    if (a.offset >= next_) continue;  // kUnknown
    auto it = events_.FindFrom(hint, a.offset);
    if (it == events_.end()) continue;  // kStale
    const Event& e = events_.value(it);
    if (a.attempt == 0 || a.attempt != e.attempts || e.state == State::kDeadLettering) continue;
    hint = Remove(it);
    acked->push_back(a.offset);
  }
  deferring_ = false;
  for (MemberId id : deferred_) {
    auto mit = members_.find(id);
    if (mit == members_.end()) continue;
    mit->second.deferred = false;
    OfferIfAvailable(id, mit->second);
  }
  deferred_.clear();
}

Scheduler::AckOutcome Scheduler::Nack(MemberId member, uint64_t offset, uint32_t attempt,
                                      absl::string_view reason, absl::Duration retry_delay,
                                      absl::Time now, std::vector<DeadLetter>* dead) {
  assert(dead != nullptr);
  if (offset >= next_) return AckOutcome::kUnknown;
  HeardFrom(member);
  auto it = events_.find(offset);
  if (it == events_.end()) return AckOutcome::kStale;
  Event& e = events_.value(it);
  if (e.state != State::kInFlight || e.member != member || e.attempts != attempt) {
    return AckOutcome::kStale;
  }
  Unassign(offset, e);
  std::string outcome = reason.empty() ? std::string("nack") : absl::StrCat("nack: ", reason);
  const absl::Duration delay = retry_delay > absl::ZeroDuration() ? retry_delay : Backoff(attempt);
  Fail(offset, e, std::move(outcome), delay, now, dead);
  return AckOutcome::kAcked;
}

std::vector<Scheduler::DeadLetter> Scheduler::ExpireDeadlines(absl::Time now) {
  std::vector<DeadLetter> dead;
  while (!exhausted_.empty()) {
    const uint64_t offset = *exhausted_.begin();
    exhausted_.erase(exhausted_.begin());
    Event& e = events_.value(events_.find(offset));
    e.state = State::kDeadLettering;
    history_.erase(offset);
    dead.push_back(DeadLetter{
        offset,
        e.key,
        absl::StrCat("delivery attempts (", e.attempts, ") exhausted before a broker restart"),
        {}});
  }
  // Member by member, in ascending id order (members_ is unordered) so
  // that dead letters come out in the same order on every run.
  std::vector<MemberId> due;
  for (const auto& [id, m] : members_) {
    if (!m.deadlines.empty() && m.deadlines.front().due <= now) due.push_back(id);
  }
  std::sort(due.begin(), due.end());
  for (MemberId id : due) {
    Member& m = members_.find(id)->second;
    if (!m.stalled) {
      available_.erase(LoadOf(id, m));
      m.stalled = true;
    }
    // The front is live (trimmed), so Unassign() pops it and this ends.
    while (!m.deadlines.empty() && m.deadlines.front().due <= now) {
      const Deadline front = m.deadlines.front();
      auto it = events_.find(front.offset);
      Event* e = it == events_.end() ? nullptr : &events_.value(it);
      if (e == nullptr || e->state != State::kInFlight || e->member != id ||
          e->attempts != front.attempt) {
        assert(false && "a deadline queue's front is not in flight");
        m.deadlines.pop_front();  // never loop on a broken invariant
        continue;
      }
      Unassign(front.offset, *e);
      Fail(front.offset, *e, "ack deadline exceeded", Backoff(e->attempts), now, &dead);
    }
  }
  return dead;
}

void Scheduler::CompleteDeadLetter(uint64_t offset) {
  auto it = events_.find(offset);
  if (it != events_.end() && events_.value(it).state == State::kDeadLettering) Remove(it);
}

absl::Time Scheduler::NextWakeup() const {
  if (!exhausted_.empty()) return absl::InfinitePast();
  absl::Time t = absl::InfiniteFuture();
  for (const auto& [id, m] : members_) {
    if (!m.deadlines.empty()) t = std::min(t, m.deadlines.front().due);
  }
  if (!retries_.empty()) t = std::min(t, retries_.begin()->first);
  return t;
}

uint64_t Scheduler::committed() const { return events_.empty() ? next_ : events_.begin()->first; }

std::vector<Scheduler::Range> Scheduler::AckedAbove() const {
  std::vector<Range> out;
  auto add = [&out](uint64_t begin, uint64_t end) {
    if (begin >= end) return;
    if (!out.empty() && out.back().end == begin) {
      out.back().end = end;
    } else {
      out.push_back(Range{begin, end});
    }
  };
  uint64_t offset = committed();
  for (const auto& entry : events_) {
    add(offset, entry.first);
    offset = entry.first + 1;
  }
  add(offset, next_);
  for (const auto& [begin, end] : acked_ahead_) add(begin, end);
  return out;
}

uint64_t Scheduler::AckedAboveCount() const {
  uint64_t n = 0;
  for (const Range& r : AckedAbove()) n += r.end - r.begin;
  return n;
}

absl::flat_hash_map<uint64_t, uint32_t> Scheduler::Attempts() const {
  absl::flat_hash_map<uint64_t, uint32_t> out(attempts_ahead_.begin(), attempts_ahead_.end());
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    const Event& e = events_.value(it);
    if (e.attempts > 0) out.emplace(it->first, e.attempts);
  }
  return out;
}

bool Scheduler::Stalled(MemberId member) const {
  auto it = members_.find(member);
  return it != members_.end() && it->second.stalled;
}

void Scheduler::SetBacklogged(MemberId member, bool backlogged) {
  auto it = members_.find(member);
  if (it == members_.end() || it->second.backlogged == backlogged) return;
  Member& m = it->second;
  if (backlogged) {
    available_.erase(LoadOf(member, m));
    m.backlogged = true;
  } else {
    m.backlogged = false;
    OfferIfAvailable(member, m);
  }
}

bool Scheduler::Backlogged(MemberId member) const {
  auto it = members_.find(member);
  return it != members_.end() && it->second.backlogged;
}

uint32_t Scheduler::InFlight(MemberId member) const {
  auto it = members_.find(member);
  return it == members_.end() ? 0 : it->second.in_flight();
}

Scheduler::Stats Scheduler::stats() const {
  Stats s;
  for (const auto& [id, m] : members_) s.in_flight += m.in_flight();
  s.waiting_retry = retries_.size();
  s.buffered = events_.size();
  s.redelivered = redelivered_;
  return s;
}

absl::Duration Scheduler::Backoff(uint32_t attempt) const {
  return relay::Backoff::ForAttempt(options_.min_backoff, options_.max_backoff, attempt);
}

void Scheduler::OfferIfAvailable(MemberId id, const Member& m) {
  if (!m.stalled && !m.backlogged && m.in_flight() < m.max_in_flight) {
    available_.insert(LoadOf(id, m));
  }
}

void Scheduler::HeardFrom(MemberId member) {
  auto it = members_.find(member);
  if (it == members_.end() || !it->second.stalled) return;
  it->second.stalled = false;
  OfferIfAvailable(member, it->second);
}

void Scheduler::Release(uint64_t offset, Event& e) {
  if (e.attempts > 0 && e.attempts >= options_.max_deliveries) {
    // Restored from a checkpoint with no delivery left: dead-letter it
    // instead of exceeding max_deliveries (ExpireDeadlines() hands it out).
    e.state = State::kExhausted;
    exhausted_.insert(offset);
  } else {
    e.state = State::kReady;
    // Mostly the largest ready offset (a new event): the end is the hint.
    ready_.insert(ready_.end(), offset);
  }
}

void Scheduler::Unassign(uint64_t offset, Event& e) {
  e.state = State::kPending;
  // RemoveMember() takes a leaving member's deliveries back itself.
  auto mit = members_.find(e.member);
  if (mit == members_.end()) return;
  Member& m = mit->second;
  if (deferring_) {
    if (!m.deferred) {
      available_.erase(LoadOf(e.member, m));
      m.deferred = true;
      deferred_.push_back(e.member);
    }
    EndDeadline(m, offset, e.attempts);
    return;
  }
  available_.erase(LoadOf(e.member, m));
  EndDeadline(m, offset, e.attempts);
  OfferIfAvailable(e.member, m);
}

void Scheduler::EndDeadline(Member& m, uint64_t offset, uint32_t attempt) {
  if (m.deadlines.empty()) return;  // only after a broken invariant (ExpireDeadlines)
  const Deadline& front = m.deadlines.front();
  if (front.offset == offset && front.attempt == attempt) {
    m.deadlines.pop_front();
    TrimDeadlines(m);
    return;
  }
  m.ended.insert({offset, attempt});
  // Behind a delivery that is not acked, the ended ones would pile up until
  // its deadline: drop them once they outnumber the live ones.
  if (m.ended.size() > m.in_flight() + 64) {
    std::deque<Deadline> live;
    for (const Deadline& d : m.deadlines) {
      if (!m.ended.contains({d.offset, d.attempt})) live.push_back(d);
    }
    m.deadlines.swap(live);
    m.ended.clear();
  }
}

void Scheduler::TrimDeadlines(Member& m) {
  while (!m.ended.empty() && !m.deadlines.empty()) {
    auto it = m.ended.find({m.deadlines.front().offset, m.deadlines.front().attempt});
    if (it == m.ended.end()) return;
    m.ended.erase(it);
    m.deadlines.pop_front();
  }
}

void Scheduler::Fail(uint64_t offset, Event& e, std::string outcome, absl::Duration delay,
                     absl::Time now, std::vector<DeadLetter>* dead) {
  std::vector<Attempt>& history = history_[offset];
  history.push_back(Attempt{e.attempts, e.delivered_at, std::move(outcome)});
  if (e.attempts >= options_.max_deliveries) {
    e.state = State::kDeadLettering;
    DeadLetter letter{offset, e.key, history.back().outcome, std::move(history)};
    history_.erase(offset);
    if (dead != nullptr) dead->push_back(std::move(letter));
  } else if (delay <= absl::ZeroDuration()) {
    e.state = State::kReady;
    ready_.insert(offset);
  } else {
    e.state = State::kRetryWait;
    e.due = now + delay;
    retries_.insert(Timer(e.due, offset));
  }
}

SlotMap<Scheduler::Event>::iterator Scheduler::Remove(SlotMap<Event>::iterator it) {
  const uint64_t offset = it->first;
  Event& e = events_.value(it);
  switch (e.state) {
    case State::kReady:
      ready_.erase(offset);
      break;
    case State::kInFlight:
      Unassign(offset, e);
      break;
    case State::kRetryWait:
      retries_.erase(Timer(e.due, offset));
      break;
    case State::kExhausted:
      exhausted_.erase(offset);
      break;
    case State::kPending:
    case State::kDeadLettering:
      break;
  }
  if (!history_.empty()) history_.erase(offset);
  if (!e.key.empty()) {
    auto kit = keys_.find(e.key);
    KeyQueue& queue = kit->second;
    const bool was_head = queue.Remove(offset);
    if (queue.empty()) {
      keys_.erase(kit);
    } else if (was_head) {
      const uint64_t next = queue.front();
      Event& n = events_.value(events_.find(next));
      if (n.state == State::kPending) Release(next, n);
    }
  }
  return events_.erase(it);
}

bool Scheduler::KeyQueue::Remove(uint64_t offset) {
  if (offsets[head] == offset) {
    ++head;
    // Compacts once the removed front is half the vector: amortized O(1).
    if (head == offsets.size()) {
      offsets.clear();
      head = 0;
    } else if (head * 2 >= offsets.size()) {
      offsets.erase(offsets.begin(), offsets.begin() + static_cast<ptrdiff_t>(head));
      head = 0;
    }
    return true;
  }
  auto it = std::lower_bound(offsets.begin() + static_cast<ptrdiff_t>(head), offsets.end(), offset);
  if (it != offsets.end() && *it == offset) offsets.erase(it);
  return false;
}

}  // namespace relay::broker
