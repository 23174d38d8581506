#include "broker/storage/segment.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace relay::broker {
namespace {

constexpr absl::string_view kSuffix = ".log";
constexpr size_t kDigits = 20;

}  // namespace

std::string Segment::FileName(uint64_t base_offset) {
  char name[kDigits + 8];
  std::snprintf(name, sizeof(name), "%020" PRIu64 ".log", base_offset);
  return name;
}

bool Segment::ParseFileName(absl::string_view name, uint64_t* base_offset) {
  if (name.size() != kDigits + kSuffix.size() || name.substr(kDigits) != kSuffix) return false;
  absl::string_view digits = name.substr(0, kDigits);
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) return false;
  return absl::SimpleAtoi(digits, base_offset);
}

Segment::Segment(std::string path, uint64_t base_offset, std::unique_ptr<RandomAccessFile> reader)
    : path_(std::move(path)), base_offset_(base_offset), reader_(std::move(reader)) {}

absl::StatusOr<std::unique_ptr<Segment>> Segment::Create(Env* env, const std::string& dir,
                                                         uint64_t base_offset) {
  std::string path = absl::StrCat(dir, "/", FileName(base_offset));
  // Open the writer first: it creates the file (and syncs the directory).
  absl::StatusOr<std::unique_ptr<WritableFile>> writer = env->NewAppendableFile(path);
  if (!writer.ok()) return writer.status();
  if ((*writer)->Size() != 0) {
    return absl::AlreadyExistsError(absl::StrCat("new segment ", path, " is not empty"));
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> reader = env->NewRandomAccessFile(path);
  if (!reader.ok()) {
    // Not left behind empty: a restart would take its base offset for the
    // log's next one, and the records cut off before it (never acknowledged)
    // for a damaged segment with a hole after it.
    (*writer).reset();
    if (absl::Status s = env->RemoveFile(path); !s.ok()) {
      RELAY_LOG(Warn, "storage: removing a segment that could not be opened failed",
                {{"file", path}, {"error", s.ToString()}});
    }
    return reader.status();
  }
  std::unique_ptr<Segment> segment(new Segment(path, base_offset, *std::move(reader)));
  segment->writer_ = *std::move(writer);
  return segment;
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::Recover(Env* env, const std::string& dir,
                                                          uint64_t base_offset,
                                                          uint64_t limit_offset,
                                                          const RecordVisitor& visit,
                                                          Recovery* recovery) {
  *recovery = Recovery();
  std::string path = absl::StrCat(dir, "/", FileName(base_offset));
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> reader = env->NewRandomAccessFile(path);
  if (!reader.ok()) return reader.status();
  std::unique_ptr<Segment> segment(new Segment(path, base_offset, *std::move(reader)));

  std::string contents;
  absl::Status status = ReadFileToString(env, path, &contents);
  if (!status.ok()) return status;
  recovery->file_bytes = contents.size();

  RecordReader records(contents);
  absl::string_view payload;
  RecordMeta meta;
  while (records.Next(&payload)) {
    uint64_t expected = segment->end_offset();
    if (records.record_start() > std::numeric_limits<uint32_t>::max()) {
      recovery->problem =
          absl::StrCat("segment larger than 4 GiB at byte ", records.record_start());
      break;
    }
    if (!ParseRecordMeta(payload, &meta)) {
      recovery->problem =
          absl::StrCat("record at byte ", records.record_start(), " is not an event");
      break;
    }
    if (meta.offset != expected) {
      recovery->problem = absl::StrCat("record at byte ", records.record_start(), " has offset ",
                                       meta.offset, ", expected ", expected);
      break;
    }
    if (expected >= limit_offset) {
      recovery->problem = absl::StrCat("record at byte ", records.record_start(),
                                       " overlaps the next segment (offset ", expected, ")");
      break;
    }
    segment->Index(records.record_start(), meta.publish_time);
    segment->bytes_ = records.valid_end();
    if (visit) visit(meta);
  }
  if (recovery->problem.empty() && !records.clean_end()) {
    recovery->problem =
        absl::StrCat(RecordReader::StopName(records.stop()), " at byte ", records.valid_end());
  }
  recovery->valid_bytes = segment->bytes_;
  const size_t last_nonzero = absl::string_view(contents).find_last_not_of('\0');
  const uint64_t data_end = last_nonzero == absl::string_view::npos ? 0 : last_nonzero + 1;
  recovery->zero_tail_bytes = contents.size() - std::max(data_end, recovery->valid_bytes);
  return segment;
}

void Segment::Index(uint64_t position, absl::Time publish_time) {
  uint64_t offset = end_offset();
  positions_.push_back(static_cast<uint32_t>(position));
  // Times never decrease within a log; should a clock have gone backwards in
  // an old file anyway, clamp so that OffsetForTime can binary-search.
  if (times_.empty() || publish_time > times_.back().time) {
    times_.push_back(TimeRun{offset, publish_time});
  }
}

absl::Time Segment::first_time() const {
  return times_.empty() ? absl::InfinitePast() : times_.front().time;
}

absl::Time Segment::last_time() const {
  return times_.empty() ? absl::InfinitePast() : times_.back().time;
}

absl::Time Segment::TimeOf(uint64_t offset) const {
  auto it = std::upper_bound(times_.begin(), times_.end(), offset,
                             [](uint64_t o, const TimeRun& run) { return o < run.offset; });
  return it == times_.begin() ? absl::InfinitePast() : std::prev(it)->time;
}

uint64_t Segment::OffsetForTime(absl::Time t) const {
  auto it = std::lower_bound(times_.begin(), times_.end(), t,
                             [](const TimeRun& run, absl::Time x) { return run.time < x; });
  return it == times_.end() ? end_offset() : it->offset;
}

uint64_t Segment::RecordStart(uint64_t offset) const { return positions_[offset - base_offset_]; }

uint64_t Segment::RecordEnd(uint64_t offset) const {
  size_t i = offset - base_offset_ + 1;
  return i < positions_.size() ? positions_[i] : bytes_;
}

absl::Status Segment::TruncateToIndexed(Env* env) { return env->TruncateFile(path_, bytes_); }

absl::Status Segment::CutAt(Env* env, uint64_t offset) {
  const uint64_t bytes = offset <= base_offset_   ? 0
                         : offset >= end_offset() ? bytes_
                                                  : RecordStart(offset);
  if (writer_ != nullptr) {
    writer_->Close().IgnoreError();  // the cut below is what counts
    writer_.reset();
  }
  return env->TruncateFile(path_, bytes);
}

absl::Status Segment::OpenForAppend(Env* env) {
  absl::StatusOr<std::unique_ptr<WritableFile>> writer = env->NewAppendableFile(path_);
  if (!writer.ok()) return writer.status();
  if ((*writer)->Size() != bytes_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, " holds ", (*writer)->Size(), " bytes, expected ", bytes_));
  }
  writer_ = *std::move(writer);
  return absl::OkStatus();
}

absl::Status Segment::Seal() {
  if (writer_ == nullptr) return absl::OkStatus();
  absl::Status status = writer_->Sync();
  absl::Status close = writer_->Close();
  writer_.reset();
  return status.ok() ? close : status;
}

void Segment::AddRecords(const std::vector<uint64_t>& positions, size_t begin, size_t end,
                         absl::Time publish_time, uint64_t new_bytes) {
  // No reserve(size + n) here: reserving exactly per batch defeats the
  // vector's doubling and copies the whole index on every commit.
  for (size_t i = begin; i < end; ++i) Index(positions[i], publish_time);
  bytes_ = new_bytes;
}

absl::Status Segment::ForEachRecord(
    uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
    const std::function<bool(uint64_t, absl::string_view)>& take) const {
  std::string buffer(end - start, '\0');
  absl::StatusOr<absl::string_view> data = reader_->Read(start, buffer.size(), buffer.data());
  if (!data.ok()) return data.status();
  RecordReader records(*data);
  absl::string_view payload;
  for (size_t k = 0; k < count; ++k) {
    uint64_t offset = first_offset + k;
    if (!records.Next(&payload)) {
      return absl::DataLossError(absl::StrCat(path_, ": offset ", offset, " unreadable (",
                                              RecordReader::StopName(records.stop()), ")"));
    }
    if (!take(offset, payload)) {
      return absl::DataLossError(
          absl::StrCat(path_, ": offset ", offset, " does not parse as the expected event"));
    }
  }
  return absl::OkStatus();
}

absl::Status Segment::ReadEvents(uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
                                 const std::string& topic,
                                 std::vector<::relay::events::v1::Event>* out) const {
  return ForEachRecord(
      first_offset, count, start, end, [&](uint64_t offset, absl::string_view payload) {
        ::relay::events::v1::Event& event = out->emplace_back();
        if (!event.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
            event.offset() != offset) {
          out->pop_back();
          return false;
        }
        event.set_topic(topic);
        return true;
      });
}

absl::Status Segment::ReadStored(uint64_t first_offset, size_t count, uint64_t start, uint64_t end,
                                 std::vector<StoredEvent>* out) const {
  return ForEachRecord(
      first_offset, count, start, end, [&](uint64_t offset, absl::string_view payload) {
        absl::StatusOr<StoredEvent> event = StoredEvent::Parse(SharedBytes::Copy(payload));
        if (!event.ok() || event->offset() != offset) return false;
        out->push_back(*std::move(event));
        return true;
      });
}

}  // namespace relay::broker
