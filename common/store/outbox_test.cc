#include "common/store/outbox.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/events/publisher.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::store {
namespace {

using ::relay::testing::MetricNow;

using ::relay::events::Publisher;
using ::relay::events::v1::Event;
using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::relay::testing::WaitFor;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::unique_ptr<Database> OpenOutboxDb(const std::string& path) {
  auto db = Database::Open(path, {});
  EXPECT_THAT(db, IsOk());
  if (!db.ok()) return nullptr;
  std::vector<std::string> steps = Outbox::Migrations();
  for (std::string& s : Outbox::ParkedMigrations()) steps.push_back(std::move(s));
  EXPECT_THAT((*db)->Migrate(steps), IsOk());
  return std::move(*db);
}

Event MakeEvent(const std::string& type, const std::string& key, const std::string& data = "") {
  Event e;
  e.set_type(type);
  e.set_key(key);
  e.set_source("outbox-test");
  e.set_data(data);
  return e;
}

// Adds one event in its own transaction; returns its id.
std::string AddOne(Database& db, const std::string& topic, const Event& e) {
  std::string id;
  EXPECT_THAT(db.Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::string> added = Outbox::Add(tx, topic, e);
    if (!added.ok()) return added.status();
    id = *added;
    return absl::OkStatus();
  }),
              IsOk());
  return id;
}

// Adds a row of topic "orders" that the broker refuses (no type; Outbox::Add
// would not let it in), with event id "evt-bad".
void AddUntyped(Database& db, const std::string& key) {
  EXPECT_THAT(db.Transaction([&](Tx& tx) -> absl::Status {
    Event bad = MakeEvent("", key);
    bad.set_id("evt-bad");
    auto st = tx.Prepare("INSERT INTO outbox (topic, event, created_us) VALUES ('orders', ?, 0)");
    if (!st.ok()) return st.status();
    if (auto s = st->BindBlob(1, bad.SerializeAsString()); !s.ok()) return s;
    return st->Run();
  }),
              IsOk());
}

int64_t Pending(Database& db) {
  int64_t n = -1;
  EXPECT_THAT(db.Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<int64_t> count = Outbox::Count(tx);
    if (!count.ok()) return count.status();
    n = *count;
    return absl::OkStatus();
  }),
              IsOk());
  return n;
}

// Every event of `topic`, in offset order, through the broker's Read RPC.
std::vector<Event> ReadTopic(const std::string& target, const std::string& topic) {
  auto stub = broker::v1::Broker::NewStub(::relay::testing::Channel(target));
  std::vector<Event> events;
  uint64_t offset = 0;
  while (true) {
    broker::v1::ReadRequest request;
    request.set_topic(topic);
    request.set_offset(offset);
    request.set_max_events(10000);
    broker::v1::ReadResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = stub->Read(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) return events;
    for (const Event& e : response.events()) events.push_back(e);
    if (response.events().empty() || response.next_offset() >= response.end_offset()) break;
    offset = response.next_offset();
  }
  return events;
}

std::vector<std::string> Ids(const std::vector<Event>& events) {
  std::vector<std::string> ids;
  for (const Event& e : events) ids.push_back(e.id());
  return ids;
}

// A channel that retries a down server quickly (the default reconnect
// backoff grows to minutes).
std::shared_ptr<grpc::Channel> EagerChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

TEST(Outbox, AddInsideARolledBackTransactionLeavesNothing) {
  TempDir dir;
  auto db = OpenOutboxDb(dir.Join("svc.db"));
  absl::Status s = db->Transaction([&](Tx& tx) -> absl::Status {
    EXPECT_THAT(Outbox::Add(tx, "orders", MakeEvent("order.created", "ord-1")), IsOk());
    EXPECT_THAT(Outbox::Count(tx), IsOkAndHolds(1));
    return absl::AbortedError("the state change failed");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted, HasSubstr("state change failed")));
  EXPECT_EQ(Pending(*db), 0);
}

TEST(Outbox, AddFillsIdAndTimeAndStoresTheEvent) {
  TempDir dir;
  auto db = OpenOutboxDb(dir.Join("svc.db"));
  std::string id = AddOne(*db, "orders", MakeEvent("order.created", "ord-1", "payload"));
  EXPECT_EQ(id.size(), 36u);
  Event with_id = MakeEvent("order.created", "ord-2");
  with_id.set_id("my-id");
  EXPECT_EQ(AddOne(*db, "orders", with_id), "my-id");

  ASSERT_THAT(db->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> select =
        tx.Prepare("SELECT topic, event, created_us FROM outbox ORDER BY seq");
    if (!select.ok()) return select.status();
    EXPECT_THAT(select->Step(), IsOkAndHolds(true));
    EXPECT_EQ(select->ColumnText(0), "orders");
    Event stored;
    EXPECT_TRUE(stored.ParseFromString(select->ColumnBlob(1)));
    EXPECT_EQ(stored.id(), id);
    EXPECT_EQ(stored.type(), "order.created");
    EXPECT_EQ(stored.key(), "ord-1");
    EXPECT_EQ(stored.data(), "payload");
    EXPECT_TRUE(stored.has_time());
    EXPECT_GT(select->ColumnInt64(2), 0);
    EXPECT_THAT(select->Step(), IsOkAndHolds(true));
    EXPECT_THAT(select->Step(), IsOkAndHolds(false));
    return absl::OkStatus();
  }),
              IsOk());
}

TEST(Outbox, AddRefusesWhatTheBrokerWouldReject) {
  TempDir dir;
  auto db = OpenOutboxDb(dir.Join("svc.db"));
  Event other_topic = MakeEvent("order.created", "k");
  other_topic.set_topic("payments");
  const struct {
    std::string topic;
    Event event;
    std::string why;
  } cases[] = {
      {"", MakeEvent("order.created", "k"), "invalid topic"},
      {"Orders", MakeEvent("order.created", "k"), "outside [a-z0-9._-]"},
      {"orders", MakeEvent("", "k"), "no type"},
      {"orders", other_topic, "names topic 'payments'"},
      {"orders", MakeEvent("order.created", "k", std::string(Outbox::kMaxEventBytes, 'x')),
       "the limit is"},
  };
  for (const auto& c : cases) {
    absl::Status s = db->Transaction(
        [&](Tx& tx) -> absl::Status { return Outbox::Add(tx, c.topic, c.event).status(); });
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.why)));
  }
  EXPECT_EQ(Pending(*db), 0);
}

class OutboxRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenOutboxDb(dir_.Join("svc.db"));
    ASSERT_NE(db_, nullptr);
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(OutboxRelayTest, PublishesInOrderAndEmptiesTheTable) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  // 1200 events over two topics and several keys, in transactions of 10:
  // more than two relay batches.
  std::map<std::string, std::vector<std::string>> expected;
  for (int t = 0; t < 120; ++t) {
    ASSERT_THAT(db_->Transaction([&](Tx& tx) -> absl::Status {
      for (int i = 0; i < 10; ++i) {
        int n = t * 10 + i;
        std::string topic = n % 3 == 0 ? "payments" : "orders";
        absl::StatusOr<std::string> id = Outbox::Add(
            tx, topic, MakeEvent("thing.happened", absl::StrCat("k", n % 7), absl::StrCat(n)));
        if (!id.ok()) return id.status();
        expected[topic].push_back(*id);
      }
      return absl::OkStatus();
    }),
                IsOk());
  }

  Publisher publisher(::relay::testing::Channel((*broker)->target()), {});
  OutboxRelay::Options options;
  options.batch_size = 500;
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(30)), IsOk());

  EXPECT_THAT(relay.Pending(), IsOkAndHolds(0));
  EXPECT_EQ(relay.stats().published, 1200u);
  EXPECT_THAT(relay.stats().last_error, IsEmpty());
  for (const auto& [topic, ids] : expected) {
    EXPECT_THAT(Ids(ReadTopic((*broker)->target(), topic)), ElementsAreArray(ids)) << topic;
  }
}

// 500 rows of events up to 1 MiB each would be read into memory at once:
// a batch stops at batch_bytes (4 MiB), so twelve rows of 900 KiB take
// three batches instead of one.
TEST_F(OutboxRelayTest, ABatchOfLargeEventsStopsAtBatchBytes) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  std::vector<std::string> expected;
  for (int n = 0; n < 12; ++n) {
    expected.push_back(
        AddOne(*db_, "orders", MakeEvent("thing.happened", "k", std::string(900 << 10, 'a' + n))));
  }
  Publisher publisher(::relay::testing::Channel((*broker)->target()), {});
  OutboxRelay relay(db_.get(), &publisher, OutboxRelay::Options());
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(30)), IsOk());
  EXPECT_EQ(relay.stats().published, 12u);
  EXPECT_EQ(relay.stats().batches, 3u);  // 5 + 5 + 2 rows
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "orders")), ElementsAreArray(expected));
}

TEST_F(OutboxRelayTest, WakePublishesWithoutWaitingForThePoll) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  Publisher publisher(::relay::testing::Channel((*broker)->target()), {});
  OutboxRelay::Options options;
  options.poll_interval = absl::Hours(1);  // only Wake() can make it publish
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(10)), IsOk());  // the relay is idle now

  std::string id = AddOne(*db_, "orders", MakeEvent("order.created", "ord-1"));
  relay.Wake();
  EXPECT_TRUE(WaitFor([&] { return relay.stats().published == 1; }, absl::Seconds(10)));
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "orders")), ElementsAreArray({id}));
  EXPECT_EQ(Pending(*db_), 0);
}

// The publisher refuses a batch that would pass its max_pending_events
// (RESOURCE_EXHAUSTED) whole, at once: the rows stay, and a later pass reads
// them again from the top of the table. Here the publisher's budget is held
// by events of its own while the broker is away.
TEST_F(OutboxRelayTest, RowsThePublisherGaveUpOnArePublishedOnALaterPass) {
  TempDir broker_dir;
  std::string address;
  {
    auto first = ::relay::testing::StartBroker(broker_dir.path());
    ASSERT_THAT(first, IsOk());
    address = (*first)->target();
    (*first)->Shutdown(absl::ZeroDuration());
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    expected.push_back(AddOne(*db_, "orders", MakeEvent("order.created", "ord-1")));
  }
  Publisher::Options publisher_options;
  publisher_options.max_pending_events = 32;
  Publisher publisher(EagerChannel(address), publisher_options);
  std::vector<std::future<absl::StatusOr<uint64_t>>> others;
  for (int i = 0; i < 3; ++i) {
    Event e = MakeEvent("x.y", "k");
    e.set_id(absl::StrCat("other-", i));
    others.push_back(publisher.Publish("other", e));
  }
  OutboxRelay::Options options;
  options.min_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(10);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_TRUE(WaitFor([&] { return relay.stats().failures >= 1; }, absl::Seconds(10)));
  EXPECT_THAT(relay.stats().last_error, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_EQ(Pending(*db_), 30);

  ::relay::testing::BrokerTestOptions broker_options;
  broker_options.listen_address = address;
  auto second = ::relay::testing::StartBroker(broker_dir.path(), broker_options);
  ASSERT_THAT(second, IsOk());
  for (auto& f : others) EXPECT_THAT(f.get(), IsOk());
  ASSERT_THAT(relay.Flush(absl::Seconds(30)), IsOk());
  EXPECT_EQ(Pending(*db_), 0);
  EXPECT_EQ(relay.stats().published, 30u);
  EXPECT_THAT(Ids(ReadTopic(address, "orders")), ElementsAreArray(expected));
}

// A batch goes in one request, which the publisher refuses whole beyond its
// max_pending_events: the relay reads no more rows than that at a time,
// else every batch of a larger table would be refused forever.
TEST_F(OutboxRelayTest, BatchesFitThePublishersPendingLimit) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    expected.push_back(AddOne(*db_, "orders", MakeEvent("order.created", "ord-1")));
  }
  Publisher::Options publisher_options;
  publisher_options.max_pending_events = 4;  // below the relay's batch_size (500)
  Publisher publisher(::relay::testing::Channel((*broker)->target()), publisher_options);
  OutboxRelay relay(db_.get(), &publisher, {});
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(20)), IsOk());
  EXPECT_EQ(relay.stats().published, 10u);
  EXPECT_EQ(relay.stats().batches, 3u);  // 4 + 4 + 2
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "orders")), ElementsAreArray(expected));
}

TEST_F(OutboxRelayTest, StopPublishesWhatIsLeft) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  Publisher publisher(::relay::testing::Channel((*broker)->target()), {});
  OutboxRelay::Options options;
  options.poll_interval = absl::Hours(1);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(10)), IsOk());
  for (int i = 0; i < 20; ++i) AddOne(*db_, "orders", MakeEvent("order.created", "ord-1"));
  relay.Stop();  // no Wake(): Stop itself drains
  EXPECT_EQ(Pending(*db_), 0);
  EXPECT_EQ(ReadTopic((*broker)->target(), "orders").size(), 20u);
  EXPECT_THAT(relay.Flush(absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not running")));
}

TEST_F(OutboxRelayTest, KeepsRowsWhileTheBrokerIsDownAndPublishesThemOnceItIsBack) {
  TempDir broker_dir;
  // Find a free port, then leave it: the broker is down when the relay starts.
  std::string address;
  {
    auto first = ::relay::testing::StartBroker(broker_dir.path());
    ASSERT_THAT(first, IsOk());
    address = (*first)->target();
    (*first)->Shutdown(absl::ZeroDuration());
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    expected.push_back(
        AddOne(*db_, "orders", MakeEvent("order.created", absl::StrCat("ord-", i % 4))));
  }

  const double published_before = MetricNow("relay_outbox_published_total");
  const double failed_before = MetricNow("relay_outbox_failed_passes_total");
  Publisher publisher(EagerChannel(address), {});
  OutboxRelay::Options options;
  options.publish_timeout = absl::Milliseconds(200);
  options.max_backoff = absl::Milliseconds(500);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_TRUE(WaitFor([&] { return relay.stats().failures >= 2; }, absl::Seconds(10)));
  EXPECT_EQ(Pending(*db_), 30);
  EXPECT_EQ(relay.stats().published, 0u);
  // What an operator sees meanwhile (docs/OBSERVABILITY.md#services).
  EXPECT_EQ(MetricNow("relay_outbox_rows"), 30);
  EXPECT_GT(MetricNow("relay_outbox_oldest_row_age_seconds"), 0);
  EXPECT_GE(MetricNow("relay_outbox_failed_passes_total") - failed_before, 2);
  EXPECT_THAT(relay.stats().last_error, HasSubstr("not acknowledged"));
  EXPECT_THAT(relay.Flush(absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("outbox not empty")));
  // A commit while the broker is away is kept too.
  expected.push_back(AddOne(*db_, "orders", MakeEvent("order.created", "ord-late")));
  relay.Wake();

  ::relay::testing::BrokerTestOptions broker_options;
  broker_options.listen_address = address;
  auto second = ::relay::testing::StartBroker(broker_dir.path(), broker_options);
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT(relay.Flush(absl::Seconds(30)), IsOk());
  EXPECT_EQ(Pending(*db_), 0);
  EXPECT_EQ(relay.stats().published, 31u);
  EXPECT_THAT(relay.stats().last_error, IsEmpty());
  EXPECT_THAT(Ids(ReadTopic(address, "orders")), ElementsAreArray(expected));
  EXPECT_EQ(MetricNow("relay_outbox_rows"), 0);
  EXPECT_EQ(MetricNow("relay_outbox_oldest_row_age_seconds"), 0);
  EXPECT_EQ(MetricNow("relay_outbox_published_total") - published_before, 31);
  relay.Stop();
  // A stopped relay no longer reports the table (its database may go).
  EXPECT_THAT(metrics::Registry::Default().Expose(), Not(HasSubstr("relay_outbox_rows")));
}

TEST_F(OutboxRelayTest, StopGivesUpAfterTheGracePeriodAndKeepsTheRows) {
  TempDir broker_dir;
  std::string address;
  {
    auto broker = ::relay::testing::StartBroker(broker_dir.path());
    ASSERT_THAT(broker, IsOk());
    address = (*broker)->target();
    (*broker)->Shutdown(absl::ZeroDuration());
  }
  for (int i = 0; i < 5; ++i) AddOne(*db_, "orders", MakeEvent("order.created", "ord-1"));
  Publisher publisher(EagerChannel(address), {});
  OutboxRelay::Options options;
  options.stop_grace = absl::Milliseconds(300);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  absl::Time start = absl::Now();
  relay.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(Pending(*db_), 5);
  EXPECT_EQ(relay.stats().published, 0u);
}

// An order's later event must never be stored before its earlier one. A
// batch the publisher cut into requests (by its event limit, or at a change
// of topic) had its first request refused whole, for an invalid neighbour
// of order.created, while a later request with order.cancelled was stored:
// order.created then went out alone, after the cancel (payment would
// capture, and inventory reserve, for a cancelled order).
TEST_F(OutboxRelayTest, ARefusedEventNeverLetsALaterEventOfItsKeyGoFirst) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  std::string created = AddOne(*db_, "orders", MakeEvent("order.created", "ord-9"));
  AddUntyped(*db_, "ord-8");
  std::string captured = AddOne(*db_, "payments", MakeEvent("payment.captured", "ord-7"));
  std::string cancelled = AddOne(*db_, "orders", MakeEvent("order.cancelled", "ord-9"));

  Publisher::Options publisher_options;
  publisher_options.max_batch_events = 2;
  Publisher publisher(::relay::testing::Channel((*broker)->target()), publisher_options);
  OutboxRelay::Options options;
  options.max_backoff = absl::Milliseconds(200);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(20)), IsOk());
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "orders")),
              ElementsAreArray({created, cancelled}));
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "payments")), ElementsAreArray({captured}));
  EXPECT_EQ(relay.stats().parked, 1u);
  EXPECT_EQ(Pending(*db_), 0);
}

// One event the broker refuses (here: no type, which Outbox::Add would have
// caught; in production, e.g. a broker with a lower --max_event_bytes) must
// not hold back the rows behind it forever.
TEST_F(OutboxRelayTest, AnEventTheBrokerRefusesIsParkedAndTheRowsBehindItGoOn) {
  TempDir broker_dir;
  auto broker = ::relay::testing::StartBroker(broker_dir.path());
  ASSERT_THAT(broker, IsOk());
  std::string first = AddOne(*db_, "orders", MakeEvent("order.created", "ord-1"));
  AddUntyped(*db_, "ord-1");
  std::string behind = AddOne(*db_, "orders", MakeEvent("order.confirmed", "ord-1"));
  std::string other = AddOne(*db_, "payments", MakeEvent("payment.captured", "ord-2"));

  Publisher publisher(::relay::testing::Channel((*broker)->target()), {});
  OutboxRelay::Options options;
  options.max_backoff = absl::Milliseconds(200);
  OutboxRelay relay(db_.get(), &publisher, options);
  relay.Start();
  ASSERT_THAT(relay.Flush(absl::Seconds(20)), IsOk());

  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "orders")), ElementsAreArray({first, behind}));
  EXPECT_THAT(Ids(ReadTopic((*broker)->target(), "payments")), ElementsAreArray({other}));
  EXPECT_EQ(relay.stats().parked, 1u);
  EXPECT_EQ(relay.stats().published, 3u);
  EXPECT_EQ(Pending(*db_), 0);
  std::string error, parked_event;
  ASSERT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
    auto st = tx.Prepare("SELECT error, event FROM outbox_parked");
    if (!st.ok()) return st.status();
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::NotFoundError("no parked row");
    error = st->ColumnText(0);
    parked_event = st->ColumnBlob(1);
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(error, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(error, HasSubstr("no type"));
  Event e;
  ASSERT_TRUE(e.ParseFromString(parked_event));
  EXPECT_EQ(e.id(), "evt-bad");
}

}  // namespace
}  // namespace relay::store
