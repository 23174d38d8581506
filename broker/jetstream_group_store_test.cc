#include "broker/jetstream_group_store.h"

#include <nats/nats.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/storage/jetstream_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace relay::broker {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::NatsServer;
using ::relay::testing::StatusIs;
using ::relay::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(30);

GroupCheckpoint Checkpoint(const std::string& topic, const std::string& group, uint64_t committed) {
  GroupCheckpoint c;
  c.set_topic(topic);
  c.set_group(group);
  c.set_committed_offset(committed);
  return c;
}

// Writes `bytes` under `key` of `bucket` with the plain client, as another
// program could.
void PutRaw(const std::string& servers, const std::string& bucket, const std::string& key,
            const std::string& bytes) {
  ASSERT_THAT(relay::testing::KvPut(servers, bucket, key, bytes), IsOk());
}

class JetStreamGroupStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start();
    ASSERT_THAT(nats, IsOk());
    nats_ = std::move(*nats);
  }

  std::unique_ptr<JetStreamGroupStore> Open() {
    JetStreamGroupStore::Options options;
    options.servers = nats_->urls();
    absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store = JetStreamGroupStore::Open(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::unique_ptr<NatsServer> nats_;
};

TEST_F(JetStreamGroupStoreTest, SavesAndLoadsEveryFieldOfEveryGroup) {
  std::unique_ptr<JetStreamGroupStore> store = Open();
  ASSERT_NE(store, nullptr);
  GroupCheckpoint c = Checkpoint("orders.dlq", "payment-service", 7);
  c.add_acked_runs(2);  // offsets 9 and 10 acked
  c.add_acked_runs(2);
  (*c.mutable_attempts())[7] = 3;
  (*c.mutable_attempts())[8] = 1;
  c.add_types("order.placed");
  c.add_types("order.paid");
  c.set_dead_lettered(4);
  c.set_created_unix_micros(1234567);
  c.set_skipped_offsets(5);
  ASSERT_THAT(store->Save(c), IsOk());
  ASSERT_THAT(store->Save(Checkpoint("payments", "order-service", 3)), IsOk());
  c.set_committed_offset(8);  // an update of a known group
  c.mutable_attempts()->erase(7);
  ASSERT_THAT(store->Save(c), IsOk());

  // Another broker process (a fresh store) sees them.
  std::unique_ptr<JetStreamGroupStore> other = Open();
  ASSERT_NE(other, nullptr);
  absl::StatusOr<std::vector<GroupCheckpoint>> all = other->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(2));
  const GroupCheckpoint& loaded = (*all)[0].topic() == "orders.dlq" ? (*all)[0] : (*all)[1];
  EXPECT_EQ(loaded.SerializeAsString(), c.SerializeAsString());
  EXPECT_EQ(loaded.committed_offset(), 8u);
  EXPECT_THAT(loaded.acked_runs(), ElementsAre(2, 2));
  EXPECT_THAT(loaded.attempts(), UnorderedElementsAre(Pair(8, 1)));
  EXPECT_THAT(loaded.types(), ElementsAre("order.placed", "order.paid"));
}

TEST_F(JetStreamGroupStoreTest, EmptyBucketLoadsNoGroup) {
  std::unique_ptr<JetStreamGroupStore> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<GroupCheckpoint>> all = store->LoadAll();
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(*all, SizeIs(0));
}

TEST_F(JetStreamGroupStoreTest, LongestNamesAndDotsAnywhereAreStoredApart) {
  std::unique_ptr<JetStreamGroupStore> store = Open();
  ASSERT_NE(store, nullptr);
  const std::string longest = std::string(251, 'a') + ".dlq";  // 255: the name limit
  const std::vector<std::pair<std::string, std::string>> groups = {
      {longest, longest}, {"a.b", "c"}, {"a", "b.c"}, {".a", "b."}, {"a..b", "-"}};
  for (size_t i = 0; i < groups.size(); ++i) {
    ASSERT_THAT(store->Save(Checkpoint(groups[i].first, groups[i].second, i)), IsOk()) << i;
  }
  absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(groups.size()));
  for (const GroupCheckpoint& c : *all) {
    ASSERT_LT(c.committed_offset(), groups.size());
    EXPECT_EQ(c.topic(), groups[c.committed_offset()].first);
    EXPECT_EQ(c.group(), groups[c.committed_offset()].second);
  }
}

TEST_F(JetStreamGroupStoreTest, ConcurrentCreatesOfOneGroupHaveExactlyOneWinner) {
  for (int round = 0; round < 5; ++round) {
    const std::string group = absl::StrCat("g", round);
    std::unique_ptr<JetStreamGroupStore> a = Open();
    std::unique_ptr<JetStreamGroupStore> b = Open();
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    absl::Status sa, sb;
    std::thread ta([&] { sa = a->Save(Checkpoint("orders", group, 1)); });
    std::thread tb([&] { sb = b->Save(Checkpoint("orders", group, 2)); });
    ta.join();
    tb.join();
    ASSERT_NE(sa.ok(), sb.ok()) << sa << " / " << sb;
    const absl::Status& lost = sa.ok() ? sb : sa;
    EXPECT_THAT(lost, StatusIs(absl::StatusCode::kAborted,
                               HasSubstr(absl::StrCat("group orders/", group,
                                                      " was written by another broker"))));
    EXPECT_THAT(lost.message(), HasSubstr("expected none"));
    absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
    ASSERT_THAT(all, IsOk());
    uint64_t stored = 0;
    for (const GroupCheckpoint& c : *all) {
      if (c.group() == group) stored = c.committed_offset();
    }
    EXPECT_EQ(stored, sa.ok() ? 1u : 2u);
  }
}

TEST_F(JetStreamGroupStoreTest, SecondWriterIsRefusedAndTheFirstWriteStays) {
  std::unique_ptr<JetStreamGroupStore> setup = Open();
  ASSERT_NE(setup, nullptr);
  ASSERT_THAT(setup->Save(Checkpoint("orders", "svc", 10)), IsOk());  // revision 1

  std::unique_ptr<JetStreamGroupStore> a = Open();
  std::unique_ptr<JetStreamGroupStore> b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_THAT(a->LoadAll(), IsOk());
  ASSERT_THAT(b->LoadAll(), IsOk());
  ASSERT_THAT(a->Save(Checkpoint("orders", "svc", 20)), IsOk());  // revision 2
  EXPECT_THAT(b->Save(Checkpoint("orders", "svc", 30)),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("group orders/svc was written by another broker (revision 2, "
                                 "expected 1)")));
  // B keeps expecting revision 1: refused again, however often it tries.
  EXPECT_THAT(b->Save(Checkpoint("orders", "svc", 31)),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("expected 1")));
  // A goes on.
  ASSERT_THAT(a->Save(Checkpoint("orders", "svc", 21)), IsOk());

  absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].committed_offset(), 21u);

  // Loading again makes B current: it owns the group from the revision it read.
  ASSERT_THAT(b->LoadAll(), IsOk());
  EXPECT_THAT(b->Save(Checkpoint("orders", "svc", 40)), IsOk());
  EXPECT_THAT(a->Save(Checkpoint("orders", "svc", 22)),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("(revision 4, expected 3)")));
}

// A write that timed out (here: the server paused) may still land once the
// server goes on. Its revision is then this store's own write, not another
// broker's: the next save goes on from it. It was refused as ABORTED, and
// the broker fenced the group, saving its checkpoints no more.
TEST_F(JetStreamGroupStoreTest, AWriteThatLandedAfterItsTimeoutIsNotAnotherBrokers) {
  JetStreamGroupStore::Options options;
  options.servers = nats_->urls();
  options.request_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store = JetStreamGroupStore::Open(options);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Save(Checkpoint("orders", "svc", 10)), IsOk());  // revision 1

  // A save the paused server does not answer in time; once it goes on, it
  // handles the write it held: the bucket then holds `committed`.
  auto save_unanswered = [&](uint64_t committed) {
    nats_->Pause(0);
    EXPECT_THAT(
        (*store)->Save(Checkpoint("orders", "svc", committed)),
        StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot save group orders/svc")));
    nats_->Resume(0);
    ASSERT_TRUE(WaitFor(
        [&] {
          absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
          return all.ok() && all->size() == 1 && (*all)[0].committed_offset() == committed;
        },
        kWait));
  };
  ASSERT_NO_FATAL_FAILURE(save_unanswered(20));  // revision 2

  EXPECT_THAT((*store)->Save(Checkpoint("orders", "svc", 30)), IsOk());
  absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].committed_offset(), 30u);
  // Another broker's write is still told apart, even one of the very
  // checkpoint this store failed to write last.
  ASSERT_NO_FATAL_FAILURE(save_unanswered(40));
  std::unique_ptr<JetStreamGroupStore> other = Open();
  ASSERT_THAT(other->LoadAll(), IsOk());
  ASSERT_THAT(other->Save(Checkpoint("orders", "svc", 40)), IsOk());
  EXPECT_THAT((*store)->Save(Checkpoint("orders", "svc", 41)),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("another broker")));
}

TEST_F(JetStreamGroupStoreTest, UndecodableValueIsDataLossNamingTheKey) {
  std::unique_ptr<JetStreamGroupStore> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Save(Checkpoint("orders", "good", 1)), IsOk());
  PutRaw(nats_->urls(), std::string(kGroupBucket), GroupKey("orders", "svc"),
         std::string(64, '\xff'));
  absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
  EXPECT_THAT(all.status(), StatusIs(absl::StatusCode::kDataLoss,
                                     HasSubstr("group checkpoint orders/svc in bucket "
                                               "relay_groups (revision 2) is unreadable")));
  EXPECT_LT(all.status().message().size(), 400u);

  // A value that decodes but names another group is refused alike.
  PutRaw(nats_->urls(), std::string(kGroupBucket), GroupKey("orders", "svc"),
         Checkpoint("orders", "other", 1).SerializeAsString());
  EXPECT_THAT(Open()->LoadAll().status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("it names group 'orders/other'")));
}

TEST_F(JetStreamGroupStoreTest, KeysOfNoGroupAreSkipped) {
  std::unique_ptr<JetStreamGroupStore> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Save(Checkpoint("orders", "svc", 1)), IsOk());
  PutRaw(nats_->urls(), std::string(kGroupBucket), "notes", "hello");
  absl::StatusOr<std::vector<GroupCheckpoint>> all = Open()->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].group(), "svc");
}

TEST(JetStreamGroupStoreOptions, BadOptionsAreRefused) {
  JetStreamGroupStore::Options options;
  EXPECT_THAT(JetStreamGroupStore::Open(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no NATS server URL")));
  options.servers = "nats://127.0.0.1:1";
  options.replicas = 6;
  EXPECT_THAT(JetStreamGroupStore::Open(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("replicas")));
  options.replicas = 1;
  options.bucket = "a.b";
  EXPECT_THAT(JetStreamGroupStore::Open(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bucket name")));
}

TEST(JetStreamGroupStoreClusterTest, CheckpointsSurviveAKilledNodeWithThreeReplicas) {
  absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start(3);
  ASSERT_THAT(nats, IsOk());
  JetStreamGroupStore::Options options;
  options.servers = (*nats)->urls();
  options.replicas = 3;
  options.request_timeout = absl::Seconds(2);
  options.reconnect_wait = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store = JetStreamGroupStore::Open(options);
  ASSERT_THAT(store, IsOk());
  for (int i = 0; i < 10; ++i) {
    ASSERT_THAT((*store)->Save(Checkpoint("orders", absl::StrCat("g", i), i)), IsOk());
  }
  ASSERT_THAT((*store)->Save(Checkpoint("orders", "g0", 100)), IsOk());

  // Kill the bucket's leader: its stream is KV_<bucket>.
  absl::StatusOr<int> leader = (*nats)->StreamLeader(absl::StrCat("KV_", kGroupBucket));
  ASSERT_THAT(leader, IsOk());
  (*nats)->Kill(*leader);

  // The two others keep a quorum: after an election the same store goes on
  // writing (compare-and-set included), and a new one reads everything.
  EXPECT_TRUE(WaitFor([&] { return (*store)->Save(Checkpoint("orders", "g0", 101)).ok(); }, kWait));
  JetStreamGroupStore::Options survivor = options;
  survivor.servers = (*nats)->url((*leader + 1) % 3);
  // A new store (a broker starting now) may find JetStream busy electing a
  // new meta leader too (the killed node may have been it): Open and
  // LoadAll fail with UNAVAILABLE until then, as a broker start would.
  absl::StatusOr<std::vector<GroupCheckpoint>> all = absl::UnavailableError("not read yet");
  EXPECT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> reader =
            JetStreamGroupStore::Open(survivor);
        all = reader.ok() ? (*reader)->LoadAll() : reader.status();
        return all.ok();
      },
      kWait));
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(10));
  for (const GroupCheckpoint& c : *all) {
    EXPECT_EQ(c.committed_offset(), c.group() == "g0" ? 101u : std::stoul(c.group().substr(1)))
        << c.group();
  }
}

// nats.c makes buckets with direct gets, and kvStore_Get is then a direct
// get that any replica answers, a follower perhaps before it applied an
// acknowledged write: Save's read-back after a lost answer could see this
// store's own older revision, take it for another broker's write and fence
// the group for good. A bucket with more than one copy is read from its
// stream's leader, including one made before (here by the plain client).
TEST(JetStreamGroupStoreClusterTest, ABucketWithReplicasIsReadFromItsLeader) {
  absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start(3);
  ASSERT_THAT(nats, IsOk());
  const std::string urls = (*nats)->urls();
  const std::string stream = absl::StrCat("KV_", kGroupBucket);
  ASSERT_THAT(relay::testing::KvCreate(urls, std::string(kGroupBucket), 3), IsOk());
  ASSERT_THAT(relay::testing::StreamAllowsDirect(urls, stream), IsOkAndHolds(true));

  JetStreamGroupStore::Options options;
  options.servers = urls;
  options.replicas = 3;
  absl::StatusOr<std::unique_ptr<JetStreamGroupStore>> store = JetStreamGroupStore::Open(options);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT(relay::testing::StreamAllowsDirect(urls, stream), IsOkAndHolds(false));
  ASSERT_THAT((*store)->Save(Checkpoint("orders", "g", 7)), IsOk());
  ASSERT_THAT((*store)->Save(Checkpoint("orders", "g", 8)), IsOk());
  absl::StatusOr<std::vector<GroupCheckpoint>> all = (*store)->LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].committed_offset(), 8u);
}

// One copy: direct gets are as current as the leader, and stay on.
TEST_F(JetStreamGroupStoreTest, ABucketOfOneCopyKeepsItsDirectGets) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(relay::testing::StreamAllowsDirect(nats_->urls(), absl::StrCat("KV_", kGroupBucket)),
              IsOkAndHolds(true));
}

}  // namespace
}  // namespace relay::broker
