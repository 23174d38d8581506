#include "common/grpc_channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace relay {
namespace {

// A TCP proxy on 127.0.0.1 that holds every new connection for `delay`
// before passing bytes both ways: a slow handshake, as on a loaded machine
// or a distant peer.
class SlowProxy {
 public:
  SlowProxy(int target_port, absl::Duration delay) : target_port_(target_port), delay_(delay) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listen_fd_, 16);
    acceptor_ = std::thread([this] { Accept(); });
  }

  ~SlowProxy() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : pipes_) t.join();
    for (int fd : fds_) close(fd);
  }

  int port() const { return port_; }

 private:
  void Accept() {
    while (!stopping_) {
      int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      // The fault this proxy injects, not a wait for a condition.
      absl::SleepFor(delay_);
      int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        close(server);
        continue;
      }
      fds_.push_back(client);
      fds_.push_back(server);
      pipes_.emplace_back([client, server] { Pipe(client, server); });
      pipes_.emplace_back([client, server] { Pipe(server, client); });
    }
  }

  static void Pipe(int from, int to) {
    char buf[16384];
    while (true) {
      ssize_t n = read(from, buf, sizeof(buf));
      if (n <= 0) break;
      // MSG_NOSIGNAL: a peer that closed first must end this pipe, not the
      // test process (SIGPIPE, exit 141, seen under load).
      if (send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    shutdown(to, SHUT_WR);
  }

  const int target_port_;
  const absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  // Touched by the acceptor until it is joined, then by the destructor.
  std::vector<int> fds_;
  std::vector<std::thread> pipes_;
};

// The connect timeout was 100 ms (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, which
// gRPC core uses as the minimum time for a connection attempt): a handshake
// slower than that was cut ("tcp handshaker shutdown"), every attempt the
// same way, and a fail-fast RPC to a healthy peer got UNAVAILABLE.
TEST(GrpcChannelTest, ASlowHandshakeStillConnects) {
  testing::TempDir dir;
  auto broker = testing::StartBroker(dir.Join("broker"));
  ASSERT_TRUE(broker.ok()) << broker.status();
  SlowProxy proxy((*broker)->port(), absl::Milliseconds(400));

  auto stub = broker::v1::Broker::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", proxy.port())));
  grpc::ClientContext context;  // fail-fast, as every Relay unary call
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  broker::v1::ListTopicsRequest request;
  broker::v1::ListTopicsResponse response;
  grpc::Status status = stub->ListTopics(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST(ChannelSetTest, AnEmptyEntryIsRefusedWithAShortQuote) {
  absl::StatusOr<std::shared_ptr<ChannelSet>> set = ChannelSet::Parse("127.0.0.1:1,,127.0.0.1:2");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      set.status().message(),
      "expected host:port[,host:port...] with no empty entry, got '127.0.0.1:1,,127.0.0.1:2'");
  EXPECT_FALSE(ChannelSet::Parse("").ok());
  EXPECT_FALSE(ChannelSet::Parse(std::string(1 << 20, ',')).ok());
  EXPECT_LT(ChannelSet::Parse(std::string(1 << 20, ',')).status().message().size(), 200u);
  // An address is echoed by every "cannot reach" error: bounded, one line.
  for (const std::string& bad : {std::string(1 << 20, 'a'), std::string("host\n:7070"),
                                 std::string("a b:7070"), std::string("ok:1,x\x1b:2")}) {
    absl::StatusOr<std::shared_ptr<ChannelSet>> set = ChannelSet::Parse(bad);
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << bad.substr(0, 20);
    EXPECT_LT(set.status().message().size(), 200u);
    EXPECT_EQ(set.status().message().find('\n'), std::string::npos);
  }
}

TEST(ChannelSetTest, OfTwoAddressesTheOneThatListensIsUsed) {
  testing::TempDir dir;
  auto broker = testing::StartBroker(dir.Join("broker"));
  ASSERT_TRUE(broker.ok()) << broker.status();
  const int nobody = testing::PickFreePort();  // a standby: not listening
  absl::StatusOr<std::shared_ptr<ChannelSet>> set =
      ChannelSet::Parse(absl::StrCat("127.0.0.1:", nobody, ", 127.0.0.1:", (*broker)->port()));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ((*set)->size(), 2u);
  EXPECT_EQ((*set)->targets(),
            absl::StrCat("127.0.0.1:", nobody, ",127.0.0.1:", (*broker)->port()));

  auto stub = broker::v1::Broker::NewStub((*set)->WaitForReady(absl::Seconds(20)));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  broker::v1::ListTopicsRequest request;
  broker::v1::ListTopicsResponse response;
  grpc::Status status = stub->ListTopics(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  // Once connected, Pick() stays with it.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ((*set)->Pick()->GetState(false), GRPC_CHANNEL_READY);
  }
}

}  // namespace
}  // namespace relay
