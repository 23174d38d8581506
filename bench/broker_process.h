#ifndef RELAY_BENCH_BROKER_PROCESS_H_
#define RELAY_BENCH_BROKER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace relay::bench {

// CPU time (user + system, all threads) process `pid` has used so far, from
// /proc/<pid>/stat; 0 when it cannot be read. `pid` 0 means this process.
double ProcessCpuSeconds(pid_t pid);

// A memory line of /proc/<pid>/status in MB ("VmHWM": the peak resident
// set, "VmRSS": resident now); pid 0 is this process; 0 when unreadable.
double ProcessMemoryMb(pid_t pid, const std::string& field);

// A real `relay-broker` child process on a fresh temporary directory,
// serving on 127.0.0.1 with a port the kernel picks (read back from
// --port_file). Its stdout and stderr go to <dir>/broker.log.
//
// Not thread-safe: one owner drives it.
//
//   auto broker = BrokerProcess::Start({.binary = path, .fsync = "batch"});
//   ... connect to (*broker)->address() ...
//   absl::Status s = (*broker)->Stop(absl::Seconds(20));
class BrokerProcess {
 public:
  struct Options {
    std::string binary;                   // path of relay-broker
    std::string temp_root = "/tmp";       // where the fresh directory is made
    std::string fsync = "batch";          // passed as --fsync
    std::vector<std::string> extra_args;  // more broker flags, passed as is
    absl::Duration start_timeout = absl::Seconds(15);
    bool keep_dir = false;  // leave the directory behind (for inspection)
  };

  // Makes the directory, spawns the broker and waits (up to
  // `start_timeout`) until it has written its port. Fails with the tail of
  // the broker's log when it exits first or does not come up in time.
  static absl::StatusOr<std::unique_ptr<BrokerProcess>> Start(const Options& options);

  ~BrokerProcess();  // SIGKILLs the broker if still running; removes the dir

  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }

  // CPU time (user + system, all threads) the broker has used so far, from
  // /proc/<pid>/stat; 0 when it cannot be read.
  double CpuSeconds() const;

  // Sends SIGTERM and waits up to `timeout` for the broker to exit; then
  // SIGKILLs it. Returns an error when it had to kill it or the exit status
  // was not 0. Idempotent.
  absl::Status Stop(absl::Duration timeout);

 private:
  BrokerProcess(Options options, std::string dir)
      : options_(std::move(options)), dir_(std::move(dir)) {}

  absl::Status Spawn();
  absl::Status WaitForPort();
  // Reaps the child without blocking; true once it has exited.
  bool Reaped();
  std::string LogTail() const;

  const Options options_;
  const std::string dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int wait_status_ = 0;
  std::string address_;
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_BROKER_PROCESS_H_
