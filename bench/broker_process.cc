#include "bench/broker_process.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/spawn.h"

namespace relay::bench {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerProcess>> BrokerProcess::Start(const Options& options) {
  if (options.binary.empty() || access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("relay-broker binary '", options.binary, "' is not executable (--broker)"));
  }
  std::string tmpl = absl::StrCat(options.temp_root, "/relay-broker-bench.XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp in ", options.temp_root, ": ", ErrnoText(errno)));
  }
  std::unique_ptr<BrokerProcess> broker(new BrokerProcess(options, tmpl));
  if (absl::Status s = broker->Spawn(); !s.ok()) return s;
  if (absl::Status s = broker->WaitForPort(); !s.ok()) return s;  // ~BrokerProcess kills it
  return broker;
}

BrokerProcess::~BrokerProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &wait_status_, 0);
    exited_ = true;
  }
  if (!options_.keep_dir) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

absl::Status BrokerProcess::Spawn() {
  const std::string log_path = dir_ + "/broker.log";
  std::vector<std::string> args = {
      options_.binary,
      "--listen=127.0.0.1:0",
      absl::StrCat("--port_file=", dir_, "/port"),
      absl::StrCat("--data_dir=", dir_, "/data"),
      absl::StrCat("--fsync=", options_.fsync),
  };
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  if (int err = SpawnWithLog(args, log_path, /*search_path=*/false, &pid_); err != 0) {
    return absl::InternalError(
        absl::StrCat("spawning ", absl::StrJoin(args, " "), ": ", ErrnoText(err)));
  }
  return absl::OkStatus();
}

absl::Status BrokerProcess::WaitForPort() {
  const std::string port_file = dir_ + "/port";
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  while (true) {
    std::ifstream in(port_file);
    std::string text;
    int port = 0;
    // The broker renames a complete file into place, so a file that is
    // there is whole.
    if (in && std::getline(in, text) && absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) &&
        port > 0) {
      address_ = absl::StrCat("127.0.0.1:", port);
      return absl::OkStatus();
    }
    if (Reaped()) {
      return absl::InternalError(absl::StrCat("relay-broker exited (",
                                              DescribeWaitStatus(wait_status_),
                                              ") before serving; log:\n", LogTail()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("relay-broker wrote no port file within ",
                                                      absl::FormatDuration(options_.start_timeout),
                                                      "; log:\n", LogTail()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool BrokerProcess::Reaped() {
  if (pid_ <= 0 || exited_) return true;
  pid_t r = waitpid(pid_, &wait_status_, WNOHANG);
  if (r == pid_) exited_ = true;
  return exited_;
}

absl::Status BrokerProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return absl::OkStatus();
  if (!Reaped()) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + timeout;
    while (!Reaped() && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &wait_status_, 0);
      exited_ = true;
      return absl::DeadlineExceededError(absl::StrCat("relay-broker did not exit within ",
                                                      absl::FormatDuration(timeout),
                                                      " of SIGTERM; killed"));
    }
  }
  if (!WIFEXITED(wait_status_) || WEXITSTATUS(wait_status_) != 0) {
    return absl::InternalError(absl::StrCat(
        "relay-broker ended with ", DescribeWaitStatus(wait_status_), "; log:\n", LogTail()));
  }
  return absl::OkStatus();
}

double ProcessMemoryMb(pid_t pid, const std::string& field) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status")
                            : absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const std::string prefix = field + ":";
  while (std::getline(in, line)) {
    // "VmHWM:	   52140 kB"
    if (!absl::StartsWith(line, prefix)) continue;
    std::vector<std::string> words =
        absl::StrSplit(line.substr(prefix.size()), ' ', absl::SkipWhitespace());
    uint64_t kb = 0;
    if (words.empty() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(words[0]), &kb)) return 0;
    return static_cast<double>(kb) / 1024.0;
  }
  return 0;
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/stat")
                            : absl::StrCat("/proc/", pid, "/stat"));
  std::string text;
  std::getline(in, text);
  // After the parenthesised command name: utime and stime are fields 14, 15.
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size()) return 0;
  std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
  if (fields.size() < 13) return 0;
  uint64_t utime = 0, stime = 0;
  if (!absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) return 0;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double BrokerProcess::CpuSeconds() const {
  return pid_ <= 0 || exited_ ? 0 : ProcessCpuSeconds(pid_);
}

std::string BrokerProcess::LogTail() const {
  std::ifstream in(dir_ + "/broker.log");
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  constexpr size_t kTail = 2000;
  return text.size() > kTail ? text.substr(text.size() - kTail) : text;
}

}  // namespace relay::bench
