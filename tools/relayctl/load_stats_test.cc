#include "tools/relayctl/load_stats.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/relayctl/event_format.h"

namespace relay::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(SummarizeLatencies, UsesNearestRankPercentiles) {
  std::vector<absl::Duration> samples;
  for (int i = 100; i >= 1; --i) samples.push_back(absl::Milliseconds(i));
  LatencySummary s = SummarizeLatencies(samples);
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.p50, absl::Milliseconds(50));
  EXPECT_EQ(s.p90, absl::Milliseconds(90));
  EXPECT_EQ(s.p99, absl::Milliseconds(99));
  EXPECT_EQ(s.max, absl::Milliseconds(100));
}

TEST(SummarizeLatencies, HandlesOneAndNoSamples) {
  LatencySummary one = SummarizeLatencies({absl::Milliseconds(7)});
  EXPECT_EQ(one.p50, absl::Milliseconds(7));
  EXPECT_EQ(one.p99, absl::Milliseconds(7));
  LatencySummary none = SummarizeLatencies({});
  EXPECT_EQ(none.count, 0u);
  EXPECT_EQ(none.max, absl::ZeroDuration());
}

TEST(LatencyHistogram, CountsIntoOneTwoFiveBucketsTrimmedAtTheEnds) {
  std::vector<HistogramBucket> buckets =
      LatencyHistogram({absl::Microseconds(1500), absl::Milliseconds(2), absl::Milliseconds(4),
                        absl::Milliseconds(30), absl::Seconds(11)});
  ASSERT_EQ(buckets.size(), 13u);  // <=2ms ... >10s
  EXPECT_EQ(buckets[0].upper, absl::Milliseconds(2));
  EXPECT_EQ(buckets[0].count, 2u);
  EXPECT_EQ(buckets[1].upper, absl::Milliseconds(5));
  EXPECT_EQ(buckets[1].count, 1u);
  EXPECT_EQ(buckets[3].upper, absl::Milliseconds(20));
  EXPECT_EQ(buckets[3].count, 0u);
  EXPECT_EQ(buckets[4].count, 1u);
  EXPECT_EQ(buckets.back().upper, absl::InfiniteDuration());
  EXPECT_EQ(buckets.back().count, 1u);
  EXPECT_TRUE(LatencyHistogram({}).empty());
}

TEST(PrintLoadReport, ShowsOutcomesPercentilesAndHistogram) {
  LoadTally tally;
  tally.scheduled = 5;
  tally.placed = 4;
  tally.confirmed = 2;
  tally.cancelled["out_of_stock"] = 1;
  tally.errors["place: UNAVAILABLE"] = 1;
  tally.error_examples["place: UNAVAILABLE"] = "connection refused";
  tally.not_terminal = 1;
  tally.latencies = {absl::Milliseconds(3), absl::Milliseconds(4), absl::Milliseconds(40)};
  std::ostringstream out;
  PrintLoadReport(out, tally, 5, absl::Seconds(1), absl::Milliseconds(1500), absl::Seconds(10));
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("load: 5 orders sent at 5/s for 1s (took 1.500s), 4 accepted"));
  EXPECT_THAT(text, HasSubstr("confirmed                         2\n"));
  EXPECT_THAT(text, HasSubstr("cancelled: out_of_stock           1\n"));
  EXPECT_THAT(text, HasSubstr("error: place: UNAVAILABLE         1  connection refused\n"));
  EXPECT_THAT(text, HasSubstr("not ended 10s after the run       1\n"));
  EXPECT_THAT(text, HasSubstr("(3 orders): p50 4.0ms  p90 40.0ms  p99 40.0ms  max 40.0ms"));
  EXPECT_THAT(
      text,
      HasSubstr("<= 5ms        2  ########################################\n<= 10ms       0\n"));
  EXPECT_EQ(tally.cancelled_total(), 1u);
  EXPECT_EQ(tally.errors_total(), 1u);

  std::string json = ToJson(LoadReportJson(tally, 5, absl::Seconds(1), absl::Seconds(2)), false);
  EXPECT_THAT(json, HasSubstr("\"confirmed\":2"));
  EXPECT_THAT(json, HasSubstr("\"out_of_stock\":1"));
  EXPECT_THAT(json, HasSubstr("\"p90\":40"));
}

TEST(EndedPerSecond, DividesByTheDurationOrTheLongerOrInterruptedRun) {
  FlowRun run{"events", "a:1", {}, absl::Milliseconds(920)};
  run.tally.confirmed = 8;
  run.tally.cancelled["out_of_stock"] = 2;
  EXPECT_DOUBLE_EQ(EndedPerSecond(run, absl::Seconds(1)), 10);  // Not 10 / 0.92.
  run.elapsed = absl::Seconds(4);                               // The last ones ended late.
  EXPECT_DOUBLE_EQ(EndedPerSecond(run, absl::Seconds(1)), 2.5);
  run.elapsed = absl::Milliseconds(500);
  run.interrupted = true;
  EXPECT_DOUBLE_EQ(EndedPerSecond(run, absl::Seconds(10)), 20);
  EXPECT_DOUBLE_EQ(EndedPerSecond(FlowRun{}, absl::ZeroDuration()), 0);
}

TEST(PrintCompareReport, OneColumnPerFlowWithEveryCauseAndErrorOfEither) {
  FlowRun events{"events", "localhost:7071", {}, absl::Seconds(2)};
  events.tally.scheduled = events.tally.placed = 4;
  events.tally.confirmed = 3;
  events.tally.cancelled["payment_declined"] = 1;
  events.tally.latencies = {absl::Milliseconds(40), absl::Milliseconds(50), absl::Milliseconds(60),
                            absl::Milliseconds(70)};
  FlowRun sync{"sync", "localhost:7077", {}, absl::Seconds(2)};
  sync.tally.scheduled = 4;
  sync.tally.errors["place: UNAVAILABLE"] = 4;
  sync.tally.place_unavailable = 4;
  std::ostringstream out;
  PrintCompareReport(out, {events, sync}, 2, absl::Seconds(2), absl::Seconds(10));
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("compare: orders at 2/s for 2s through each flow"));
  EXPECT_THAT(text, HasSubstr("                                     events            sync\n"
                              "order-service                localhost:7071  localhost:7077\n"
                              "orders sent                               4               4\n"
                              "orders placed                             4               0\n"
                              "confirmed                                 3               0\n"
                              "cancelled                                 1               0\n"
                              "  payment_declined                        1               0\n"
                              "errors                                    0               4\n"
                              "  place: UNAVAILABLE                      0               4\n"
                              "not ended 10s after the run               0               0\n"
                              "placed -> end p50                    50.0ms               -\n"
                              "placed -> end p99                    70.0ms               -\n"
                              "orders/s ended                          2.0             0.0\n"));
  EXPECT_THAT(text, HasSubstr("bench/flow_compare"));
  EXPECT_THAT(text, HasSubstr("docs/EVENT-DRIVEN.md"));
  EXPECT_THAT(text, Not(HasSubstr("ran second")));

  // The second run found the balances spent.
  sync.tally.cancelled["payment_declined"] = 2;
  out.str("");
  PrintCompareReport(out, {events, sync}, 2, absl::Seconds(2), absl::Seconds(10));
  EXPECT_THAT(out.str(), HasSubstr("sync ran second and had more out_of_stock/payment_declined: "
                                   "events spent stock and\n"));

  std::string json =
      ToJson(CompareReportJson({events, sync}, 2, absl::Seconds(2), absl::Seconds(10)), false);
  EXPECT_THAT(json, HasSubstr("\"grace_ms\":10000"));
  EXPECT_THAT(json, HasSubstr("\"address\":\"localhost:7077\""));
  EXPECT_THAT(json, HasSubstr("\"ended_per_s\":2"));
  EXPECT_THAT(json, HasSubstr("\"place: UNAVAILABLE\":4"));
}

}  // namespace
}  // namespace relay::ctl
