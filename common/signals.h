#ifndef RELAY_COMMON_SIGNALS_H_
#define RELAY_COMMON_SIGNALS_H_

namespace relay {

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread and every thread
// it starts afterwards. Call first thing in main().
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives; returns the signal number.
// REQUIRES: BlockTerminationSignals() was called before any thread started.
int WaitForTerminationSignal();

}  // namespace relay

#endif  // RELAY_COMMON_SIGNALS_H_
