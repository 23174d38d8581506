#ifndef RELAY_COMMON_SIGNALS_H_
#define RELAY_COMMON_SIGNALS_H_

namespace relay {

// Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread and
// every thread it starts afterwards. Call first thing in main(). SIGHUP
// then does nothing unless a thread waits for it (WaitForHangup): the
// broker re-reads its policy; the other binaries ignore it.
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives; returns the signal number.
// REQUIRES: BlockTerminationSignals() was called before any thread started.
int WaitForTerminationSignal();

// Waits until SIGHUP arrives. Same REQUIRES.
void WaitForHangup();

}  // namespace relay

#endif  // RELAY_COMMON_SIGNALS_H_
