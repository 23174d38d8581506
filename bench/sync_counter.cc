#include "bench/sync_counter.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/spawn.h"

namespace relay::bench {
namespace {

constexpr char kFsync[] = "syscalls:sys_enter_fsync";
constexpr char kFdatasync[] = "syscalls:sys_enter_fdatasync";

// Reaps `pid` if it exited; true once it has.
bool Reaped(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

SyncCounter::~SyncCounter() {
  if (perf_ > 0) {
    ::kill(perf_, SIGKILL);
    int status;
    ::waitpid(perf_, &status, 0);
  }
}

absl::Status SyncCounter::Start(pid_t pid, const std::string& dir) {
  counts_path_ = absl::StrCat(dir, "/perf-syncs.csv");
  log_path_ = absl::StrCat(dir, "/perf-syncs.log");
  // -x, : one "count,unit,event,..." line per event in the -o file.
  const std::vector<std::string> args = {"perf",
                                         "stat",
                                         "-x,",
                                         "-e",
                                         absl::StrCat(kFsync, ",", kFdatasync),
                                         "-p",
                                         absl::StrCat(pid),
                                         "-o",
                                         counts_path_};
  if (int err = SpawnWithLog(args, log_path_, /*search_path=*/true, &perf_); err != 0) {
    perf_ = -1;
    return absl::UnavailableError(absl::StrCat("cannot start perf: ", std::strerror(err)));
  }
  // perf attaches within a few ms; one that cannot (no rights, no
  // tracepoints) exits at once.
  for (int i = 0; i < 20; ++i) {
    int status;
    if (Reaped(perf_, &status)) {
      perf_ = -1;
      std::string log = ReadAll(log_path_);
      if (log.size() > 300) log = log.substr(0, 300);
      return absl::UnavailableError(absl::StrCat("perf exited at once: ", log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

absl::StatusOr<SyncCounter::Counts> SyncCounter::Stop(absl::Duration timeout) {
  if (perf_ <= 0) return absl::FailedPreconditionError("perf is not running");
  ::kill(perf_, SIGINT);
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (!Reaped(perf_, &status)) {
    if (absl::Now() > deadline) {
      ::kill(perf_, SIGKILL);
      ::waitpid(perf_, &status, 0);
      perf_ = -1;
      return absl::DeadlineExceededError("perf did not stop in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  perf_ = -1;
  Counts counts;
  int found = 0;
  for (absl::string_view line : absl::StrSplit(ReadAll(counts_path_), '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    if (fields.size() < 3) continue;
    uint64_t n;
    if (!absl::SimpleAtoi(fields[0], &n)) continue;
    if (fields[2] == kFsync) {
      counts.fsync = n;
      ++found;
    } else if (fields[2] == kFdatasync) {
      counts.fdatasync = n;
      ++found;
    }
  }
  if (found != 2) {
    return absl::UnavailableError(absl::StrCat("no counts in perf's output ", counts_path_));
  }
  return counts;
}

}  // namespace relay::bench
