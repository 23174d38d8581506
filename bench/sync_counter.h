#ifndef RELAY_BENCH_SYNC_COUNTER_H_
#define RELAY_BENCH_SYNC_COUNTER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace relay::bench {

// Counts the fsync and fdatasync system calls of another process over a
// window, from outside it and without slowing it down as strace would:
// `perf stat -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p PID`
// (kernel tracepoints, counted in the kernel). Needs perf in PATH and the
// right to trace the process (perf_event_paranoid <= 2 for one's own).
//
// Not thread-safe: one owner.
//
//   SyncCounter counter;
//   absl::Status started = counter.Start(broker_pid, temp_dir);
//   ... the measured window ...
//   absl::StatusOr<SyncCounter::Counts> counts = counter.Stop(absl::Seconds(5));
class SyncCounter {
 public:
  struct Counts {
    uint64_t fsync = 0;
    uint64_t fdatasync = 0;
  };

  SyncCounter() = default;
  SyncCounter(const SyncCounter&) = delete;
  SyncCounter& operator=(const SyncCounter&) = delete;
  ~SyncCounter();  // kills and reaps perf if still running

  // Starts counting the calls of process `pid`; perf's output goes to files
  // in `dir`. Returns once perf runs (after a short, bounded wait for it to
  // attach). UNAVAILABLE when perf is missing or exits at once (no rights,
  // no tracepoints); the caller then reports no counts.
  absl::Status Start(pid_t pid, const std::string& dir);

  // Stops perf (SIGINT, which makes it print its counts) and returns the
  // counts since Start(). Waits at most `timeout` for perf to exit.
  absl::StatusOr<Counts> Stop(absl::Duration timeout);

 private:
  pid_t perf_ = -1;
  std::string counts_path_;
  std::string log_path_;
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_SYNC_COUNTER_H_
