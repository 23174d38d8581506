// Fuzz target: decoding a consumer group's checkpoint file
// (DecodeCheckpoint, broker/group_store.h) and restoring the group's
// delivery state from it (the Scheduler, as ConsumerGroup does on start).
//
// The input is the contents of a `<group>.ckpt` file. Properties: decoding
// never crashes and either refuses the bytes (INVALID_ARGUMENT, a short
// message) or returns a checkpoint with a topic, a group and paired acked
// runs; the restored scheduler reports the checkpoint's progress back
// (committed offset, acked runs merged, attempts of unacked offsets), and
// re-encoded as the broker writes it, decodes to the same state; delivering
// the next events from it works: restored attempts that are used up come out
// as dead letters, everything else is handed out and acked, and the
// committed offset moves past them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/delivery/scheduler.h"
#include "broker/group_store.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay::broker {
namespace {

using Range = Scheduler::Range;

// As ConsumerGroup's constructor reads a checkpoint (consumer_group.cc).
std::vector<Range> AckedOf(const GroupCheckpoint& c) {
  std::vector<Range> out;
  for (uint64_t o : c.acked_above()) out.push_back(Range{o, o + 1});
  uint64_t at = c.committed_offset();
  for (int i = 0; i + 1 < c.acked_runs_size(); i += 2) {
    at += c.acked_runs(i);
    out.push_back(Range{at, at + c.acked_runs(i + 1)});
    at += c.acked_runs(i + 1);
  }
  return out;
}

absl::flat_hash_map<uint64_t, uint32_t> AttemptsOf(const GroupCheckpoint& c) {
  return absl::flat_hash_map<uint64_t, uint32_t>(c.attempts().begin(), c.attempts().end());
}

// The acked runs at or above `committed`, merged: what AckedAbove() must say.
std::vector<Range> Merged(std::vector<Range> ranges, uint64_t committed) {
  std::vector<Range> clipped;
  for (Range r : ranges) {
    r.begin = std::max(r.begin, committed);
    if (r.begin < r.end) clipped.push_back(r);
  }
  std::sort(clipped.begin(), clipped.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<Range> out;
  for (const Range& r : clipped) {
    if (!out.empty() && r.begin <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

bool Acked(const std::vector<Range>& runs, uint64_t offset) {
  for (const Range& r : runs) {
    if (r.begin <= offset && offset < r.end) return true;
  }
  return false;
}

Scheduler::Options TestOptions() {
  Scheduler::Options options;
  options.max_deliveries = 3;
  options.max_buffered = 16;  // a window of 16: instrumented btree work dominates a run
  return options;
}

void CheckRestore(const GroupCheckpoint& c) {
  const uint64_t committed = c.committed_offset();
  const Scheduler::Options options = TestOptions();
  const absl::flat_hash_map<uint64_t, uint32_t> attempts = AttemptsOf(c);
  Scheduler s(options, committed, AckedOf(c), attempts);

  FUZZ_CHECK(s.committed() == committed);
  FUZZ_CHECK(s.NextOffsetToBuffer() == committed);
  const std::vector<Range> acked = Merged(AckedOf(c), committed);
  FUZZ_CHECK(s.AckedAbove() == acked);
  for (const auto& [offset, count] : s.Attempts()) {
    FUZZ_CHECK(offset >= committed && count > 0);
    auto it = attempts.find(offset);
    FUZZ_CHECK(it != attempts.end() && it->second == count);
    FUZZ_CHECK(!Acked(acked, offset));
  }

  // Written back as the broker does (ConsumerGroup::TakeCheckpoint: runs as
  // gap and length from the committed offset), it decodes to the same state.
  GroupCheckpoint again;
  again.set_topic(c.topic());
  again.set_group(c.group());
  again.set_committed_offset(s.committed());
  uint64_t at = s.committed();
  for (const Range& r : s.AckedAbove()) {
    again.add_acked_runs(r.begin - at);
    again.add_acked_runs(r.end - r.begin);
    at = r.end;
  }
  for (const auto& [offset, count] : s.Attempts()) (*again.mutable_attempts())[offset] = count;
  absl::StatusOr<GroupCheckpoint> decoded = DecodeCheckpoint(again.SerializeAsString());
  FUZZ_CHECK(decoded.ok());
  Scheduler restored(options, decoded->committed_offset(), AckedOf(*decoded), AttemptsOf(*decoded));
  FUZZ_CHECK(restored.AckedAbove() == s.AckedAbove());
  FUZZ_CHECK(restored.Attempts() == s.Attempts());

  // Buffer the next events (keys from the offsets, some empty), deliver.
  const uint64_t room = std::numeric_limits<uint64_t>::max() - committed;
  const uint64_t n = std::min<uint64_t>(options.max_buffered, room);
  for (uint64_t offset = committed; offset < committed + n; ++offset) {
    std::string key = offset % 3 == 0 ? "" : std::to_string(offset % 5);
    s.Add(offset, key, /*skip=*/false);
  }
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  s.AddMember(1, 1000, absl::Seconds(30));
  for (int round = 0; round < 2 * static_cast<int>(n) + 2; ++round) {
    for (const Scheduler::DeadLetter& dead : s.ExpireDeadlines(now)) {
      FUZZ_CHECK(dead.offset >= committed && dead.offset < committed + n);
      s.CompleteDeadLetter(dead.offset);
    }
    for (const Scheduler::Assignment& a : s.Assign(now, 1000)) {
      FUZZ_CHECK(a.offset >= committed && a.offset < committed + n);
      FUZZ_CHECK(!Acked(acked, a.offset));
      FUZZ_CHECK(a.attempt >= 1 && a.attempt <= options.max_deliveries);
      FUZZ_CHECK(s.Ack(a.member, a.offset, a.attempt) == Scheduler::AckOutcome::kAcked);
    }
    if (s.committed() == committed + n) break;
  }
  FUZZ_CHECK(s.committed() == committed + n);
  FUZZ_CHECK(s.InFlight(1) == 0);
}

}  // namespace
}  // namespace relay::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ::relay::broker::GroupCheckpoint;
  absl::StatusOr<GroupCheckpoint> c = ::relay::broker::DecodeCheckpoint(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!c.ok()) {
    FUZZ_CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(c.status().message().size() <= 512);
    return 0;
  }
  FUZZ_CHECK(!c->topic().empty() && !c->group().empty());
  FUZZ_CHECK(c->acked_runs_size() % 2 == 0);
  ::relay::broker::CheckRestore(*c);
  return 0;
}
