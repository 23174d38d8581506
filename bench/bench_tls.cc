#include "bench/bench_tls.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/spawn.h"

namespace relay::bench {
namespace {

// scripts/dev-pki makes a P-256 key and a certificate per identity: well
// under a second each; this bounds a hung openssl.
constexpr absl::Duration kDevPkiTimeout = absl::Seconds(60);

// Runs `bash script --dir dir --name N...` with its output in `log`, within
// kDevPkiTimeout (then SIGKILL).
absl::Status RunDevPki(const std::string& script, const std::string& dir,
                       const std::vector<std::string>& identities, const std::string& log) {
  if (script.empty() || access(script.c_str(), R_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("scripts/dev-pki '", script, "' is not readable (--dev_pki)"));
  }
  std::vector<std::string> args = {"bash", script, "--dir", dir};
  for (const std::string& id : identities) args.insert(args.end(), {"--name", id});
  pid_t pid = -1;
  if (int err = SpawnWithLog(args, log, /*search_path=*/true, &pid); err != 0) {
    return absl::InternalError(
        absl::StrCat("spawning ", absl::StrJoin(args, " "), ": ", std::strerror(err)));
  }
  const absl::Time deadline = absl::Now() + kDevPkiTimeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(args, " "),
                                                      " did not finish within ",
                                                      absl::FormatDuration(kDevPkiTimeout)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    absl::StatusOr<std::string> out = ReadTextFile(log);
    return absl::InternalError(absl::StrCat(
        absl::StrJoin(args, " "), " failed: ", out.ok() ? *out : std::string("(no output)")));
  }
  return absl::OkStatus();
}

}  // namespace

bool ParseTlsMode(const std::string& text, TlsMode* mode) {
  if (text == "off") {
    *mode = TlsMode::kOff;
  } else if (text == "on") {
    *mode = TlsMode::kOn;
  } else if (text == "both") {
    *mode = TlsMode::kBoth;
  } else {
    return false;
  }
  return true;
}

std::vector<bool> TransportsOfRun(TlsMode mode, int run) {
  switch (mode) {
    case TlsMode::kOff:
      return {false};
    case TlsMode::kOn:
      return {true};
    case TlsMode::kBoth:
      break;
  }
  return run % 2 == 1 ? std::vector<bool>{false, true} : std::vector<bool>{true, false};
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

absl::StatusOr<std::unique_ptr<BenchPki>> BenchPki::Make(
    const Options& options, const std::vector<std::string>& identities) {
  std::string work = absl::StrCat(options.temp_root, "/relay-bench-pki.XXXXXX");
  if (mkdtemp(work.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp in ", options.temp_root, ": ", std::strerror(errno)));
  }
  std::unique_ptr<BenchPki> pki(
      new BenchPki(options.dir.empty() ? work : options.dir, work, options.keep));
  if (options.dir.empty()) {
    if (absl::Status s = RunDevPki(options.script, pki->dir_, identities, work + "/dev-pki.log");
        !s.ok()) {
      return s;
    }
  }
  for (const std::string& id : identities) {
    absl::StatusOr<TlsIdentity> found = CheckTlsFiles(pki->Files(id));
    if (!found.ok()) return found.status();
    if (found->identity != id) {
      return absl::InvalidArgumentError(absl::StrCat(pki->dir_, "/", id, ".crt names relay://",
                                                     found->identity, ", not relay://", id));
    }
  }
  return pki;
}

BenchPki::~BenchPki() {
  if (!keep_) {
    std::error_code ignored;
    std::filesystem::remove_all(work_dir_, ignored);
  }
}

TlsFiles BenchPki::Files(const std::string& identity) const {
  return TlsFiles{absl::StrCat(dir_, "/", identity, ".crt"),
                  absl::StrCat(dir_, "/", identity, ".key"), absl::StrCat(dir_, "/ca.crt")};
}

std::vector<std::string> BenchPki::ServerFlags(const std::string& identity) const {
  const TlsFiles f = Files(identity);
  return {absl::StrCat("--tls_cert=", f.cert), absl::StrCat("--tls_key=", f.key),
          absl::StrCat("--tls_ca=", f.ca)};
}

absl::StatusOr<std::string> BenchPki::WriteFile(const std::string& name,
                                                const std::string& text) const {
  const std::string path = absl::StrCat(work_dir_, "/", name);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return path;
}

}  // namespace relay::bench
