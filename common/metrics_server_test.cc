#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
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
using ::testing::StartsWith;

// A plain TCP connection to 127.0.0.1:`port`, whose reads give up after
// `read_timeout`; with `receive_buffer` bytes of receive buffer if not 0.
int Connect(int port, int read_timeout_seconds = 10, int receive_buffer = 0) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{read_timeout_seconds, 0};
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `chunk` again and again until `total` bytes are out, the server
// stops the connection, or one send has waited 10 s for room (a server that
// stopped reading but keeps the connection); returns the bytes sent.
size_t SendUntilStopped(int fd, const std::string& chunk, size_t total) {
  timeval timeout{10, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0) return 0;
  size_t sent = 0;
  while (sent < total) {
    const ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  return sent;
}

struct Answer {
  std::string bytes;
  bool closed = false;  // the server closed the connection (not a read timeout)
};

// Reads until the server closes the connection or a read times out.
Answer ReadAll(int fd) {
  Answer a;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) a.bytes.append(buf, static_cast<size_t>(n));
  a.closed = n == 0 || (n < 0 && errno == ECONNRESET);
  return a;
}

// Sends `request` whole on a new connection and reads the answer.
Answer Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return {};
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return {};
  }
  Answer a = ReadAll(fd);
  close(fd);
  return a;
}

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

TEST(MetricsServer, AnswersHeadAndBareLineFeedsAndRefusesAMalformedRequestLine) {
  Registry r;
  r.AddCounter("relay_test_total", "t").With({}).Add(1);
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  const int port = (*server)->port();

  Answer head = Exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(head.bytes, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head.bytes, HasSubstr("\r\nContent-Length: "));
  EXPECT_THAT(head.bytes, ::testing::EndsWith("\r\n\r\n"));  // no body
  EXPECT_TRUE(head.closed);

  Answer bare = Exchange(port, "GET /metrics?x=1 HTTP/1.0\nHost: x\n\n");
  EXPECT_THAT(bare.bytes, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(bare.bytes, HasSubstr("relay_test_total 1"));

  // A head whose last line ends LF and whose empty line ends CRLF.
  Answer mixed = Exchange(port, "GET /metrics HTTP/1.1\nHost: x\n\r\n");
  EXPECT_THAT(mixed.bytes, StartsWith("HTTP/1.1 200 OK\r\n"));

  Answer bad = Exchange(port, "GET\r\n\r\n");
  EXPECT_THAT(bad.bytes, StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(bad.bytes, HasSubstr("malformed request line"));
  Answer shouted = Exchange(port, std::string(5000, 'X') + " / HTTP/1.1\r\n\r\n");
  EXPECT_THAT(shouted.bytes, StartsWith("HTTP/1.1 405 "));
  EXPECT_LT(shouted.bytes.size(), 300u);  // never echoes the method
}

// The HTTP library read a request line and its headers without a bound: one
// connection sending 300 MiB without a line feed took a broker from 21 MB
// to 553 MB resident. Now at most 8 KiB of a request head is read.
TEST(MetricsServer, ARequestHeadOverTheBoundIs431AndTheRestIsNeverRead) {
  Registry r;
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  const int fd = Connect((*server)->port());
  ASSERT_GE(fd, 0);
  // Far more than the socket buffers on both sides hold: what the server
  // does not read, the sender cannot send.
  constexpr size_t kTotal = size_t{256} << 20;
  size_t sent = 0;
  std::thread sender(
      [&] { sent = SendUntilStopped(fd, "GET /" + std::string(size_t{1} << 20, 'a'), kTotal); });
  Answer a = ReadAll(fd);
  shutdown(fd, SHUT_RDWR);  // ends the sender should it still be blocked
  sender.join();
  close(fd);
  EXPECT_THAT(a.bytes, StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(a.bytes, HasSubstr("request line and headers over 8192 bytes"));
  EXPECT_TRUE(a.closed);
  EXPECT_LT(sent, kTotal);
}

// After its answer a connection is read until the client closes it, so that
// unread bytes do not make the kernel reset it before the client has read
// the answer; but for 64 KiB at most: a client that keeps sending was read
// at full speed for the whole second of that wait (300 MiB in a probe).
TEST(MetricsServer, AClientThatKeepsSendingAfterItsAnswerIsCutOff) {
  Registry r;
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_THAT(server.status(), IsOk());
  const int fd = Connect((*server)->port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  Answer a = ReadAll(fd);  // the whole answer, then the server's end of it
  EXPECT_THAT(a.bytes, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_TRUE(a.closed);
  const size_t sent = SendUntilStopped(fd, std::string(size_t{1} << 20, 'a'), size_t{256} << 20);
  close(fd);
  // What the socket buffers on both sides hold, and the 64 KiB.
  EXPECT_LT(sent, size_t{64} << 20);
}

// Two idle connections held both of the library's threads: scrapes waited,
// and a client that sent one byte now and then held a thread for good.
TEST(MetricsServer, ARequestThatDoesNotArriveInTimeIsCutOffEvenIfItTrickles) {
  Registry r;
  MetricsServer::Options options;
  options.request_timeout = absl::Milliseconds(300);
  auto server = MetricsServer::Start("127.0.0.1:0", &r, options);
  ASSERT_THAT(server.status(), IsOk());

  const int idle = Connect((*server)->port());
  ASSERT_GE(idle, 0);
  Answer a = ReadAll(idle);
  close(idle);
  EXPECT_THAT(a.bytes, StartsWith("HTTP/1.1 408 "));
  EXPECT_TRUE(a.closed);

  const int trickle = Connect((*server)->port());
  ASSERT_GE(trickle, 0);
  // One byte every 20 ms, for up to 10 s: far beyond the 300 ms the whole
  // request head gets.
  bool cut_off = false;
  for (int i = 0; i < 500 && !cut_off; ++i) {
    cut_off = send(trickle, "G", 1, MSG_NOSIGNAL) != 1;
    absl::SleepFor(absl::Milliseconds(20));  // the trickle's pace, not a wait for a result
  }
  close(trickle);
  EXPECT_TRUE(cut_off);
}

// With every connection taken by clients that send nothing, a scrape still
// gets its answer at once: a new connection closes the oldest idle one.
TEST(MetricsServer, IdleConnectionsCannotKeepAScrapeOut) {
  Registry r;
  r.AddCounter("relay_test_total", "t").With({}).Add(1);
  MetricsServer::Options options;
  options.max_connections = 4;
  options.request_timeout = absl::Hours(1);  // only making room ends them
  auto server = MetricsServer::Start("127.0.0.1:0", &r, options);
  ASSERT_THAT(server.status(), IsOk());
  std::vector<int> idle;
  for (int i = 0; i < 10; ++i) {
    idle.push_back(Connect((*server)->port()));
    ASSERT_GE(idle.back(), 0);
  }
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_read_timeout(10);
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(SampleValue(res->body, "relay_test_total"), 1);
  // The six oldest were closed to make room (the last four may stay).
  EXPECT_TRUE(ReadAll(idle.front()).closed);
  for (int fd : idle) close(fd);
}

// Clients that ask and then never read hold their slots while the answer
// waits in the socket: with every slot so held, a new scrape closes the
// oldest of them instead of being turned away.
TEST(MetricsServer, ClientsThatDoNotReadTheirAnswersCannotKeepAScrapeOut) {
  Registry r;
  // An answer of ~16 MB: more than the socket buffers hold.
  auto& big = r.AddGauge("relay_test_big", "t", {"label"});
  for (int i = 0; i < 40000; ++i) big.With({absl::StrCat(i, std::string(400, 'x'))}).Set(i);
  r.AddCounter("relay_test_total", "t").With({}).Add(1);
  MetricsServer::Options options;
  options.max_connections = 4;
  options.response_timeout = absl::Hours(1);  // only making room ends them
  auto server = MetricsServer::Start("127.0.0.1:0", &r, options);
  ASSERT_THAT(server.status(), IsOk());
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    const int fd = Connect((*server)->port(), 10, /*receive_buffer=*/4096);
    ASSERT_GE(fd, 0);
    const std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
    ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    // Its answer has begun: the server took the request (and the slot).
    char first;
    ASSERT_EQ(recv(fd, &first, 1, 0), 1);
    stalled.push_back(fd);
  }
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_read_timeout(30);
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(SampleValue(res->body, "relay_test_total"), 1);
  for (int fd : stalled) close(fd);
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
