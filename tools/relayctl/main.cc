// relayctl: the command-line client of Relay. All the work is in Run()
// (cli.h); main only connects it to the process: streams, environment and
// Ctrl-C.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tools/relayctl/cli.h"

namespace {

volatile std::sig_atomic_t interrupted = 0;

extern "C" void OnInterrupt(int) { interrupted = 1; }

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  relay::ctl::Io io;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.getenv = [](const char* name) -> const char* { return std::getenv(name); };
  // Only commands that run until Ctrl-C catch it; elsewhere it kills as usual.
  io.arm_interrupt = [] {
    struct sigaction action = {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
  };
  io.interrupted = [] { return interrupted != 0; };
  const int code = relay::ctl::Run(std::vector<std::string>(argv + 1, argv + argc), io);
  std::cout.flush();
  return code;
}
