// The relay-broker process killed with SIGKILL while a publisher streams:
// every event acknowledged to the publisher is delivered after restarts.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/events/publisher.h"
#include "common/events/subscriber.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using events::v1::Event;

class BrokerProcess {
 public:
  explicit BrokerProcess(std::string dir) : dir_(std::move(dir)) {}

  // Starts relay-broker (after `wrapper`, a command that runs it); the first
  // start picks a port, restarts reuse it.
  void Start(std::vector<std::string> wrapper = {}) {
    std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    std::string listen = port_ == 0 ? "127.0.0.1:0" : absl::StrCat("127.0.0.1:", port_);
    std::vector<std::string> argv = std::move(wrapper);
    for (std::string arg :
         {std::string(RELAY_BROKER_BIN), "--listen=" + listen, "--data_dir=" + dir_ + "/data",
          "--port_file=" + port_file, std::string("--checkpoint_interval=20ms")}) {
      argv.push_back(std::move(arg));
    }
    ASSERT_TRUE(proc_.Start(argv, dir_ + "/broker.log"));
    port_ = testing::WaitForPortFile(port_file);
    ASSERT_GT(port_, 0) << "relay-broker did not start; see " << dir_ << "/broker.log";
  }
  void Kill() { proc_.Stop(SIGKILL); }
  // The wait status once it exits by itself (-1: not within `timeout`).
  int WaitForExit(absl::Duration timeout) { return proc_.Wait(timeout); }
  int Terminate() { return proc_.Stop(SIGTERM); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  std::string dir_;
  int port_ = 0;
  testing::Subprocess proc_;
};

TEST(BrokerCrash, KillNineWhilePublishingLosesNoAcknowledgedEvent) {
  testing::TempDir dir;
  BrokerProcess broker(dir.path());
  ASSERT_NO_FATAL_FAILURE(broker.Start());

  // A consumer group reads all along, through the kills.
  absl::Mutex mu;
  std::set<std::string> delivered;
  events::Subscriber::Options so;
  so.topic = "orders";
  so.group = "auditor";
  so.max_in_flight = 5000;
  so.max_backoff = absl::Milliseconds(200);
  events::Subscriber sub(testing::Channel(broker.target()), so);
  sub.On("t.x", [&](const Event& e, const events::DeliveryInfo&) {
    absl::MutexLock lock(&mu);
    delivered.insert(e.id());
    return absl::OkStatus();
  });
  sub.Start();

  events::Publisher::Options po;
  po.max_backoff = absl::Milliseconds(200);
  events::Publisher pub(testing::Channel(broker.target()), po);
  constexpr int kEvents = 30000;
  constexpr int kKills = 3;
  std::atomic<int> published{0};
  std::thread producer([&] {
    for (int i = 0; i < kEvents; ++i) {
      Event e;
      e.set_id(absl::StrCat("ev-", i));
      e.set_type("t.x");
      e.set_key(absl::StrCat("k", i % 100));
      e.set_data(std::string(200, 'x'));
      pub.Publish("orders", std::move(e));
      published = i + 1;
      if (i % 500 == 499) absl::SleepFor(absl::Milliseconds(2));  // keep a steady stream
    }
  });

  // Kill at evenly spaced points of the stream, each while events are in
  // flight, and restart.
  for (int k = 1; k <= kKills; ++k) {
    ASSERT_TRUE(testing::WaitFor([&] { return published >= k * kEvents / (kKills + 1); },
                                 absl::Seconds(120)));
    broker.Kill();
    ASSERT_NO_FATAL_FAILURE(broker.Start());
  }
  producer.join();
  ASSERT_TRUE(pub.Flush(absl::Seconds(120)).ok()) << "publisher could not deliver everything";
  EXPECT_EQ(pub.acked(), static_cast<uint64_t>(kEvents));

  // Every acknowledged event reaches the group.
  bool all = testing::WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return delivered.size() == static_cast<size_t>(kEvents);
      },
      absl::Seconds(120));
  {
    absl::MutexLock lock(&mu);
    int missing = 0;
    for (int i = 0; i < kEvents; ++i) missing += delivered.count(absl::StrCat("ev-", i)) == 0;
    EXPECT_TRUE(all) << missing << " acknowledged events never delivered";
  }
  sub.Stop();
  pub.Close();
  int status = broker.Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "SIGTERM exit status " << status;
}

// The relay-broker process on a disk that takes no more: under a file size
// limit (prlimit --fsize: every write past 1 MiB fails with EFBIG, as on a
// full disk) a write of the log fails, and the broker exits with status 4
// rather than staying up refusing every publish. Started again without the
// limit (as its supervisor would, once there is room), it has every event it
// acknowledged, each once, and takes the ones it refused.
TEST(BrokerCrash, AFailedWriteExitsFourAndARestartRecoversTheLog) {
  testing::TempDir dir;
  BrokerProcess broker(dir.path());
  ASSERT_NO_FATAL_FAILURE(broker.Start({"/usr/bin/prlimit", "--fsize=1048576", "--"}));
  constexpr int kBatch = 100;      // events of ~1 KiB: ten batches fill the limit
  constexpr int kMaxBatches = 40;  // a bound, should the limit not bite
  broker::v1::PublishResponse resp;
  auto publish = [&](int batch) {
    broker::v1::PublishRequest req;
    req.set_topic("orders");
    for (int i = batch * kBatch; i < (batch + 1) * kBatch; ++i) {
      Event* e = req.add_events();
      e->set_id(absl::StrCat("ev-", i));
      e->set_type("t.x");
      e->set_key(absl::StrCat("k", i % 100));
      e->set_data(std::string(1000, 'x'));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    resp.Clear();
    return broker::v1::Broker::NewStub(testing::Channel(broker.target()))
        ->Publish(&ctx, req, &resp);
  };
  auto stored = [&] {
    grpc::ClientContext ctx;
    broker::v1::ListTopicsResponse topics;
    EXPECT_TRUE(broker::v1::Broker::NewStub(testing::Channel(broker.target()))
                    ->ListTopics(&ctx, {}, &topics)
                    .ok());
    return topics.topics_size() == 1 ? topics.topics(0).end_offset() : 0;
  };
  int acked = 0;
  grpc::Status refused;
  while (acked < kMaxBatches) {
    grpc::Status s = publish(acked);
    if (!s.ok()) {
      refused = s;
      break;
    }
    ++acked;
  }
  ASSERT_FALSE(refused.ok()) << "no write failed under the file size limit";
  ASSERT_GT(acked, 0);
  int status = broker.WaitForExit(absl::Seconds(30));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 4)
      << "exit status " << status << " (" << refused.error_message() << "); see " << dir.path()
      << "/broker.log";

  ASSERT_NO_FATAL_FAILURE(broker.Start());
  // The acknowledged events, and nothing of the refused batch (a part of it
  // was written when the limit bit).
  EXPECT_EQ(stored(), static_cast<uint64_t>(acked * kBatch));
  // The refused batch and one more go in after the acknowledged ones.
  for (int batch = acked; batch < acked + 2; ++batch) {
    grpc::Status s = publish(batch);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& r : resp.results()) EXPECT_FALSE(r.duplicate()) << r.offset();
  }
  // Every acknowledged batch again: each event a duplicate at its place.
  for (int batch = 0; batch < acked; ++batch) {
    ASSERT_TRUE(publish(batch).ok());
    ASSERT_EQ(resp.results_size(), kBatch);
    for (int i = 0; i < kBatch; ++i) {
      EXPECT_TRUE(resp.results(i).duplicate());
      EXPECT_EQ(resp.results(i).offset(), static_cast<uint64_t>(batch * kBatch + i));
    }
  }
  EXPECT_EQ(stored(), static_cast<uint64_t>((acked + 2) * kBatch));
  status = broker.Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "SIGTERM exit status " << status;
}

}  // namespace
}  // namespace relay
