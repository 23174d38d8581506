#include "common/metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Metrics, ExposesCountersAndGaugesInTheTextFormatSortedByName) {
  Registry r;
  Family<Counter>& appended =
      r.AddCounter("relay_events_appended_total", "Events appended, by topic", {"topic"});
  appended.With({"payments"}).Add(2);
  appended.With({"orders"}).Add(5);
  appended.With({"orders"}).Add();
  r.AddGauge("relay_members", "Members of a group").With({}).Set(3);

  EXPECT_EQ(r.Expose(),
            "# HELP relay_events_appended_total Events appended, by topic\n"
            "# TYPE relay_events_appended_total counter\n"
            "relay_events_appended_total{topic=\"orders\"} 6\n"
            "relay_events_appended_total{topic=\"payments\"} 2\n"
            "# HELP relay_members Members of a group\n"
            "# TYPE relay_members gauge\n"
            "relay_members 3\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  Histogram& h = r.AddHistogram("relay_fsync_seconds", "fsync time", {}, {0.001, 0.01}).With({});
  h.Observe(0.0005);
  h.Observe(0.001);  // le is inclusive
  h.Observe(0.005);
  h.Observe(7);

  EXPECT_EQ(r.Expose(),
            "# HELP relay_fsync_seconds fsync time\n"
            "# TYPE relay_fsync_seconds histogram\n"
            "relay_fsync_seconds_bucket{le=\"0.001\"} 2\n"
            "relay_fsync_seconds_bucket{le=\"0.01\"} 3\n"
            "relay_fsync_seconds_bucket{le=\"+Inf\"} 4\n"
            "relay_fsync_seconds_sum 7.0065\n"
            "relay_fsync_seconds_count 4\n");
}

TEST(Metrics, HistogramLabelsComeBeforeLe) {
  Registry r;
  r.AddHistogram("relay_handler_seconds", "h", {"type"}, {1}).With({"order.placed"}).Observe(0.5);
  EXPECT_THAT(r.Expose(),
              HasSubstr("relay_handler_seconds_bucket{type=\"order.placed\",le=\"1\"} 1\n"
                        "relay_handler_seconds_bucket{type=\"order.placed\",le=\"+Inf\"} 1\n"
                        "relay_handler_seconds_sum{type=\"order.placed\"} 0.5\n"
                        "relay_handler_seconds_count{type=\"order.placed\"} 1\n"));
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry r;
  r.AddCounter("relay_x_total", "a \\ back\nslash", {"reason"}).With({"say \"no\"\\\nnow"}).Add();
  EXPECT_EQ(r.Expose(),
            "# HELP relay_x_total a \\\\ back\\nslash\n"
            "# TYPE relay_x_total counter\n"
            "relay_x_total{reason=\"say \\\"no\\\"\\\\\\nnow\"} 1\n");
}

TEST(Metrics, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1.5e-5), "1.5e-05");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(Metrics, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("relay_broker:rate_5m"));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("relay-broker"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("topic"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

TEST(MetricsDeathTest, ABadNameOrATwiceRegisteredOneIsABugFoundAtStart) {
  Registry r;
  EXPECT_DEATH(r.AddCounter("relay-events", "x"), "metric name 'relay-events' is not valid");
  EXPECT_DEATH(r.AddCounter("relay_events_total", "x", {"__topic"}), "label name '__topic'");
  EXPECT_DEATH(r.AddHistogram("relay_h", "x", {}, {2, 1}), "strictly ascending");
  r.AddGauge("relay_g", "x");
  EXPECT_DEATH(r.AddGauge("relay_g", "x"), "registered twice");
  EXPECT_DEATH(r.AddCounter("relay_c_total", "x", {"topic"}).With({}),
               "takes 1 label values, not 0");
}

TEST(Metrics, CollectorsRunAtScrapeTimeAndMergeByName) {
  Registry r;
  int lag = 7;
  const int id = r.AddCollector([&](Collection& c) {
    c.Gauge("relay_group_lag", "Events not yet acked", {{"group", "b"}}, lag);
    c.Counter("relay_acks_total", "Acks", {}, 11);
    c.Gauge("relay_group_lag", "Events not yet acked", {{"group", "a"}}, 1);
  });
  EXPECT_EQ(r.Expose(),
            "# HELP relay_acks_total Acks\n"
            "# TYPE relay_acks_total counter\n"
            "relay_acks_total 11\n"
            "# HELP relay_group_lag Events not yet acked\n"
            "# TYPE relay_group_lag gauge\n"
            "relay_group_lag{group=\"b\"} 7\n"
            "relay_group_lag{group=\"a\"} 1\n");
  lag = 9;
  EXPECT_THAT(r.Expose(), HasSubstr("relay_group_lag{group=\"b\"} 9\n"));
  r.RemoveCollector(id);
  EXPECT_EQ(r.Expose(), "");
}

TEST(Metrics, AFamilyWithoutChildrenStillNamesItself) {
  Registry r;
  r.AddCounter("relay_dead_letters_total", "Dead letters", {"topic", "group"});
  EXPECT_EQ(r.Expose(),
            "# HELP relay_dead_letters_total Dead letters\n"
            "# TYPE relay_dead_letters_total counter\n");
}

TEST(Metrics, CountsFromManyThreadsWithoutLoss) {
  Registry r;
  Counter& c = r.AddCounter("relay_n_total", "n").With({});
  Gauge& g = r.AddGauge("relay_g", "g").With({});
  Histogram& h = r.AddHistogram("relay_h", "h", {}, LatencyBuckets()).With({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Add();
        g.Add(0.5);
        h.Observe(0.002);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000u);
  EXPECT_EQ(g.value(), 20000);
  Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.cumulative.back(), 40000u);
  EXPECT_NEAR(s.sum, 80, 1e-6);
  EXPECT_THAT(r.Expose(), Not(HasSubstr("NaN")));
}

}  // namespace
}  // namespace relay::metrics
