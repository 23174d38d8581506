#ifndef RELAY_TESTS_TESTING_SUBPROCESS_H_
#define RELAY_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace relay::testing {

// A child process for process-level tests (kill -9 and restart). Its stdout
// and stderr go to `log_path` (appended). It is SIGKILLed when the thread
// that started it ends (PR_SET_PDEATHSIG), so a crashed test leaves no
// process behind: start processes from the test's main thread. Not
// thread-safe.
class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();  // SIGKILLs a child still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts argv[0] with the arguments. Returns false when fork/exec failed.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path);
  // Sends `signal` and reaps the child; returns its wait status (-1 when
  // none runs or it did not end within `timeout`, then it is SIGKILLed).
  int Stop(int signal, absl::Duration timeout = absl::Seconds(10));
  // Waits for the child to end by itself and reaps it; as Stop() otherwise.
  int Wait(absl::Duration timeout) { return Stop(0, timeout); }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
// it, close). For processes that must be restarted on the same port.
int PickFreePort();

// Waits until `path` holds a port number (written by --port_file); 0 on
// timeout.
int WaitForPortFile(const std::string& path, absl::Duration timeout = absl::Seconds(10));

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_SUBPROCESS_H_
