#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

// The library read a POST's body whole (and inflated a compressed one)
// before routing it: one request with a large body grew the process's
// memory without bound, and the answer was a 404 after all of it.
TEST(MetricsServer, OtherMethodsAre405BeforeTheirBodyIsRead) {
  Registry r;
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval timeout{5, 0};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
  // A gigabyte announced, none of it sent: the answer must not wait for it.
  const std::string head =
      "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  const bool closed = n == 0;  // not a timeout: the server closed the connection
  close(fd);
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(answer, HasSubstr("Allow: GET, HEAD"));
  EXPECT_TRUE(closed);
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
