// Fuzz target: decoding a consumer group's checkpoint file
// (broker/group_store.h) and restoring the group's delivery state from it
// (the Scheduler constructor, as ConsumerGroup does on broker start).
//
// The input is the contents of `<dir>/<topic>/<group>.ckpt`. Properties:
// LoadAll never crashes and either skips the file (reported) or returns one
// checkpoint with a topic and a group; the restored scheduler reports the
// checkpoint's progress back (committed offset, acked offsets above it,
// attempts), and delivering the next events from it works: restored
// attempts that are used up come out as dead letters, everything else is
// handed out and acked, and the committed offset moves past them.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "broker/delivery/scheduler.h"
#include "broker/group_store.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay::broker {
namespace {

// A directory of our own for the process, removed at exit.
const std::string& StoreDir() {
  static const std::string* dir = [] {
    std::string base = std::filesystem::temp_directory_path().string();
    if (std::filesystem::is_directory("/dev/shm")) base = "/dev/shm";  // no disk I/O per input
    auto* d = new std::string(base + "/relay_checkpoint_fuzz." + std::to_string(::getpid()));
    std::filesystem::create_directories(*d + "/topic");
    std::atexit([] { std::filesystem::remove_all(*dir); });
    return d;
  }();
  return *dir;
}

void CheckRestore(const GroupCheckpoint& c) {
  const uint64_t committed = c.committed_offset();
  // As ConsumerGroup's constructor does.
  absl::flat_hash_map<uint64_t, uint32_t> attempts;
  for (const auto& [offset, count] : c.attempts()) attempts[offset] = count;
  Scheduler::Options options;
  options.max_deliveries = 3;
  options.max_buffered = 16;  // a window of 16: instrumented btree work dominates a run
  Scheduler s(options, committed,
              std::vector<uint64_t>(c.acked_above().begin(), c.acked_above().end()), attempts);

  FUZZ_CHECK(s.committed() == committed);
  FUZZ_CHECK(s.NextOffsetToBuffer() == committed);
  std::vector<uint64_t> want_acked;
  for (uint64_t offset : c.acked_above()) {
    if (offset >= committed) want_acked.push_back(offset);
  }
  std::sort(want_acked.begin(), want_acked.end());
  want_acked.erase(std::unique(want_acked.begin(), want_acked.end()), want_acked.end());
  FUZZ_CHECK(s.AckedAbove() == want_acked);
  for (const auto& [offset, count] : s.Attempts()) {
    FUZZ_CHECK(offset >= committed);
    FUZZ_CHECK(count > 0);
    auto it = attempts.find(offset);
    FUZZ_CHECK(it != attempts.end() && it->second == count);
    FUZZ_CHECK(!std::binary_search(want_acked.begin(), want_acked.end(), offset));
  }

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
    std::vector<Scheduler::Assignment> batch = s.Assign(now, 1000);
    for (const Scheduler::Assignment& a : batch) {
      FUZZ_CHECK(a.offset >= committed && a.offset < committed + n);
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
  const std::string& dir = ::relay::broker::StoreDir();
  {
    std::ofstream out(dir + "/topic/group.ckpt", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    FUZZ_CHECK(out.good());
  }
  std::vector<std::string> skipped;
  absl::StatusOr<std::vector<GroupCheckpoint>> loaded =
      ::relay::broker::GroupStore(dir).LoadAll(&skipped);
  FUZZ_CHECK(loaded.ok());
  FUZZ_CHECK(loaded->size() + skipped.size() == 1);
  for (const GroupCheckpoint& c : *loaded) {
    FUZZ_CHECK(!c.topic().empty() && !c.group().empty());
    ::relay::broker::CheckRestore(c);
  }
  return 0;
}
