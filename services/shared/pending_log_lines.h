#ifndef RELAY_SERVICES_SHARED_PENDING_LOG_LINES_H_
#define RELAY_SERVICES_SHARED_PENDING_LOG_LINES_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "relay/events/v1/event.pb.h"

namespace relay::services {

// The log lines of events applied inside a transaction that has not ended
// yet, so a service never logs an effect that was rolled back. Handlers
// Note() the line of the event they apply; the consumer's after_commit hook
// calls Committed(event), which writes it; its before_handle hook calls
// DropUncommitted(), which forgets lines of a transaction that rolled back
// (those events come again). See HookLogLinesAndFaults().
//
// Thread-safe. REQUIRES: one consumer's transactions per instance (they run
// one at a time), so that DropUncommitted() only drops ended transactions.
class PendingLogLines {
 public:
  // Keeps `log_line` (which writes the line) for `event_id`.
  void Note(const std::string& event_id, std::function<void()> log_line);
  void DropUncommitted();
  // Writes the line of `event`; false when none was noted for it.
  bool Committed(const events::v1::Event& event);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::function<void()>> lines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_PENDING_LOG_LINES_H_
