#include "common/metrics_server.h"

#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"

namespace relay::metrics {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::SampleValue;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;

TEST(MetricsServer, ServesTheRegistryOnMetrics) {
  Registry r;
  Counter& c = r.AddCounter("relay_test_total", "t").With({});
  c.Add(3);
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  ASSERT_GT((*server)->port(), 0);

  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(SampleValue(res->body, "relay_test_total"), 3);

  c.Add();  // each scrape reads the values now
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(SampleValue(res->body, "relay_test_total"), 4);
}

TEST(MetricsServer, OtherPathsAreNotFound) {
  Registry r;
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result res = client.Get("/" + std::string(5000, 'x'));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_THAT(res->body, HasSubstr("try /metrics"));
  EXPECT_LT(res->body.size(), 200u);  // never echoes the whole path
}

TEST(MetricsServer, RefusesBadAddressesWithAShortError) {
  Registry r;
  EXPECT_THAT(MetricsServer::Start("nonsense", &r).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not host:port")));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:99999", &r).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no port in [0, 65535]")));
  auto first = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(first.status(), IsOk());
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  EXPECT_THAT(MetricsServer::Start(taken, &r).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot listen on")));
}

TEST(MetricsServer, StopIsIdempotentAndClosesThePort) {
  Registry r;
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  const int port = (*server)->port();
  (*server)->Stop();
  (*server)->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(ProcessMetrics, DescribeThisProcess) {
  Registry r;
  RegisterProcessMetrics(r, "metrics_server_test");
  const std::string body = r.Expose();
  EXPECT_THAT(body, HasSubstr("relay_build_info{binary=\"metrics_server_test\",version=\""));
  EXPECT_GT(SampleValue(body, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(SampleValue(body, "process_virtual_memory_bytes"), 1 << 20);
  EXPECT_GE(SampleValue(body, "process_open_fds"), 3);  // stdin, stdout, stderr at least
  EXPECT_GT(SampleValue(body, "process_max_fds"), 0);
  EXPECT_GE(SampleValue(body, "process_cpu_seconds_total"), 0);
  // Started within the last hour, not in 1970.
  const double start = SampleValue(body, "process_start_time_seconds").value_or(-1);
  const double now = static_cast<double>(time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);
}

}  // namespace
}  // namespace relay::metrics
