#ifndef RELAY_BENCH_SPAWN_H_
#define RELAY_BENCH_SPAWN_H_

// Starting the benches' child processes (relay-broker, the saga's services,
// scripts/dev-pki) with their output in a log file.
//
//   pid_t pid = -1;
//   if (int err = SpawnWithLog({binary, "--listen=127.0.0.1:0"}, log, false, &pid); err != 0) {
//     return absl::InternalError(std::strerror(err));
//   }

#include <sys/types.h>

#include <string>
#include <vector>

namespace relay::bench {

// Starts `args[0]` with arguments `args` (args[0] is also its argv[0]) and
// this process's environment; its stdin is /dev/null and its stdout and
// stderr both go to `log_path`, created or truncated (mode 0644). With
// `search_path`, args[0] is looked up in PATH as posix_spawnp does;
// otherwise it is a path, as for posix_spawn. Does not wait for the child:
// the caller reaps it with waitpid.
//
// Returns 0 and stores the child's id in *pid, or returns the error code
// (an errno value) of posix_spawn or of setting up its file actions and
// stores -1 in *pid. glibc reports here, too, a failure in the child
// before exec (an unopenable `log_path`, a missing binary); other C
// libraries may instead let the child exit with status 127.
// REQUIRES: `args` is not empty; `pid` is not null.
int SpawnWithLog(const std::vector<std::string>& args, const std::string& log_path,
                 bool search_path, pid_t* pid);

}  // namespace relay::bench

#endif  // RELAY_BENCH_SPAWN_H_
