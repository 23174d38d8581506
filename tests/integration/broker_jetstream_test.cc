// Brokers that share one JetStream: the group checkpoints live in the
// relay_groups key-value bucket (docs/JETSTREAM.md#group-state), so a
// broker resumes the groups another one left, and a broker whose group
// another broker advanced meanwhile stops checkpointing it (it is fenced)
// instead of undoing that progress.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/jetstream_group_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using broker::v1::PublishRequest;
using broker::v1::PublishResponse;
using broker::v1::SubscribeRequest;
using broker::v1::SubscribeResponse;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::TempDir;
using testing::WaitFor;

using Stub = broker::v1::Broker::Stub;

void Publish(Stub& stub, const std::string& topic, int first, int n) {
  PublishRequest req;
  req.set_topic(topic);
  for (int i = first; i < first + n; ++i) {
    events::v1::Event* e = req.add_events();
    e->set_id(absl::StrCat("e", i));
    e->set_type("t.x");
    e->set_key(absl::StrCat("k", i));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  PublishResponse resp;
  ASSERT_TRUE(stub.Publish(&ctx, req, &resp).ok());
}

uint64_t Committed(Stub& stub, const std::string& topic, const std::string& group) {
  grpc::ClientContext ctx;
  broker::v1::DescribeGroupsRequest req;
  req.set_topic(topic);
  req.set_group(group);
  broker::v1::DescribeGroupsResponse resp;
  if (!stub.DescribeGroups(&ctx, req, &resp).ok() || resp.groups_size() != 1) return UINT64_MAX;
  return resp.groups(0).committed_offset();
}

// Opens `group` (filtering `types`), waits until it is open, acks `n`
// deliveries (their event ids are returned), waits until the group
// committed them, and leaves.
std::vector<std::string> ConsumeAndAck(Stub& stub, const std::string& topic,
                                       const std::string& group, int n,
                                       const std::vector<std::string>& types = {}) {
  grpc::ClientContext ctx;
  auto stream = stub.Subscribe(&ctx);
  SubscribeRequest open;
  open.mutable_open()->set_topic(topic);
  open.mutable_open()->set_group(group);
  for (const std::string& t : types) open.mutable_open()->add_types(t);
  EXPECT_TRUE(stream->Write(open));
  std::vector<std::string> ids;
  SubscribeResponse resp;
  uint64_t last = 0;
  bool opened = false;
  while ((!opened || static_cast<int>(ids.size()) < n) && stream->Read(&resp)) {
    opened = opened || resp.has_opened();
    SubscribeRequest acks;
    for (const broker::v1::Delivery& d : resp.deliveries()) {
      if (static_cast<int>(ids.size()) == n) break;  // the rest stays unacked
      ids.push_back(d.event().id());
      last = d.event().offset();
      broker::v1::SubscribeRequest::Ack* ack = acks.add_acks();
      ack->set_offset(d.event().offset());
      ack->set_attempt(d.attempt());
    }
    if (acks.acks_size() > 0) {
      EXPECT_TRUE(stream->Write(acks));
    }
  }
  if (n > 0) {
    EXPECT_TRUE(WaitFor([&] { return Committed(stub, topic, group) == last + 1; }));
  }
  ctx.TryCancel();
  testing::DrainAndFinish(*stream).IgnoreError();
  return ids;
}

class SharedJetStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::NatsServer>> nats = testing::NatsServer::Start();
    ASSERT_THAT(nats, IsOk());
    nats_ = std::move(*nats);
    options_.storage = broker::Storage::kJetStream;
    options_.nats_urls = nats_->urls();
  }

  // A broker on the shared NATS, with a data dir of its own.
  std::unique_ptr<broker::BrokerServer> Start(const std::string& name) {
    absl::StatusOr<std::unique_ptr<broker::BrokerServer>> s =
        testing::StartBroker(dir_.Join(name), options_);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(*s) : nullptr;
  }

  // The group's committed offset in the bucket, read by a store of its own.
  uint64_t CommittedInBucket(const std::string& topic, const std::string& group) {
    broker::JetStreamGroupStore::Options options;
    options.servers = nats_->urls();
    absl::StatusOr<std::unique_ptr<broker::JetStreamGroupStore>> store =
        broker::JetStreamGroupStore::Open(options);
    if (!store.ok()) return UINT64_MAX;
    absl::StatusOr<std::vector<broker::GroupCheckpoint>> all = (*store)->LoadAll();
    if (!all.ok()) return UINT64_MAX;
    for (const broker::GroupCheckpoint& c : *all) {
      if (c.topic() == topic && c.group() == group) return c.committed_offset();
    }
    return UINT64_MAX;
  }

  TempDir dir_;
  std::unique_ptr<testing::NatsServer> nats_;
  testing::BrokerTestOptions options_;
};

TEST_F(SharedJetStreamTest, ABrokerResumesTheGroupsAnotherOneLeftWithNoFileOfItsOwn) {
  std::unique_ptr<broker::BrokerServer> a = Start("a");
  ASSERT_NE(a, nullptr);
  auto stub_a = broker::v1::Broker::NewStub(testing::Channel(a->target()));
  Publish(*stub_a, "orders", 0, 20);
  // The group takes half, then this broker goes.
  std::vector<std::string> first = ConsumeAndAck(*stub_a, "orders", "g", 10);
  ASSERT_EQ(first.size(), 10u);
  a->Shutdown(absl::Seconds(1));
  a.reset();
  EXPECT_EQ(CommittedInBucket("orders", "g"), 10u);

  // Another broker, another (empty) data dir: the other half, only.
  std::unique_ptr<broker::BrokerServer> b = Start("b");
  ASSERT_NE(b, nullptr);
  auto stub_b = broker::v1::Broker::NewStub(testing::Channel(b->target()));
  EXPECT_EQ(Committed(*stub_b, "orders", "g"), 10u);
  std::vector<std::string> rest = ConsumeAndAck(*stub_b, "orders", "g", 10);
  ASSERT_EQ(rest.size(), 10u);
  EXPECT_EQ(rest.front(), "e10");
  EXPECT_EQ(rest.back(), "e19");
  EXPECT_TRUE(WaitFor([&] { return CommittedInBucket("orders", "g") == 20u; }));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("a/groups")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("b/groups")));
}

TEST_F(SharedJetStreamTest, ABrokerWhoseGroupAnotherAdvancedStopsCheckpointingIt) {
  std::unique_ptr<broker::BrokerServer> a = Start("a");
  ASSERT_NE(a, nullptr);
  auto stub_a = broker::v1::Broker::NewStub(testing::Channel(a->target()));
  Publish(*stub_a, "orders", 0, 10);
  ASSERT_EQ(ConsumeAndAck(*stub_a, "orders", "g", 10).size(), 10u);
  ASSERT_TRUE(WaitFor([&] { return CommittedInBucket("orders", "g") == 10u; }));

  // B loads the group too (both now expect the same revision); B advances it.
  std::unique_ptr<broker::BrokerServer> b = Start("b");
  ASSERT_NE(b, nullptr);
  auto stub_b = broker::v1::Broker::NewStub(testing::Channel(b->target()));
  Publish(*stub_b, "orders", 10, 10);
  ASSERT_EQ(ConsumeAndAck(*stub_b, "orders", "g", 10).size(), 10u);
  ASSERT_TRUE(WaitFor([&] { return CommittedInBucket("orders", "g") == 20u; }));

  // A changes the group (a new type filter): its save is refused, the group
  // is fenced on A, and the bucket keeps B's progress.
  EXPECT_EQ(a->groups()->fenced_groups(), 0u);
  ConsumeAndAck(*stub_a, "orders", "g", 0, {"t.other"});
  ASSERT_TRUE(WaitFor([&] { return a->groups()->fenced_groups() == 1u; }));
  EXPECT_EQ(CommittedInBucket("orders", "g"), 20u);
  // A serves the group from memory, and stays fenced: no later change of
  // its own (here another filter, and its shutdown's last checkpoint)
  // reaches the bucket.
  EXPECT_EQ(Committed(*stub_a, "orders", "g"), 10u);
  ConsumeAndAck(*stub_a, "orders", "g", 0, {"t.x"});
  a->Shutdown(absl::Seconds(1));
  EXPECT_EQ(a->groups()->fenced_groups(), 1u);
  EXPECT_EQ(CommittedInBucket("orders", "g"), 20u);
  // B still owns it.
  EXPECT_EQ(b->groups()->fenced_groups(), 0u);
  Publish(*stub_b, "orders", 20, 1);
  ASSERT_EQ(ConsumeAndAck(*stub_b, "orders", "g", 1).size(), 1u);
  EXPECT_TRUE(WaitFor([&] { return CommittedInBucket("orders", "g") == 21u; }));
}

TEST_F(SharedJetStreamTest, CreatingAGroupAnotherBrokerCreatedMeanwhileIsRefused) {
  std::unique_ptr<broker::BrokerServer> a = Start("a");
  std::unique_ptr<broker::BrokerServer> b = Start("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto stub_a = broker::v1::Broker::NewStub(testing::Channel(a->target()));
  auto stub_b = broker::v1::Broker::NewStub(testing::Channel(b->target()));
  Publish(*stub_a, "orders", 0, 1);
  ASSERT_EQ(ConsumeAndAck(*stub_a, "orders", "g", 1).size(), 1u);

  // B loaded before the group existed: its create finds the key taken.
  grpc::ClientContext ctx;
  auto stream = stub_b->Subscribe(&ctx);
  SubscribeRequest open;
  open.mutable_open()->set_topic("orders");
  open.mutable_open()->set_group("g");
  ASSERT_TRUE(stream->Write(open));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("group orders/g was written by another broker"));
  EXPECT_TRUE(WaitFor([&] { return CommittedInBucket("orders", "g") == 1u; }));
}

}  // namespace
}  // namespace relay
