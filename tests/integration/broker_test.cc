// The broker over real gRPC on an ephemeral port, against each storage
// backend: real log files, and a real nats-server with JetStream (one per
// test). One suite, instantiated for both (BrokerTest/<Test>/file,
// BrokerTest/<Test>/jetstream).

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/events/publisher.h"
#include "common/events/subscriber.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using broker::v1::PublishRequest;
using broker::v1::PublishResponse;
using broker::v1::SubscribeRequest;
using broker::v1::SubscribeResponse;
using events::Publisher;
using events::Subscriber;
using events::v1::Event;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing::TempDir;
using testing::WaitFor;

// A Subscribe stream's first request: group "g" of topic "orders".
SubscribeRequest OpenOrders() {
  SubscribeRequest open;
  open.mutable_open()->set_topic("orders");
  open.mutable_open()->set_group("g");
  return open;
}

Event MakeEvent(const std::string& id, const std::string& key, const std::string& type = "t.x") {
  Event e;
  e.set_id(id);
  e.set_type(type);
  e.set_key(key);
  e.set_data(std::string(64, 'd'));
  (*e.mutable_headers())["correlation_id"] = key;
  return e;
}

// Publishes `n` events "e<i>" with keys "k<i % keys>" through the unary RPC.
void PublishMany(broker::v1::Broker::Stub& stub, const std::string& topic, int first, int n,
                 int keys) {
  PublishRequest req;
  req.set_topic(topic);
  for (int i = first; i < first + n; ++i) {
    *req.add_events() = MakeEvent(absl::StrCat("e", i), absl::StrCat("k", i % keys));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  PublishResponse resp;
  grpc::Status s = stub.Publish(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), n);
}

// Records what a subscriber handled, thread-safely.
struct Recorder {
  absl::Mutex mu;
  std::vector<Event> events ABSL_GUARDED_BY(mu);
  std::set<std::string> ids ABSL_GUARDED_BY(mu);

  absl::Status Record(const Event& e) {
    absl::MutexLock lock(&mu);
    events.push_back(e);
    ids.insert(e.id());
    return absl::OkStatus();
  }
  size_t distinct() {
    absl::MutexLock lock(&mu);
    return ids.size();
  }
};

std::unique_ptr<Subscriber> Subscribe(const std::string& target, const std::string& topic,
                                      const std::string& group, Recorder* rec,
                                      const std::string& type = "t.x") {
  Subscriber::Options o;
  o.topic = topic;
  o.group = group;
  o.ack_deadline = absl::Seconds(5);
  auto sub = std::make_unique<Subscriber>(testing::Channel(target), o);
  sub->On(type, [rec](const Event& e, const events::DeliveryInfo&) { return rec->Record(e); });
  sub->Start();
  return sub;
}

class BrokerTest : public ::testing::TestWithParam<broker::Storage> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::TestBackend>> backend =
        testing::TestBackend::Start(GetParam());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
    backend_->Apply(&options_);
    Restart();
  }

  void Restart() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
    server_.reset();
    absl::StatusOr<std::unique_ptr<broker::BrokerServer>> s =
        testing::StartBroker(dir_.path(), options_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    stub_ = broker::v1::Broker::NewStub(testing::Channel(server_->target()));
  }

  // A client whose flow-control window is small and fixed: the broker's
  // answers or deliveries fill it after a few messages when it does not read.
  std::unique_ptr<broker::v1::Broker::Stub> SmallWindowStub() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return broker::v1::Broker::NewStub(
        grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args));
  }

  broker::v1::ListTopicsResponse Topics() {
    grpc::ClientContext ctx;
    broker::v1::ListTopicsResponse resp;
    EXPECT_TRUE(stub_->ListTopics(&ctx, {}, &resp).ok());
    return resp;
  }

  broker::v1::GroupInfo Group(const std::string& topic, const std::string& group) {
    grpc::ClientContext ctx;
    broker::v1::DescribeGroupsRequest req;
    req.set_topic(topic);
    req.set_group(group);
    broker::v1::DescribeGroupsResponse resp;
    EXPECT_TRUE(stub_->DescribeGroups(&ctx, req, &resp).ok());
    return resp.groups_size() == 1 ? resp.groups(0) : broker::v1::GroupInfo();
  }

  TempDir dir_;
  testing::BrokerTestOptions options_;
  // Outlives the broker, which closes its log on destruction.
  std::unique_ptr<testing::TestBackend> backend_;
  std::unique_ptr<broker::BrokerServer> server_;
  std::unique_ptr<broker::v1::Broker::Stub> stub_;
};

TEST_P(BrokerTest, PublishAnswersDenseOffsets) {
  PublishRequest req;
  req.set_topic("orders");
  for (int i = 0; i < 3; ++i) *req.add_events() = MakeEvent(absl::StrCat("id", i), "k");
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext ctx;
    PublishResponse resp;
    if (round == 1) {
      for (int i = 0; i < 3; ++i) req.mutable_events(i)->set_id(absl::StrCat("id", i + 3));
    }
    ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.results_size(), 3);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(resp.results(i).offset(), static_cast<uint64_t>(round * 3 + i));
      EXPECT_FALSE(resp.results(i).duplicate());
    }
  }
}

TEST_P(BrokerTest, DuplicateIdReturnsOriginalOffsetAndAppendsNothing) {
  PublishMany(*stub_, "orders", 0, 5, 5);
  PublishRequest req;
  req.set_topic("orders");
  *req.add_events() = MakeEvent("e3", "k3");
  *req.add_events() = MakeEvent("fresh", "k9");
  grpc::ClientContext ctx;
  PublishResponse resp;
  ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).offset(), 3u);
  EXPECT_TRUE(resp.results(0).duplicate());
  EXPECT_EQ(resp.results(1).offset(), 5u);
  EXPECT_FALSE(resp.results(1).duplicate());
  ASSERT_THAT(Topics().topics(), SizeIs(1));
  EXPECT_EQ(Topics().topics(0).events(), 6u);
}

TEST_P(BrokerTest, BadPublishIsRejectedAndChangesNothing) {
  struct Case {
    std::string name;
    std::function<void(PublishRequest*)> mutate;
    std::string message;
  };
  std::vector<Case> cases = {
      {"empty topic", [](PublishRequest* r) { r->set_topic(""); }, "topic is empty"},
      {"bad topic", [](PublishRequest* r) { r->set_topic("Orders!"); }, "outside [a-z0-9._-]"},
      {"long topic", [](PublishRequest* r) { r->set_topic(std::string(129, 'a')); },
       "limit is 128"},
      {"no events", [](PublishRequest* r) { r->clear_events(); }, "no events"},
      {"missing id", [](PublishRequest* r) { r->mutable_events(1)->clear_id(); }, "#1 has no id"},
      {"missing type", [](PublishRequest* r) { r->mutable_events(0)->clear_type(); },
       "has no type"},
      {"oversized",
       [](PublishRequest* r) { r->mutable_events(1)->set_data(std::string(1100000, 'x')); },
       "the limit is 1048576"},
  };
  for (const Case& c : cases) {
    PublishRequest req;
    req.set_topic("orders");
    *req.add_events() = MakeEvent("a", "k");
    *req.add_events() = MakeEvent("b", "k");
    c.mutate(&req);
    grpc::ClientContext ctx;
    PublishResponse resp;
    grpc::Status s = stub_->Publish(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message)) << c.name;
  }
  EXPECT_THAT(Topics().topics(), SizeIs(0));
}

TEST_P(BrokerTest, TwoGroupsEachSeeEveryEvent) {
  PublishMany(*stub_, "orders", 0, 200, 10);
  Recorder a, b;
  auto sa = Subscribe(server_->target(), "orders", "group-a", &a);
  auto sb = Subscribe(server_->target(), "orders", "group-b", &b);
  PublishMany(*stub_, "orders", 200, 200, 10);
  ASSERT_TRUE(WaitFor([&] { return a.distinct() == 400 && b.distinct() == 400; }))
      << a.distinct() << " " << b.distinct();
  ASSERT_TRUE(WaitFor([&] { return Group("orders", "group-a").committed_offset() == 400; }));
  EXPECT_EQ(Group("orders", "group-a").lag(), 0u);
}

TEST_P(BrokerTest, MembersShareLoadAndNeverHoldOneKeyAtOnce) {
  absl::Mutex mu;
  std::map<std::string, int> busy;  // key -> handlers running now
  std::map<std::string, uint64_t> last_offset;
  int overlaps = 0, out_of_order = 0;
  std::map<int, int> per_member;
  std::set<std::string> ids;
  std::vector<std::unique_ptr<Subscriber>> members;
  for (int m = 0; m < 2; ++m) {
    Subscriber::Options o;
    o.topic = "orders";
    o.group = "shared";
    o.max_in_flight = 50;
    auto sub = std::make_unique<Subscriber>(testing::Channel(server_->target()), o);
    sub->On("t.x", [&, m](const Event& e, const events::DeliveryInfo&) {
      {
        absl::MutexLock lock(&mu);
        if (busy[e.key()]++ > 0) ++overlaps;
        auto it = last_offset.find(e.key());
        if (it != last_offset.end() && it->second > e.offset()) ++out_of_order;
        last_offset[e.key()] = e.offset();
        ++per_member[m];
        ids.insert(e.id());
      }
      absl::SleepFor(absl::Microseconds(200));  // work, to make overlaps possible
      absl::MutexLock lock(&mu);
      --busy[e.key()];
      return absl::OkStatus();
    });
    sub->Start();
    ASSERT_TRUE(sub->WaitUntilOpen(absl::Seconds(5)));
    members.push_back(std::move(sub));
  }
  for (int i = 0; i < 10; ++i) PublishMany(*stub_, "orders", i * 100, 100, 20);
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return ids.size() == 1000;
      },
      absl::Seconds(30)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_GT(per_member[0], 0);
  EXPECT_GT(per_member[1], 0);
}

// An ack that frees room in a full window must get the group reading the
// log again at once: the ack deadline (5 s) is the only other wake-up, and
// 100 events through a window of 4 would take minutes on it.
TEST_P(BrokerTest, AFullWindowMovesOnAsItsEventsAreAcked) {
  options_.group_window_events = 4;
  Restart();
  PublishMany(*stub_, "orders", 0, 100, 100);
  Recorder rec;
  auto sub = Subscribe(server_->target(), "orders", "windowed", &rec);
  ASSERT_TRUE(WaitFor([&] { return rec.distinct() == 100; })) << rec.distinct();
  // One key: each ack releases the next event, which waits in the window.
  PublishMany(*stub_, "orders", 100, 50, 1);
  ASSERT_TRUE(WaitFor([&] { return rec.distinct() == 150; })) << rec.distinct();
}

TEST_P(BrokerTest, NewGroupReplaysFromEarliestAndLatestSkipsThePast) {
  PublishMany(*stub_, "orders", 0, 50, 5);
  Recorder early, late;
  auto se = Subscribe(server_->target(), "orders", "early", &early);
  Subscriber::Options o;
  o.topic = "orders";
  o.group = "late";
  o.start.set_latest(true);
  Subscriber sl(testing::Channel(server_->target()), o);
  sl.On("t.x", [&](const Event& e, const events::DeliveryInfo&) { return late.Record(e); });
  sl.Start();
  ASSERT_TRUE(sl.WaitUntilOpen(absl::Seconds(5)));
  PublishMany(*stub_, "orders", 50, 10, 5);
  ASSERT_TRUE(WaitFor([&] { return early.distinct() == 60 && late.distinct() == 10; }));
  absl::MutexLock lock(&early.mu);
  EXPECT_EQ(early.events.front().offset(), 0u);
}

TEST_P(BrokerTest, NackRedeliversAndDeadLettersAfterMaxDeliveries) {
  PublishMany(*stub_, "orders", 0, 3, 1);  // one key: e0, e1, e2
  absl::Mutex mu;
  std::vector<std::pair<std::string, uint32_t>> seen;
  Subscriber::Options o;
  o.topic = "orders";
  o.group = "g";
  Subscriber sub(testing::Channel(server_->target()), o);
  sub.On("t.x", [&](const Event& e, const events::DeliveryInfo& info) {
    absl::MutexLock lock(&mu);
    seen.emplace_back(e.id(), info.attempt);
    if (e.id() == "e0") return absl::InternalError("poison");
    return absl::OkStatus();
  });
  sub.Start();
  ASSERT_TRUE(
      WaitFor([&] { return Group("orders", "g").committed_offset() == 3; }, absl::Seconds(20)));
  {
    absl::MutexLock lock(&mu);
    // e0 five times with attempts 1..5, then e1 and e2 (the key moved on).
    ASSERT_GE(seen.size(), 7u);
    for (uint32_t i = 0; i < 5; ++i) {
      EXPECT_EQ(seen[i].first, "e0");
      EXPECT_EQ(seen[i].second, i + 1);
    }
    EXPECT_EQ(seen[5].first, "e1");
    EXPECT_EQ(seen[6].first, "e2");
  }
  EXPECT_EQ(Group("orders", "g").dead_lettered(), 1u);
  grpc::ClientContext ctx;
  broker::v1::ReadRequest read;
  read.set_topic("orders.dlq");
  broker::v1::ReadResponse resp;
  ASSERT_TRUE(stub_->Read(&ctx, read, &resp).ok());
  ASSERT_EQ(resp.events_size(), 1);
  broker::v1::DeadLetter letter;
  ASSERT_TRUE(letter.ParseFromString(resp.events(0).data()));
  EXPECT_EQ(letter.group(), "g");
  EXPECT_EQ(letter.event().id(), "e0");
  EXPECT_EQ(letter.attempts_size(), 5);
  EXPECT_THAT(letter.last_error(), HasSubstr("poison"));
}

TEST_P(BrokerTest, AckForNeverDeliveredOffsetEndsTheStream) {
  PublishMany(*stub_, "orders", 0, 1, 1);
  grpc::ClientContext ctx;
  auto stream = stub_->Subscribe(&ctx);
  SubscribeRequest open = OpenOrders();
  ASSERT_TRUE(stream->Write(open));
  SubscribeResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_opened());
  SubscribeRequest ack;
  ack.add_acks()->set_offset(42);
  ASSERT_TRUE(stream->Write(ack));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("never delivered"));
  EXPECT_EQ(Group("orders", "g").committed_offset(), 0u);
}

TEST_P(BrokerTest, FirstRequestWithoutOpenIsInvalid) {
  grpc::ClientContext ctx;
  auto stream = stub_->Subscribe(&ctx);
  SubscribeRequest ack;
  ack.add_acks()->set_offset(0);
  ASSERT_TRUE(stream->Write(ack));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("must carry open"));
}

// The stream is raw on the server: a request that does not parse (here a
// string field that is not UTF-8, which protobuf's parser refuses) ends it
// with a short INVALID_ARGUMENT, and nothing is created.
TEST_P(BrokerTest, SubscribeRequestThatDoesNotParseIsInvalid) {
  grpc::ClientContext ctx;
  auto stream = stub_->Subscribe(&ctx);
  SubscribeRequest open = OpenOrders();
  open.mutable_open()->set_member_name("\xff\xfe not utf-8");
  ASSERT_TRUE(stream->Write(open));
  grpc::Status s = testing::DrainAndFinish(*stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "the request does not parse as a SubscribeRequest");
  broker::v1::DescribeGroupsRequest req;
  broker::v1::DescribeGroupsResponse groups;
  grpc::ClientContext dctx;
  ASSERT_TRUE(stub_->DescribeGroups(&dctx, req, &groups).ok());
  EXPECT_EQ(groups.groups_size(), 0);
}

TEST_P(BrokerTest, RestartLosesNoAckedEventNorGroupProgress) {
  PublishMany(*stub_, "orders", 0, 100, 10);
  {
    Recorder r;
    auto sub = Subscribe(server_->target(), "orders", "g", &r);
    ASSERT_TRUE(WaitFor([&] { return Group("orders", "g").committed_offset() == 100; }));
    sub->Stop();
  }
  Restart();
  PublishMany(*stub_, "orders", 100, 20, 10);
  ASSERT_THAT(Topics().topics(), SizeIs(1));
  EXPECT_EQ(Topics().topics(0).events(), 120u);
  EXPECT_EQ(Group("orders", "g").committed_offset(), 100u);
  Recorder r;
  auto sub = Subscribe(server_->target(), "orders", "g", &r);
  ASSERT_TRUE(WaitFor([&] { return r.distinct() == 20; }));
  absl::MutexLock lock(&r.mu);
  EXPECT_EQ(r.events.front().id(), "e100");  // resumes after the committed offset
  // On JetStream the group came back from its bucket, not from a file.
  EXPECT_EQ(std::filesystem::exists(dir_.Join("groups")), GetParam() == broker::Storage::kFile);
}

TEST_P(BrokerTest, PublisherRetriesAcrossABrokerRestart) {
  Publisher pub(testing::Channel(server_->target()), {});
  std::vector<std::future<absl::StatusOr<uint64_t>>> results;
  for (int i = 0; i < 100; ++i)
    results.push_back(pub.Publish("orders", MakeEvent(absl::StrCat("p", i), "k")));
  ASSERT_THAT(pub.Flush(absl::Seconds(10)), testing::IsOk());
  int port = server_->port();
  server_->Shutdown(absl::Seconds(1));
  for (int i = 100; i < 200; ++i)
    results.push_back(pub.Publish("orders", MakeEvent(absl::StrCat("p", i), "k")));
  options_.listen_address = absl::StrCat("127.0.0.1:", port);
  Restart();
  ASSERT_THAT(pub.Flush(absl::Seconds(20)), testing::IsOk());
  std::set<uint64_t> offsets;
  for (auto& f : results) {
    absl::StatusOr<uint64_t> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
    offsets.insert(*r);
  }
  EXPECT_EQ(offsets.size(), 200u);
  EXPECT_EQ(*offsets.rbegin(), 199u);
}

// A time past the year 9999 overflowed into the distant past when turned
// into microseconds, and a Read "after the year 300,000" returned the topic
// from its oldest event.
TEST_P(BrokerTest, ReadFromATimeOutOfRangeIsInvalidArgument) {
  PublishMany(*stub_, "orders", 0, 3, 3);
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {10'000'000'000'000, 0}, {0, -1}, {0, 1'000'000'000}}) {
    grpc::ClientContext ctx;
    broker::v1::ReadRequest req;
    req.set_topic("orders");
    req.mutable_time()->set_seconds(seconds);
    req.mutable_time()->set_nanos(nanos);
    broker::v1::ReadResponse resp;
    grpc::Status s = stub_->Read(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << seconds << " " << nanos;
    EXPECT_THAT(s.error_message(), HasSubstr("years 1 to 9999"));
    EXPECT_EQ(resp.events_size(), 0);
  }
}

// The same for a new group's start: it overflowed, and the group was saved
// at a wrong start for good.
TEST_P(BrokerTest, SubscribeFromATimeOutOfRangeIsInvalidArgument) {
  PublishMany(*stub_, "orders", 0, 3, 3);
  grpc::ClientContext ctx;
  auto stream = stub_->Subscribe(&ctx);
  SubscribeRequest open = OpenOrders();
  open.mutable_open()->mutable_start()->mutable_time()->set_seconds(10'000'000'000'000);
  ASSERT_TRUE(stream->Write(open));
  SubscribeResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("start.time"));
  EXPECT_EQ(Group("orders", "g").group(), "");  // no group was made
}

TEST_P(BrokerTest, ReadFiltersByKeyAndCorrelationId) {
  PublishMany(*stub_, "orders", 0, 30, 3);
  grpc::ClientContext ctx;
  broker::v1::ReadRequest req;
  req.set_topic("orders");
  req.set_key("k1");
  broker::v1::ReadResponse resp;
  ASSERT_TRUE(stub_->Read(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.events_size(), 10);
  for (const Event& e : resp.events()) EXPECT_EQ(e.key(), "k1");
  EXPECT_EQ(resp.events(0).topic(), "orders");
  EXPECT_EQ(resp.end_offset(), 30u);
}

// A publish stream parses each request into the messages of the last one
// (PublishStreamReactor keeps them for their memory): nothing of an earlier
// request's events may show in a later one's, and the fields the log
// assigns are the log's whatever the client sent.
TEST_P(BrokerTest, APublishStreamsEventsCarryNothingOfTheRequestBefore) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto stream = stub_->PublishStream(&ctx);
  PublishRequest full;
  full.set_topic("orders");
  full.set_request_id(1);
  for (int i = 0; i < 3; ++i) {
    Event e = MakeEvent(absl::StrCat("full-", i), absl::StrCat("key-", i));
    e.set_offset(999);
    e.mutable_publish_time()->set_seconds(7);
    (*e.mutable_headers())["extra"] = std::string(2000, 'h');
    *full.add_events() = e;
  }
  ASSERT_TRUE(stream->Write(full));
  PublishRequest bare;
  bare.set_topic("orders");
  bare.set_request_id(2);
  Event* e = bare.add_events();
  e->set_id("bare-0");
  e->set_type("t.bare");
  ASSERT_TRUE(stream->Write(bare));
  for (uint64_t want : {1, 2}) {
    PublishResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    ASSERT_EQ(resp.request_id(), want);
    ASSERT_FALSE(resp.has_error()) << resp.error().message();
  }
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());

  grpc::ClientContext read_ctx;
  broker::v1::ReadRequest req;
  req.set_topic("orders");
  broker::v1::ReadResponse resp;
  ASSERT_TRUE(stub_->Read(&read_ctx, req, &resp).ok());
  ASSERT_EQ(resp.events_size(), 4);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(resp.events(i).offset(), static_cast<uint64_t>(i));
    EXPECT_EQ(resp.events(i).key(), absl::StrCat("key-", i));
    EXPECT_EQ(resp.events(i).headers().at("extra").size(), 2000u);
    EXPECT_GT(resp.events(i).publish_time().seconds(), 7);
  }
  const Event& got = resp.events(3);
  EXPECT_EQ(got.id(), "bare-0");
  EXPECT_EQ(got.type(), "t.bare");
  EXPECT_EQ(got.offset(), 3u);
  EXPECT_EQ(got.key(), "");
  EXPECT_EQ(got.data(), "");
  EXPECT_THAT(got.headers(), IsEmpty());
}

}  // namespace

// Issue 7, item 6: a PublishStream whose client half-closed is finished by
// the append callback on the log's completer thread; gRPC may then run OnDone()
// (which used to delete the reactor) while that callback still held the
// reactor's mutex. Many short streams, half-closed or cancelled while their
// appends complete, drive that race; under ASan a use after free fails here.
TEST_P(BrokerTest, ShortPublishStreamsCancelledWhileAppendsCompleteLeaveTheBrokerSound) {
  constexpr int kThreads = 4;
  constexpr int kStreamsPerThread = 60;
  std::vector<std::thread> threads;
  std::atomic<int> answered{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kStreamsPerThread; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
        auto stream = stub_->PublishStream(&ctx);
        PublishRequest req;
        req.set_topic("orders");
        req.set_request_id(1);
        *req.add_events() = MakeEvent(absl::StrCat("race-", t, "-", i), "k");
        stream->Write(req);
        stream->WritesDone();  // the append's callback will Finish()
        if (i % 2 == 1) {
          ctx.TryCancel();
        } else {
          PublishResponse resp;
          if (stream->Read(&resp)) ++answered;
        }
        stream->Finish().IgnoreError();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_GT(answered.load(), 0);
  // Still serving: every answered append is in the log, and one more goes.
  PublishMany(*stub_, "orders", 0, 1, 1);
  broker::v1::ListTopicsResponse topics = Topics();
  ASSERT_EQ(topics.topics_size(), 1);
  EXPECT_GE(topics.topics(0).end_offset(), static_cast<uint64_t>(answered.load()) + 1);
}

TEST_P(BrokerTest, APublisherThatNeverReadsItsAnswersIsHeldBack) {
  if (GetParam() != broker::Storage::kFile) {
    GTEST_SKIP() << "the stream's bound is the same for every backend; JetStream would take "
                    "minutes to store these events one message each";
  }
  // Each answer carries 1,000 offsets (~6 KB), so a few fill this client's
  // small, fixed flow-control window; then the broker holds the answers. It
  // must stop reading instead of taking every request and queueing their
  // answers.
  constexpr int kRequests = 400;
  constexpr int kEvents = 1000;
  constexpr uint64_t kTotal = static_cast<uint64_t>(kRequests) * kEvents;
  auto stub = SmallWindowStub();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto stream = stub->PublishStream(&ctx);
  std::thread writer([&] {
    for (int r = 0; r < kRequests; ++r) {
      PublishRequest req;
      req.set_topic("orders");
      req.set_request_id(static_cast<uint64_t>(r) + 1);
      for (int i = 0; i < kEvents; ++i) {
        Event* e = req.add_events();
        e->set_id(absl::StrCat(r, "-", i));
        e->set_type("t.x");
      }
      if (!stream->Write(req)) return;
    }
    stream->WritesDone();
  });
  auto end_offset = [&]() -> uint64_t {
    broker::v1::ListTopicsResponse topics = Topics();
    return topics.topics_size() == 1 ? topics.topics(0).end_offset() : 0;
  };
  // Something must not happen here, so the wait is bounded: without the
  // bound every request was stored within a second or two.
  EXPECT_TRUE(WaitFor([&] { return end_offset() >= kEvents; }));
  EXPECT_FALSE(WaitFor([&] { return end_offset() == kTotal; }, absl::Seconds(5)))
      << "the broker read all " << kRequests << " requests while no answer was taken";
  EXPECT_LT(end_offset(), kTotal / 2);

  // Taking the answers lets the rest through, in order.
  PublishResponse resp;
  uint64_t next_id = 1;
  while (next_id <= static_cast<uint64_t>(kRequests) && stream->Read(&resp)) {
    ASSERT_EQ(resp.request_id(), next_id) << resp.error().message();
    ASSERT_EQ(resp.results_size(), kEvents);
    ++next_id;
  }
  writer.join();
  EXPECT_EQ(next_id, static_cast<uint64_t>(kRequests) + 1);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(end_offset(), kTotal);
}

// A member that acks (here stale acks, which still show it alive) but does
// not read its stream: each ack deadline its expired deliveries went out to
// it again, queued behind the unwritten ones, and the broker's queue for it
// grew by a window each time. Now it is backlogged past the group's window
// and gets nothing new until it reads; then it gets everything.
TEST_P(BrokerTest, AMemberThatDoesNotReadItsStreamIsBackloggedNotFedWithoutEnd) {
  options_.group_window_bytes = 256 << 10;
  options_.max_deliveries = 1000;  // the 20 ms deadline expires often; nothing is dead-lettered
  Restart();
  constexpr int kEvents = 600;
  {
    PublishRequest req;
    req.set_topic("orders");
    for (int i = 0; i < kEvents; ++i) {
      Event e = MakeEvent(absl::StrCat("e", i), absl::StrCat("k", i));
      e.set_data(std::string(4096, 'd'));
      *req.add_events() = std::move(e);
    }
    grpc::ClientContext ctx;
    PublishResponse resp;
    ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
  }
  auto stub = SmallWindowStub();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto stream = stub->Subscribe(&ctx);
  SubscribeRequest open = OpenOrders();
  open.mutable_open()->set_max_in_flight(1000);
  *open.mutable_open()->mutable_ack_deadline() =
      google::protobuf::util::TimeUtil::MillisecondsToDuration(20);
  ASSERT_TRUE(stream->Write(open));
  SubscribeResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_opened());

  auto member = [&] {
    broker::v1::GroupInfo g = Group("orders", "g");
    return g.members_size() == 1 ? g.members(0) : broker::v1::MemberInfo();
  };
  // The first deliveries, offset 0 among them (an ack of an offset never
  // delivered would end the stream); then the stream is not read again.
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_GT(resp.deliveries_size(), 0);
  ASSERT_EQ(resp.deliveries(0).event().offset(), 0u);

  // Acks of offset 0's first attempt, one every few milliseconds until told
  // to stop: all but perhaps the first are stale, and each shows the member
  // alive.
  std::atomic<bool> stop_acking{false};
  std::thread acker([&] {
    SubscribeRequest stale;
    stale.add_acks()->set_offset(0);
    stale.mutable_acks(0)->set_attempt(1);
    for (int i = 0; i < 5000 && !stop_acking.load(); ++i) {
      if (!stream->Write(stale)) return;
      absl::SleepFor(absl::Milliseconds(5));  // pacing the load, not waiting for a condition
    }
  });
  EXPECT_TRUE(WaitFor([&] { return member().backlogged(); })) << Group("orders", "g").DebugString();
  // Something must not happen here, so the wait is bounded: without the
  // backlog every 20 ms deadline sent the window out to it again.
  const uint64_t redelivered = Group("orders", "g").redelivered();
  EXPECT_FALSE(WaitFor([&] { return Group("orders", "g").redelivered() > redelivered + 2 * 64; },
                       absl::Seconds(1)))
      << "a backlogged member was fed again";
  stop_acking = true;
  acker.join();

  // Reading lifts the backlog: everything arrives and is acked.
  std::atomic<bool> stop_reading{false};
  std::thread reader([&] {
    SubscribeResponse r;
    while (!stop_reading.load() && stream->Read(&r)) {
      SubscribeRequest acks;
      for (const auto& d : r.deliveries()) {
        auto* a = acks.add_acks();
        a->set_offset(d.event().offset());
        a->set_attempt(d.attempt());
      }
      if (acks.acks_size() > 0 && !stream->Write(acks)) return;
    }
  });
  EXPECT_TRUE(WaitFor([&] { return Group("orders", "g").committed_offset() == kEvents; },
                      absl::Seconds(30)));
  EXPECT_FALSE(member().backlogged());
  EXPECT_EQ(Group("orders", "g").dead_lettered(), 0u);
  stop_reading = true;
  ctx.TryCancel();
  reader.join();
  stream->Finish().IgnoreError();  // CANCELLED
}

// Events acked above an unacked one are kept across a restart as the
// checkpoint's acked runs. They were buffered again after it and counted
// against the group's window, though nothing delivers or frees them while
// the offset below stays unacked: a window's worth of them held every other
// key's new events back until that one offset was acked.
TEST_P(BrokerTest, EventsAckedBeforeARestartTakeNoRoomInTheWindow) {
  options_.group_window_bytes = 64 << 10;
  Restart();
  constexpr int kAcked = 200;  // of 1 KiB each: three windows
  auto publish = [&](int first, int n, const std::string& key_prefix) {
    PublishRequest req;
    req.set_topic("orders");
    for (int i = first; i < first + n; ++i) {
      Event e = MakeEvent(absl::StrCat("e", i), absl::StrCat(key_prefix, i));
      e.set_data(std::string(1024, 'd'));
      *req.add_events() = std::move(e);
    }
    grpc::ClientContext ctx;
    PublishResponse resp;
    grpc::Status s = stub_->Publish(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  };
  publish(0, 1, "stuck");   // offset 0, never acked
  publish(1, kAcked, "k");  // offsets 1..200, all acked
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<SubscribeRequest, SubscribeResponse>> rw;
  };
  auto open = [&](Stream* s) {
    s->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    s->rw = stub_->Subscribe(&s->ctx);
    SubscribeRequest req;
    req.mutable_open()->set_topic("orders");
    req.mutable_open()->set_group("g");
    req.mutable_open()->set_max_in_flight(1000);
    *req.mutable_open()->mutable_ack_deadline() =
        google::protobuf::util::TimeUtil::SecondsToDuration(3600);
    ASSERT_TRUE(s->rw->Write(req));
    SubscribeResponse resp;
    ASSERT_TRUE(s->rw->Read(&resp));
    ASSERT_TRUE(resp.has_opened());
  };
  {
    Stream first;
    open(&first);
    if (HasFatalFailure()) return;
    std::set<uint64_t> acked;
    SubscribeResponse resp;
    while (acked.size() < kAcked && first.rw->Read(&resp)) {
      SubscribeRequest acks;
      for (const auto& d : resp.deliveries()) {
        if (d.event().offset() == 0) continue;
        acked.insert(d.event().offset());
        auto* a = acks.add_acks();
        a->set_offset(d.event().offset());
        a->set_attempt(d.attempt());
      }
      if (acks.acks_size() > 0) {
        ASSERT_TRUE(first.rw->Write(acks));
      }
    }
    ASSERT_EQ(acked.size(), static_cast<size_t>(kAcked));
    ASSERT_TRUE(WaitFor([&] { return Group("orders", "g").lag() == 1; }))
        << Group("orders", "g").DebugString();
    first.ctx.TryCancel();
    first.rw->Finish().IgnoreError();  // CANCELLED
  }
  Restart();
  constexpr int kNew = 10;
  publish(1 + kAcked, kNew, "new");  // offsets 201..210, keys of their own

  Stream second;
  open(&second);
  if (HasFatalFailure()) return;
  absl::Mutex mu;
  std::set<uint64_t> delivered;
  std::thread reader([&] {
    SubscribeResponse resp;
    while (second.rw->Read(&resp)) {
      absl::MutexLock lock(&mu);
      for (const auto& d : resp.deliveries()) delivered.insert(d.event().offset());
    }
  });
  auto has_all_new = [&] {
    absl::MutexLock lock(&mu);
    for (uint64_t o = 1 + kAcked; o < 1 + kAcked + kNew; ++o) {
      if (delivered.count(o) == 0) return false;
    }
    return delivered.count(0) == 1;  // redelivered, and still not acked
  };
  EXPECT_TRUE(WaitFor(has_all_new, absl::Seconds(10))) << Group("orders", "g").DebugString();
  {
    absl::MutexLock lock(&mu);
    for (uint64_t o = 1; o <= kAcked; ++o) {
      EXPECT_EQ(delivered.count(o), 0u) << "acked " << o;
    }
  }
  EXPECT_LT(Group("orders", "g").window_bytes(), 64u << 10);
  second.ctx.TryCancel();
  reader.join();
  second.rw->Finish().IgnoreError();  // CANCELLED
}

INSTANTIATE_TEST_SUITE_P(
    Backends, BrokerTest, ::testing::ValuesIn(testing::TestBackend::All()),
    testing::TestBackend::ParamName<::testing::TestParamInfo<broker::Storage>>);

}  // namespace relay
