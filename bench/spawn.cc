#include "bench/spawn.h"

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

extern char** environ;

namespace relay::bench {

int SpawnWithLog(const std::vector<std::string>& args, const std::string& log_path,
                 bool search_path, pid_t* pid) {
  *pid = -1;
  // posix_spawn takes a char* const[]; a copy keeps `args` const.
  std::vector<std::string> owned = args;
  std::vector<char*> argv;
  for (std::string& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  if (int err = posix_spawn_file_actions_init(&actions); err != 0) return err;
  int err = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (err == 0) {
    err = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                           O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  if (err == 0) {
    pid_t child = -1;
    err = search_path ? posix_spawnp(&child, argv[0], &actions, nullptr, argv.data(), environ)
                      : posix_spawn(&child, argv[0], &actions, nullptr, argv.data(), environ);
    if (err == 0) *pid = child;
  }
  posix_spawn_file_actions_destroy(&actions);
  return err;
}

}  // namespace relay::bench
