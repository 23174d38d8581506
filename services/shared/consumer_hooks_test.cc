#include "services/shared/consumer_hooks.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::services {
namespace {

using ::testing::ElementsAre;
using Event = store::TransactionalConsumer::Event;

// Records what the hooks ask of a service's handlers.
struct FakeHandlers {
  void DropUncommitted() { calls.push_back("drop"); }
  bool Committed(const Event& event) {
    calls.push_back("line " + event.id());
    std::cerr << "line " << event.id() << std::endl;  // for the death test
    return true;
  }
  std::vector<std::string> calls;
};

// Consumer options hooked to a FakeHandlers and Faults(delay, crash_after).
struct Hooked {
  Hooked(absl::Duration delay, int64_t crash_after, bool stop)
      : faults(delay, crash_after), stopping(stop) {
    HookLogLinesAndFaults(options, handlers, faults, stopping);
  }
  FakeHandlers handlers;
  Faults faults;
  std::atomic<bool> stopping;
  store::TransactionalConsumer::Options options;
};

Event EventWithId(const std::string& id) {
  Event e;
  e.set_id(id);
  return e;
}

TEST(FitInFlightToHandlerDelay, KeepsOneBatchsDelaysWithinHalfTheAckDeadline) {
  events::Subscriber::Options o;
  o.ack_deadline = absl::Seconds(30);
  o.max_in_flight = 1000;
  FitInFlightToHandlerDelay(o, absl::Seconds(1));
  EXPECT_EQ(o.max_in_flight, 15u);
}

TEST(FitInFlightToHandlerDelay, NoDelayOrAShortOneLeavesTheCapAlone) {
  events::Subscriber::Options o;
  o.max_in_flight = 1000;
  FitInFlightToHandlerDelay(o, absl::ZeroDuration());
  EXPECT_EQ(o.max_in_flight, 1000u);
  FitInFlightToHandlerDelay(o, absl::Microseconds(1));
  EXPECT_EQ(o.max_in_flight, 1000u);
}

TEST(FitInFlightToHandlerDelay, ADelayLongerThanTheDeadlineStillTakesOneEvent) {
  events::Subscriber::Options o;
  o.ack_deadline = absl::Seconds(30);
  FitInFlightToHandlerDelay(o, absl::Minutes(5));
  EXPECT_EQ(o.max_in_flight, 1u);
}

TEST(HookLogLinesAndFaults, DropsStaleLinesBeforeAndWritesTheEventsLineAfterCommit) {
  Hooked hooked(absl::ZeroDuration(), 0, /*stopping=*/false);
  hooked.options.before_handle(EventWithId("e-1"));
  hooked.options.before_handle(EventWithId("e-2"));
  hooked.options.after_commit(EventWithId("e-2"));
  EXPECT_THAT(hooked.handlers.calls, ElementsAre("drop", "drop", "line e-2"));
}

TEST(HookLogLinesAndFaults, TheHandlerDelayIsSkippedOnceStopping) {
  Hooked hooked(absl::Seconds(30), 0, /*stopping=*/true);
  const absl::Time start = absl::Now();
  hooked.options.before_handle(EventWithId("e-1"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(hooked.handlers.calls, ElementsAre("drop"));
}

TEST(HookLogLinesAndFaultsDeathTest, CrashAfterStrikesOnceTheLineIsWritten) {
  Hooked hooked(absl::ZeroDuration(), 2, /*stopping=*/false);
  hooked.options.after_commit(EventWithId("e-1"));
  EXPECT_EXIT(hooked.options.after_commit(EventWithId("e-2")), ::testing::KilledBySignal(SIGKILL),
              "line e-2");
}

}  // namespace
}  // namespace relay::services
