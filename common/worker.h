#ifndef RELAY_COMMON_WORKER_H_
#define RELAY_COMMON_WORKER_H_

// The one background-thread loop of Relay. A Worker runs `pass` on its own
// thread, again and again: each pass says how long to wait before the next
// one, and Wake() cuts that wait short. Stop() lets the running pass finish
// and joins. The periodic jobs (retention, checkpoints, inbox pruning, the
// saga timeout sweep) and the woken ones (the broker's dispatcher, the
// order watch hub) are Workers, so none of them hand-rolls its own
// wait/wake/stop protocol (docs/THREADS.md lists them).
//
//   Worker pruner("inbox-pruner", [&] {
//     PruneOnce();
//     return absl::Minutes(10);           // next pass in 10 minutes
//   });
//   pruner.Start();                       // the first pass runs at once
//   ...
//   pruner.Stop();
//
// A pass that works in batches checks stopping() between them. A Wake()
// during a pass is not lost: the next pass starts right after it.
//
// Thread-safe.

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace relay {

class Worker {
 public:
  // Returns the wait before the next pass unless Wake() comes first;
  // absl::InfiniteDuration(): only when woken.
  using Pass = std::function<absl::Duration()>;

  // `name` names the thread (first 15 bytes; seen in `top -H`, gdb).
  Worker(std::string name, Pass pass);
  ~Worker();  // Stop()

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread; its first pass runs after `first_wait` (or at a
  // Wake()). No effect once started or stopped.
  void Start(absl::Duration first_wait = absl::ZeroDuration());

  // The next pass starts now, or right after the running one.
  void Wake();

  // No pass starts after this; waits for the running one. Idempotent.
  // REQUIRES: not called from the pass itself.
  void Stop();

  // True once Stop() began: for passes that loop over batches.
  bool stopping() const;

 private:
  void Run(absl::Duration wait);

  const std::string name_;
  const Pass pass_;
  mutable absl::Mutex mu_;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Held by Start() and Stop() around the thread handle, so two Stop()s
  // never join at once.
  absl::Mutex thread_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace relay

#endif  // RELAY_COMMON_WORKER_H_
