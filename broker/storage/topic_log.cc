#include "broker/storage/topic_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/storage/record.h"
#include "common/log.h"

namespace relay::broker {

namespace {
constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 30;
}  // namespace

absl::StatusOr<std::unique_ptr<TopicLog>> TopicLog::Open(Options options,
                                                         const Segment::RecordVisitor& visit) {
  if (options.env == nullptr || options.dir.empty()) {
    return absl::InvalidArgumentError("TopicLog needs an env and a directory");
  }
  if (options.segment_bytes == 0 || options.segment_bytes > kMaxSegmentBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment_bytes must be in [1, ", kMaxSegmentBytes, "]"));
  }
  std::unique_ptr<TopicLog> log(new TopicLog(std::move(options)));
  absl::Status status = log->Recover(visit);
  if (!status.ok()) return status;
  return log;
}

TopicLog::TopicLog(Options options) : options_(std::move(options)) {}

TopicLog::~TopicLog() = default;

absl::Status TopicLog::Recover(const Segment::RecordVisitor& visit) {
  Env* env = options_.env;
  absl::Status status = env->CreateDir(options_.dir);
  if (!status.ok()) return status;
  absl::StatusOr<std::vector<std::string>> names = env->ListDir(options_.dir);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> bases;
  for (const std::string& name : *names) {
    uint64_t base;
    if (Segment::ParseFileName(name, &base)) bases.push_back(base);
  }
  std::sort(bases.begin(), bases.end());

  std::vector<std::shared_ptr<Segment>> segments;
  for (size_t i = 0; i < bases.size(); ++i) {
    const bool last = i + 1 == bases.size();
    Segment::Recovery found;
    absl::StatusOr<std::unique_ptr<Segment>> segment = Segment::Recover(
        env, options_.dir, bases[i], last ? UINT64_MAX : bases[i + 1], visit, &found);
    if (!segment.ok()) return segment.status();
    // The reserved zeros after a torn write are no loss: not counted.
    uint64_t bad = found.file_bytes - found.valid_bytes - found.zero_tail_bytes;
    if (found.problem.empty() && !last && (*segment)->end_offset() != bases[i + 1]) {
      // An older segment was synced whole before the next one began: zeros
      // (or the end of the file) in place of its last records are damage,
      // not reserved space.
      found.problem = absl::StrCat(found.zero_tail_bytes > 0 ? "zeros" : "end of file",
                                   " from byte ", found.valid_bytes, " where offsets ",
                                   (*segment)->end_offset(), "..", bases[i + 1], " should be");
      bad = found.zero_tail_bytes;
    }
    if (found.problem.empty() && found.file_bytes > found.valid_bytes) {
      // Space reserved ahead of the writer and not cut, by a crash or a
      // stop without Close(): zeros, nothing lost. The active segment
      // reserves anew.
      status = (*segment)->TruncateToIndexed(env);
      if (!status.ok()) return status;
    } else if (!found.problem.empty()) {
      if (last) {
        // A torn write at the tail (or garbage after it): only bytes that
        // were never acknowledged can be there, so cut them off.
        status = (*segment)->TruncateToIndexed(env);
        if (!status.ok()) return status;
        recovery_.truncated_bytes += bad;
        RELAY_LOG(Warn, "storage: torn tail cut off",
                  {{"topic", options_.name},
                   {"segment", (*segment)->path()},
                   {"problem", found.problem},
                   {"cut_bytes", absl::StrCat(bad)},
                   {"kept_bytes", absl::StrCat(found.valid_bytes)}});
      } else {
        ++recovery_.damaged_segments;
        recovery_.unreadable_bytes += bad;
        RELAY_LOG(Error, "storage: damaged segment, kept the valid prefix",
                  {{"topic", options_.name},
                   {"segment", (*segment)->path()},
                   {"problem", found.problem},
                   {"kept_bytes", absl::StrCat(found.valid_bytes)},
                   {"kept_offsets", absl::StrCat(bases[i], "..", (*segment)->end_offset())},
                   {"unreadable_bytes", absl::StrCat(bad)},
                   {"lost_up_to", absl::StrCat(bases[i + 1])}});
      }
    }
    segments.push_back(*std::move(segment));
  }

  if (segments.empty()) {
    absl::StatusOr<std::unique_ptr<Segment>> segment = Segment::Create(env, options_.dir, 0);
    if (!segment.ok()) return segment.status();
    segments.push_back(*std::move(segment));
  } else {
    status = segments.back()->OpenForAppend(env);
    // What a crashed process left in the page cache is served as durable
    // from now on: make sure it is.
    if (status.ok()) status = segments.back()->writer()->Sync();
    if (!status.ok()) return status;
  }

  active_ = segments.back();
  ReserveAhead();
  written_end_ = active_->end_offset();
  for (const auto& segment : segments) {
    if (segment->records() > 0) last_publish_time_ = segment->last_time();
  }
  absl::MutexLock lock(&mu_);
  segments_ = std::move(segments);
  indexed_end_ = durable_end_ = written_end_;
  total_bytes_ = 0;
  for (const auto& segment : segments_) total_bytes_ += segment->bytes();
  return absl::OkStatus();
}

absl::Status TopicLog::Append(absl::Span<const EventBytes> events, absl::Time publish_time) {
  if (active_->writer() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("topic ", options_.name, " is broken"));
  }
  buffer_.clear();
  positions_.clear();
  AssignedFields fields(publish_time);
  uint64_t segment_size = active_->bytes();
  size_t first = 0;  // first entry of positions_ in the active segment
  uint64_t offset = written_end_;
  for (const EventBytes& event : events) {
    size_t before = buffer_.size();
    fields.set_offset(offset);
    AppendEventRecord(event, fields, &buffer_);
    size_t record_bytes = buffer_.size() - before;
    if (segment_size + buffer_.size() > options_.segment_bytes && segment_size + before > 0) {
      // This record does not fit: what precedes it ends the active segment.
      if (before > 0) {
        absl::Status status = WriteBuffered(before, first, positions_.size(), publish_time);
        if (!status.ok()) return status;
        buffer_.erase(0, before);
      }
      absl::Status status = Roll(offset);
      if (!status.ok()) return status;
      segment_size = 0;
      first = positions_.size();
    }
    positions_.push_back(segment_size + buffer_.size() - record_bytes);
    ++offset;
  }
  if (buffer_.empty()) return absl::OkStatus();
  return WriteBuffered(buffer_.size(), first, positions_.size(), publish_time);
}

absl::Status TopicLog::WriteBuffered(size_t n, size_t first, size_t last, absl::Time publish_time) {
  absl::Status status = active_->writer()->Append(absl::string_view(buffer_.data(), n));
  if (!status.ok()) return status;
  uint64_t new_bytes = active_->writer()->Size();
  absl::MutexLock lock(&mu_);
  active_->AddRecords(positions_, first, last, publish_time, new_bytes);
  indexed_end_ += last - first;
  total_bytes_ += n;
  written_end_ = indexed_end_;
  if (last > first) last_publish_time_ = publish_time;
  return absl::OkStatus();
}

absl::Status TopicLog::Roll(uint64_t base_offset) {
  // Sealing syncs the full segment, so that only the active segment ever
  // holds unsynced records and a power cut can only tear the last one.
  absl::Status status = active_->Seal();
  if (!status.ok()) return status;
  absl::StatusOr<std::unique_ptr<Segment>> segment =
      Segment::Create(options_.env, options_.dir, base_offset);
  if (!segment.ok()) return segment.status();
  active_ = *std::move(segment);
  ReserveAhead();
  absl::MutexLock lock(&mu_);
  segments_.push_back(active_);
  return absl::OkStatus();
}

void TopicLog::ReserveAhead() {
  active_->writer()->SetReserveStep(std::min(options_.reserve_bytes, options_.segment_bytes));
}

absl::Status TopicLog::Sync() {
  if (active_->writer() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("topic ", options_.name, " is broken"));
  }
  absl::Status status = active_->writer()->Sync();
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  durable_end_ = written_end_;
  return absl::OkStatus();
}

absl::Status TopicLog::Seal() { return active_->Seal(); }

absl::Status TopicLog::DropUnsynced() {
  // Also when nothing was written since the last sync: a write that failed
  // may have left part of its records in the file (a short write, then
  // EFBIG or ENOSPC), which a restart would read back.
  return active_->CutAt(options_.env, DurableEnd());
}

void TopicLog::MarkDurable() {
  absl::MutexLock lock(&mu_);
  durable_end_ = indexed_end_;
}

uint64_t TopicLog::DurableEnd() const {
  absl::ReaderMutexLock lock(&mu_);
  return durable_end_;
}

uint64_t TopicLog::FirstOffset() const {
  absl::ReaderMutexLock lock(&mu_);
  return segments_.front()->base_offset();
}

size_t TopicLog::FindSegment(uint64_t offset) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](uint64_t o, const std::shared_ptr<Segment>& segment) {
                               return o < segment->base_offset();
                             });
  if (it == segments_.begin()) return 0;
  size_t i = static_cast<size_t>(it - segments_.begin()) - 1;
  // In a hole after a damaged segment: go to the next one.
  if (offset >= segments_[i]->end_offset() && i + 1 < segments_.size()) ++i;
  return i;
}

absl::Status TopicLog::ReadRanges(uint64_t from, size_t max_events, size_t max_bytes,
                                  const RangeReader& read) const {
  size_t got = 0;
  uint64_t next = from;
  size_t bytes = 0;
  while (got < max_events) {
    std::shared_ptr<Segment> segment;
    uint64_t first;
    size_t count = 0;
    uint64_t start;
    uint64_t end;
    bool bytes_full = false;
    {
      absl::ReaderMutexLock lock(&mu_);
      size_t i = FindSegment(next);
      segment = segments_[i];
      first = std::max(next, segment->base_offset());
      uint64_t limit = std::min(segment->end_offset(), durable_end_);
      if (first >= limit) {
        if (got == 0 && i + 1 < segments_.size() &&
            segments_[i + 1]->base_offset() < durable_end_) {
          next = segments_[i + 1]->base_offset();
          continue;
        }
        break;
      }
      // One answer holds consecutive offsets only: stop at a hole (damage,
      // or retention deleting what this read was about to reach).
      if (got > 0 && first != next) break;
      start = segment->RecordStart(first);
      end = start;
      while (first + count < limit && got + count < max_events) {
        uint64_t record_end = segment->RecordEnd(first + count);
        if (bytes + (record_end - start) > max_bytes && (bytes > 0 || count > 0)) {
          bytes_full = true;
          break;
        }
        end = record_end;
        ++count;
      }
    }
    if (count > 0) {
      // The records below the durable end never change: read them unlocked.
      absl::Status status = read(*segment, first, count, start, end);
      if (!status.ok()) return status;
      got += count;
      bytes += end - start;
      next = first + count;
    }
    if (bytes_full) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Event>> TopicLog::Read(uint64_t from, size_t max_events,
                                                  size_t max_bytes) const {
  std::vector<Event> events;
  absl::Status status = ReadRanges(
      from, max_events, max_bytes,
      [&](const Segment& segment, uint64_t first, size_t count, uint64_t start, uint64_t end) {
        return segment.ReadEvents(first, count, start, end, options_.name, &events);
      });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<StoredEvent>> TopicLog::ReadStored(uint64_t from, size_t max_events,
                                                              size_t max_bytes) const {
  std::vector<StoredEvent> events;
  absl::Status status = ReadRanges(
      from, max_events, max_bytes,
      [&](const Segment& segment, uint64_t first, size_t count, uint64_t start, uint64_t end) {
        return segment.ReadStored(first, count, start, end, &events);
      });
  if (!status.ok()) return status;
  return events;
}

uint64_t TopicLog::OffsetForTime(absl::Time t) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& segment : segments_) {
    if (segment->records() > 0 && segment->last_time() >= t) {
      return std::min(segment->OffsetForTime(t), durable_end_);
    }
  }
  return durable_end_;
}

TopicStats TopicLog::Stats() const {
  TopicStats stats;
  stats.name = options_.name;
  absl::ReaderMutexLock lock(&mu_);
  stats.segments = static_cast<uint32_t>(segments_.size());
  stats.bytes = total_bytes_;
  stats.first_offset = segments_.front()->base_offset();
  stats.end_offset = durable_end_;
  for (const auto& segment : segments_) {
    uint64_t end = std::min(segment->end_offset(), durable_end_);
    if (end <= segment->base_offset()) continue;
    stats.events += end - segment->base_offset();
    if (stats.first_time == absl::InfinitePast()) stats.first_time = segment->first_time();
    stats.last_time = segment->TimeOf(end - 1);
  }
  return stats;
}

absl::StatusOr<TopicLog::RetentionResult> TopicLog::DeleteOldSegments(
    const RetentionPolicy& policy) {
  RetentionResult result;
  while (true) {
    std::shared_ptr<Segment> victim;
    uint64_t forced_events = 0;
    bool forced = false;
    uint64_t total_after;
    {
      absl::MutexLock lock(&mu_);
      if (segments_.size() <= 1) break;  // never the active segment
      const Segment& oldest = *segments_.front();
      if (oldest.end_offset() > durable_end_) break;
      bool too_old = oldest.last_time() < policy.now - policy.max_age;
      bool too_big = total_bytes_ > policy.max_bytes;
      bool below_floor = !policy.floor.has_value() || oldest.end_offset() <= *policy.floor;
      bool allowed = (too_old || too_big) && below_floor;
      forced = !allowed && total_bytes_ > policy.hard_max_bytes;
      if (!allowed && !forced) break;
      if (forced) {
        uint64_t protected_from = std::max(oldest.base_offset(), policy.floor.value_or(0));
        forced_events =
            oldest.end_offset() > protected_from ? oldest.end_offset() - protected_from : 0;
      }
      victim = segments_.front();
      segments_.erase(segments_.begin());
      total_bytes_ -= victim->bytes();
      total_after = total_bytes_;
    }
    ++result.deleted_segments;
    result.deleted_events += victim->records();
    result.forced_deleted_events += forced_events;
    if (forced) {
      RELAY_LOG(Warn, "storage: above the hard cap, deleted unconsumed events",
                {{"topic", options_.name},
                 {"hard_max_bytes", absl::StrCat(policy.hard_max_bytes)},
                 {"segment", victim->path()},
                 {"offsets", absl::StrCat(victim->base_offset(), "..", victim->end_offset())},
                 {"floor", absl::StrCat(policy.floor.value_or(0))},
                 {"lost_events", absl::StrCat(forced_events)},
                 {"bytes_left", absl::StrCat(total_after)}});
    }
    // Readers still holding the segment keep their open file.
    absl::Status status = options_.env->RemoveFile(victim->path());
    if (!status.ok()) return status;
  }
  return result;
}

}  // namespace relay::broker
