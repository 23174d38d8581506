// dedupe_bench: what the broker's writer pays per event id in a topic's
// dedupe index (broker/storage/dedupe_index.h), without the rest of the
// broker. Two phases per run, on a fresh index:
//   fill:   --ids new ids in batches of --batch, as a fresh broker's first
//           events (W1, W2) or recovery's rebuild of the window;
//   steady: --ids more, each batch evicting as many of the oldest first, as
//           a broker whose window is full.
// Reports ns per id of each phase, each run and the median
// (bench/README.md#dedupe_bench).
//
//   build/release/bench/dedupe_bench [--ids=N] [--batch=B] [--runs=R]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "broker/storage/dedupe_index.h"

ABSL_FLAG(int, ids, 1000000, "ids per phase");
ABSL_FLAG(int, batch, 100, "ids per writer batch");
ABSL_FLAG(int, runs, 5, "runs, each on a fresh index");

namespace {

using relay::broker::DedupeIndex;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double NanosPerId(std::chrono::steady_clock::time_point start, size_t ids) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
             .count() /
         static_cast<double>(ids);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const auto ids = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_ids)));
  const auto batch = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_batch)));
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  // Keys are computed off the writer's thread in the broker: not timed.
  std::vector<DedupeIndex::Key> keys;
  keys.reserve(2 * ids);
  for (size_t i = 0; i < 2 * ids; ++i) keys.push_back(DedupeIndex::KeyOf(absl::StrCat("producer-", i)));
  std::vector<double> fill;
  std::vector<double> steady;
  size_t duplicates = 0;
  for (int run = 1; run <= runs; ++run) {
    DedupeIndex index;
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < ids; ++i) duplicates += index.FindOrInsert(keys[i], i).has_value();
    fill.push_back(NanosPerId(start, ids));
    start = std::chrono::steady_clock::now();
    for (size_t i = ids; i < 2 * ids; i += batch) {
      index.EvictBelow(i + batch - ids);
      for (size_t j = i; j < std::min(i + batch, 2 * ids); ++j) {
        duplicates += index.FindOrInsert(keys[j], j).has_value();
      }
    }
    steady.push_back(NanosPerId(start, ids));
    std::printf("run %d/%d  fill %.0f ns/id  steady %.0f ns/id  (%zu ids held)\n", run, runs,
                fill.back(), steady.back(), index.size());
  }
  std::printf("median (%d runs)  fill %.0f ns/id  steady %.0f ns/id  duplicates %zu\n", runs,
              Median(fill), Median(steady), duplicates);
  return duplicates == 0 ? 0 : 1;
}
