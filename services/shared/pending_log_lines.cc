#include "services/shared/pending_log_lines.h"

#include <utility>

namespace relay::services {

void PendingLogLines::Note(const std::string& event_id, std::function<void()> log_line) {
  absl::MutexLock lock(&mu_);
  lines_[event_id] = std::move(log_line);
}

void PendingLogLines::DropUncommitted() {
  absl::MutexLock lock(&mu_);
  lines_.clear();
}

bool PendingLogLines::Committed(const events::v1::Event& event) {
  std::function<void()> log_line;
  {
    absl::MutexLock lock(&mu_);
    auto it = lines_.find(event.id());
    if (it == lines_.end()) return false;
    log_line = std::move(it->second);
    lines_.erase(it);
  }
  log_line();
  return true;
}

}  // namespace relay::services
