#include "bench/bench_events.h"

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace relay::bench {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Event MakeEvent(const EventShape& shape, uint64_t seq, int64_t scheduled_ns) {
  Event e;
  e.set_id(absl::StrCat(shape.id_prefix, seq));
  e.set_type("bench.event");
  e.set_key(absl::StrCat("k", seq % static_cast<uint64_t>(shape.keys)));
  e.set_source(shape.source);
  std::string data(static_cast<size_t>(shape.payload_bytes < 16 ? 16 : shape.payload_bytes), 'x');
  std::memcpy(data.data(), &seq, sizeof seq);
  std::memcpy(data.data() + 8, &scheduled_ns, sizeof scheduled_ns);
  e.set_data(std::move(data));
  return e;
}

int64_t ScheduledNanos(const Event& event) {
  if (event.data().size() < 16) return 0;
  int64_t ns;
  std::memcpy(&ns, event.data().data() + 8, sizeof ns);
  return ns;
}

Tally::Tally(std::string id_prefix, uint64_t expected)
    : id_prefix_(std::move(id_prefix)),
      expected_(expected),
      seen_(new std::atomic<uint8_t>[expected]()) {
  if (expected_ == 0) MarkComplete(NowNanos());
}

bool Tally::Record(const Event& event) {
  absl::string_view id = event.id();
  uint64_t seq = 0;
  if (!absl::ConsumePrefix(&id, id_prefix_) || !absl::SimpleAtoi(id, &seq) || seq >= expected_) {
    foreign_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (seen_[seq].exchange(1, std::memory_order_relaxed) != 0) {
    duplicates_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return distinct_.fetch_add(1, std::memory_order_acq_rel) + 1 == expected_;
}

void Tally::MarkComplete(int64_t nanos) {
  if (complete_.HasBeenNotified()) return;
  complete_nanos_.store(nanos);
  complete_.Notify();
}

bool Tally::WaitUntilComplete(absl::Time deadline) {
  return complete_.WaitForNotificationWithDeadline(deadline);
}

}  // namespace relay::bench
