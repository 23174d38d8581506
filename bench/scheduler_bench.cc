// scheduler_bench: what a consumer group's delivery bookkeeping costs per
// event (broker/delivery/scheduler.h), without the rest of the broker. Each
// run drives a fresh Scheduler in W2's shape: --keys keys in turn, the window
// kept --ahead events past the committed offset, --members members of
// --max_in_flight each, every pass assigning what it can and acking all of
// it, each member's acks as one message (AckAll; --ack_one_by_one: Ack()
// each). Reports ns per event, each
// run and the median (bench/README.md#scheduler_bench).
//
//   build/release/bench/scheduler_bench [--events=N] [--members=M] [--runs=R]
//                                       [--ack_one_by_one]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "broker/delivery/scheduler.h"

ABSL_FLAG(int, events, 1000000, "events per run");
ABSL_FLAG(int, members, 1, "members of the group");
ABSL_FLAG(int, max_in_flight, 512, "each member's max_in_flight");
ABSL_FLAG(int, keys, 1000, "distinct keys, used in turn");
ABSL_FLAG(int, ahead, 1000, "events buffered past the committed offset");
ABSL_FLAG(int, runs, 5, "runs, each on a fresh scheduler");
ABSL_FLAG(bool, ack_one_by_one, false, "Ack() each event instead of AckAll() per message");

namespace {

using relay::broker::Scheduler;

// One run; returns ns per event, or a negative value if an event was lost.
double Run(int events, int members, int max_in_flight, const std::vector<std::string>& keys,
           int ahead, bool one_by_one) {
  Scheduler::Options options;
  Scheduler s(options, 0, {}, {});
  for (int m = 1; m <= members; ++m) {
    s.AddMember(static_cast<Scheduler::MemberId>(m), static_cast<uint32_t>(max_in_flight),
                absl::Seconds(30));
  }
  const absl::Time now = absl::Now();
  const uint64_t total = static_cast<uint64_t>(events);
  uint64_t acked_total = 0;
  size_t k = 0;
  absl::flat_hash_map<Scheduler::MemberId, std::vector<Scheduler::AckRef>> acks;
  std::vector<uint64_t> acked;
  const auto start = std::chrono::steady_clock::now();
  while (s.committed() < total) {
    while (s.NextOffsetToBuffer() < total && s.BufferRoom() > 0 &&
           s.NextOffsetToBuffer() < s.committed() + static_cast<uint64_t>(ahead)) {
      s.Add(s.NextOffsetToBuffer(), keys[k++ % keys.size()], /*skip=*/false);
    }
    for (auto& [member, refs] : acks) refs.clear();
    for (const Scheduler::Assignment& a : s.Assign(now, std::numeric_limits<size_t>::max())) {
      acks[a.member].push_back({a.offset, a.attempt});
    }
    for (auto& [member, refs] : acks) {
      if (one_by_one) {
        for (const Scheduler::AckRef& a : refs) {
          acked_total += s.Ack(member, a.offset, a.attempt) == Scheduler::AckOutcome::kAcked;
        }
        continue;
      }
      acked.clear();
      s.AckAll(member, refs, &acked);
      acked_total += acked.size();
    }
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return acked_total == total ? ns / static_cast<double>(total) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int events = absl::GetFlag(FLAGS_events);
  const int members = absl::GetFlag(FLAGS_members);
  const int max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  const int runs = absl::GetFlag(FLAGS_runs);
  const int ahead = absl::GetFlag(FLAGS_ahead);
  if (events < 1 || members < 1 || max_in_flight < 1 || runs < 1 || ahead < 1 ||
      absl::GetFlag(FLAGS_keys) < 1) {
    std::fprintf(stderr, "scheduler_bench: every flag must be at least 1\n");
    return 2;
  }
  std::vector<std::string> keys;
  for (int i = 0; i < absl::GetFlag(FLAGS_keys); ++i) keys.push_back(absl::StrCat("key-", i));
  std::vector<double> all;
  for (int r = 1; r <= runs; ++r) {
    const double ns =
        Run(events, members, max_in_flight, keys, ahead, absl::GetFlag(FLAGS_ack_one_by_one));
    if (ns < 0) {
      std::printf("run %d/%d  LOST EVENTS\n", r, runs);
      return 1;
    }
    std::printf("run %d/%d  %.0f ns/event\n", r, runs, ns);
    all.push_back(ns);
  }
  std::sort(all.begin(), all.end());
  std::printf("median (%d runs)  %d members  %.0f ns/event\n", runs, members, all[all.size() / 2]);
  return 0;
}
