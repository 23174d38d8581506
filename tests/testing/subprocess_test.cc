#include "tests/testing/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::testing {
namespace {

// Whether `pid` has ended: gone, or a zombie its new parent has not reaped.
bool Ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  if (!(stat >> pid_field >> comm >> state)) return true;
  return state == "Z" || state == "X";
}

// A test process that dies without running a destructor (a crash) takes
// its children with it.
TEST(SubprocessTest, TheChildEndsWhenTheProcessThatStartedItDies) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t test_process = fork();
  ASSERT_GE(test_process, 0);
  if (test_process == 0) {
    close(fds[0]);
    Subprocess* child = new Subprocess();  // never destroyed: the crash
    const bool started = child->Start({"/bin/sleep", "60"}, dir.Join("sleep.log"));
    const pid_t pid = started ? child->pid() : -1;
    (void)!write(fds[1], &pid, sizeof(pid));
    _exit(0);
  }
  close(fds[1]);
  pid_t child = -1;
  ASSERT_EQ(read(fds[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(test_process, &status, 0), test_process);
  ASSERT_GT(child, 0);
  const bool ended = WaitFor([&] { return Ended(child); }, absl::Seconds(10));
  if (!ended) kill(child, SIGKILL);
  EXPECT_TRUE(ended) << "sleep " << child << " outlived the process that started it";
}

}  // namespace
}  // namespace relay::testing
