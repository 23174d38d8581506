#include "common/store/transactional_consumer.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/events/publisher.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/store/inbox.h"
#include "common/store/outbox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/order_events.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/metrics_sample.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::store {
namespace {

using ::relay::testing::MetricNow;

using ::relay::events::DeliveryInfo;
using ::relay::events::Publisher;
using ::relay::events::Subscriber;
using ::relay::events::v1::Event;
using ::relay::events::v1::OrderCreated;
using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::relay::testing::TempDir;
using ::relay::testing::WaitFor;
using ::testing::HasSubstr;

// A payment-service-like store: orders seen, and the events it emits.
std::unique_ptr<Database> OpenServiceDb(const std::string& path) {
  auto db = Database::Open(path, {});
  EXPECT_THAT(db, IsOk());
  if (!db.ok()) return nullptr;
  std::vector<std::string> steps = Outbox::Migrations();
  for (std::string& s : Inbox::Migrations()) steps.push_back(std::move(s));
  steps.push_back("CREATE TABLE charges (order_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL)");
  EXPECT_THAT((*db)->Migrate(steps), IsOk());
  return std::move(*db);
}

int64_t Count(Database& db, const std::string& sql) {
  int64_t n = -1;
  EXPECT_THAT(db.Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> q = tx.Prepare(sql);
    if (!q.ok()) return q.status();
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    n = q->ColumnInt64(0);
    return absl::OkStatus();
  }),
              IsOk());
  return n;
}

Event OrderCreatedEvent(const std::string& order_id) {
  OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id("cust-1");
  Event e;
  e.set_id(NewEventId());
  e.set_topic("orders");
  e.set_type("order.created");
  e.set_key(order_id);
  e.set_data(m.SerializeAsString());
  return e;
}

// The handler under test: records a charge and emits payment.captured,
// failing for orders named in `fail`.
absl::Status Charge(Tx& tx, const OrderCreated& m, const Event& e, const DeliveryInfo& info,
                    const std::set<std::string>& fail) {
  absl::StatusOr<Statement> insert =
      tx.Prepare("INSERT INTO charges (order_id, attempt) VALUES (?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, m.order_id()); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(2, info.attempt); !s.ok()) return s;
  if (absl::Status s = insert->Run(); !s.ok()) return s;
  Event captured;
  captured.set_type("payment.captured");
  captured.set_key(m.order_id());
  (*captured.mutable_headers())["causation_id"] = e.id();
  if (absl::Status s = Outbox::Add(tx, "payments", captured).status(); !s.ok()) return s;
  // Fails after changing state: the rollback must undo the insert above.
  if (fail.count(m.order_id()) > 0) {
    return absl::FailedPreconditionError(absl::StrCat("account of ", m.order_id(), " is frozen"));
  }
  return absl::OkStatus();
}

TransactionalConsumer::Options ConsumerOptions(const std::string& group) {
  TransactionalConsumer::Options options;
  options.subscriber.topic = "orders";
  options.subscriber.group = group;
  return options;
}

class TransactionalConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenServiceDb(dir_.Join("payment.db"));
    ASSERT_NE(db_, nullptr);
    // Never started: the tests drive the entry points directly.
    consumer_ = std::make_unique<TransactionalConsumer>(
        db_.get(), grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
        ConsumerOptions("payment-service"));
    consumer_->On<OrderCreated>("order.created", [this](Tx& tx, const OrderCreated& m,
                                                        const Event& e, const DeliveryInfo& info) {
      return Charge(tx, m, e, info, fail_);
    });
  }

  int64_t Charges() { return Count(*db_, "SELECT count(*) FROM charges"); }
  int64_t Outboxed() { return Count(*db_, "SELECT count(*) FROM outbox"); }
  int64_t InInbox(const std::string& event_id) {
    return Count(*db_,
                 absl::StrCat("SELECT count(*) FROM inbox WHERE event_id = '", event_id, "'"));
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::set<std::string> fail_;
  std::unique_ptr<TransactionalConsumer> consumer_;
};

TEST_F(TransactionalConsumerTest, TheSameEventDeliveredTwiceHasOneEffect) {
  Event e = OrderCreatedEvent("ord-1");
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{1}), IsOk());
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{2}), IsOk());  // acked, not applied
  EXPECT_EQ(Charges(), 1);
  EXPECT_EQ(Outboxed(), 1);
  EXPECT_EQ(InInbox(e.id()), 1);
  TransactionalConsumer::Stats stats = consumer_->stats();
  EXPECT_EQ(stats.handled, 1u);
  EXPECT_EQ(stats.duplicates, 1u);
  EXPECT_EQ(stats.failed, 0u);
}

TEST_F(TransactionalConsumerTest, AFailingHandlerLeavesNoStateAndNoInboxRow) {
  fail_.insert("ord-1");
  Event e = OrderCreatedEvent("ord-1");
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{1}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("frozen")));
  EXPECT_EQ(Charges(), 0);
  EXPECT_EQ(Outboxed(), 0);
  EXPECT_EQ(InInbox(e.id()), 0);
  // The redelivery, once the cause is gone, applies it (once).
  fail_.clear();
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{2}), IsOk());
  EXPECT_EQ(Charges(), 1);
  EXPECT_EQ(consumer_->stats().failed, 1u);
  EXPECT_EQ(consumer_->stats().handled, 1u);
}

TEST_F(TransactionalConsumerTest, APayloadThatDoesNotParseIsNackedWithoutEffect) {
  Event e = OrderCreatedEvent("ord-1");
  e.set_data("\xff\xff\xff not a proto");
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not parse")));
  EXPECT_EQ(InInbox(e.id()), 0);
}

TEST_F(TransactionalConsumerTest, EventsOfOtherTypesAreAckedWithoutAnInboxRow) {
  Event e = OrderCreatedEvent("ord-1");
  e.set_type("order.confirmed");
  EXPECT_THAT(consumer_->Handle(e, DeliveryInfo{1}), IsOk());
  EXPECT_EQ(InInbox(e.id()), 0);
  EXPECT_EQ(Charges(), 0);
}

// Issue 10: each outcome is counted under its event type; a type without a
// handler is "other", so the label set stays bounded.
TEST_F(TransactionalConsumerTest, MetricsCountEachOutcomeByType) {
  auto events_total = [](const std::string& type, const std::string& outcome) {
    return MetricNow(absl::StrCat("relay_service_events_total{topic=\"orders\",type=\"", type,
                                  "\",outcome=\"", outcome, "\"}"));
  };
  const double handled = events_total("order.created", "handled");
  const double duplicate = events_total("order.created", "duplicate");
  const double failed = events_total("order.created", "failed");
  const double skipped = events_total("other", "skipped");
  const double timed =
      MetricNow("relay_service_handler_seconds_count{topic=\"orders\",type=\"order.created\"}");

  fail_.insert("ord-2");
  Event first = OrderCreatedEvent("ord-1");
  Event other = OrderCreatedEvent("ord-3");
  other.set_type("order.shipped.by.someone.new");
  EXPECT_THAT(consumer_->Handle(first, DeliveryInfo{1}), IsOk());
  EXPECT_THAT(consumer_->Handle(first, DeliveryInfo{2}), IsOk());
  EXPECT_FALSE(consumer_->Handle(OrderCreatedEvent("ord-2"), DeliveryInfo{1}).ok());
  std::vector<Subscriber::Delivery> batch = {{&other, DeliveryInfo{1}}};
  consumer_->HandleBatch(batch);

  EXPECT_EQ(events_total("order.created", "handled") - handled, 1);
  EXPECT_EQ(events_total("order.created", "duplicate") - duplicate, 1);
  EXPECT_EQ(events_total("order.created", "failed") - failed, 1);
  EXPECT_EQ(events_total("other", "skipped") - skipped, 1);
  // The handler ran for the first delivery and the failing one.
  EXPECT_EQ(
      MetricNow("relay_service_handler_seconds_count{topic=\"orders\",type=\"order.created\"}") -
          timed,
      2);
  EXPECT_THAT(metrics::Registry::Default().Expose(),
              ::testing::Not(HasSubstr("order.shipped.by.someone.new")));
}

// Issue 10: the lines written while an event is handled carry its trace id.
TEST_F(TransactionalConsumerTest, LogLinesOfAHandledEventCarryItsTraceId) {
  fail_.insert("ord-9");
  Event e = OrderCreatedEvent("ord-9");
  (*e.mutable_headers())["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  ::testing::internal::CaptureStdout();
  EXPECT_FALSE(consumer_->Handle(e, DeliveryInfo{1}).ok());
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("event handling failed"));
  EXPECT_THAT(out, HasSubstr(" trace=0af7651916cd43dd8448eb211c80319c\n"));
  // Only while it is handled.
  ::testing::internal::CaptureStdout();
  RELAY_LOG(Info, "after");
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), ::testing::Not(HasSubstr("trace=")));
}

TEST_F(TransactionalConsumerTest, ABatchWithOneFailingEventCommitsTheOthers) {
  fail_.insert("ord-2");
  std::vector<Event> events = {OrderCreatedEvent("ord-1"), OrderCreatedEvent("ord-2"),
                               OrderCreatedEvent("ord-3")};
  Event other = OrderCreatedEvent("ord-4");
  other.set_type("order.cancelled");  // no handler
  events.push_back(other);
  std::vector<Subscriber::Delivery> batch;
  for (const Event& e : events) batch.push_back({&e, DeliveryInfo{1}});

  std::vector<absl::Status> statuses = consumer_->HandleBatch(batch);
  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_THAT(statuses[0], IsOk());
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("frozen")));
  EXPECT_THAT(statuses[2], IsOk());
  EXPECT_THAT(statuses[3], IsOk());
  EXPECT_EQ(Charges(), 2);
  EXPECT_EQ(Count(*db_, "SELECT count(*) FROM charges WHERE order_id = 'ord-2'"), 0);
  EXPECT_EQ(Outboxed(), 2);
  EXPECT_EQ(InInbox(events[0].id()), 1);
  EXPECT_EQ(InInbox(events[1].id()), 0);
  EXPECT_EQ(InInbox(events[2].id()), 1);
  EXPECT_EQ(InInbox(events[3].id()), 0);
  EXPECT_EQ(consumer_->stats().commits, 1u);  // one transaction for the batch

  // The same batch again (a redelivery): only the failed one takes effect now.
  fail_.clear();
  statuses = consumer_->HandleBatch(batch);
  for (const absl::Status& s : statuses) EXPECT_THAT(s, IsOk());
  EXPECT_EQ(Charges(), 3);
  EXPECT_EQ(Outboxed(), 3);
  TransactionalConsumer::Stats stats = consumer_->stats();
  EXPECT_EQ(stats.handled, 3u);
  EXPECT_EQ(stats.duplicates, 2u);
  EXPECT_EQ(stats.failed, 1u);
}

TEST(TransactionalConsumerHooks, RunAroundTheTransactionForHandledEventsOnly) {
  TempDir dir;
  std::unique_ptr<Database> db = OpenServiceDb(dir.Join("payment.db"));
  ASSERT_NE(db, nullptr);
  std::vector<std::string> before, after;
  std::set<std::string> fail = {"ord-2"};
  TransactionalConsumer::Options options = ConsumerOptions("payment-service");
  options.before_handle = [&](const Event& e) { before.push_back(e.key()); };
  // Runs after COMMIT: the charge is already visible to a new reader.
  options.after_commit = [&](const Event& e) {
    EXPECT_EQ(
        Count(*db, absl::StrCat("SELECT count(*) FROM charges WHERE order_id = '", e.key(), "'")),
        1);
    after.push_back(e.key());
  };
  TransactionalConsumer consumer(
      db.get(), grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()), options);
  consumer.On<OrderCreated>("order.created",
                            [&](Tx& tx, const OrderCreated& m, const Event& e,
                                const DeliveryInfo& info) { return Charge(tx, m, e, info, fail); });
  std::vector<Event> events = {OrderCreatedEvent("ord-1"), OrderCreatedEvent("ord-2")};
  Event other = OrderCreatedEvent("ord-3");
  other.set_type("order.cancelled");  // no handler: no hooks
  events.push_back(other);
  std::vector<Subscriber::Delivery> batch;
  for (const Event& e : events) batch.push_back({&e, DeliveryInfo{1}});
  consumer.HandleBatch(batch);
  EXPECT_EQ(before, (std::vector<std::string>{"ord-1", "ord-2"}));
  EXPECT_EQ(after, (std::vector<std::string>{"ord-1"}));  // ord-2 failed
  // A redelivery of ord-1 is a duplicate: no after_commit.
  EXPECT_THAT(consumer.Handle(events[0], DeliveryInfo{2}), IsOk());
  EXPECT_EQ(after, (std::vector<std::string>{"ord-1"}));
}

TEST_F(TransactionalConsumerTest, ABatchWhoseTransactionFailsNacksEveryHandledEvent) {
  // The handler breaks the transaction itself: COMMIT inside is refused by
  // SQLite, and ending the transaction under the consumer must fail the batch.
  // An event of a type without a handler was never part of it: still acked.
  TransactionalConsumer consumer(
      db_.get(), grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
      ConsumerOptions("g"));
  consumer.On("order.created", [](Tx& tx, const Event&, const DeliveryInfo&) {
    return tx.Exec("ROLLBACK");  // violates the handler contract
  });
  Event a = OrderCreatedEvent("ord-1");
  Event b = OrderCreatedEvent("ord-2");
  Event other = OrderCreatedEvent("ord-3");
  other.set_type("order.audited");
  std::vector<Subscriber::Delivery> batch = {
      {&a, DeliveryInfo{1}}, {&other, DeliveryInfo{1}}, {&b, DeliveryInfo{1}}};
  std::vector<absl::Status> statuses = consumer.HandleBatch(batch);
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_FALSE(statuses[0].ok());
  EXPECT_THAT(statuses[1], IsOk());
  EXPECT_FALSE(statuses[2].ok());
  EXPECT_EQ(InInbox(a.id()), 0);
  EXPECT_EQ(InInbox(b.id()), 0);
  // The connection is usable afterwards.
  EXPECT_THAT(consumer_->Handle(a, DeliveryInfo{2}), IsOk());
}

// The whole path over a real broker: an upstream outbox publishes
// order.created; the consumer charges each order once (one fails on its
// first attempt and is redelivered) and its own relay publishes
// payment.captured.
class ConsumerOverBrokerTest : public ::testing::TestWithParam<bool> {};

TEST_P(ConsumerOverBrokerTest, HandlesEachEventOnceAndPublishesWhatItCaused) {
  const bool batch = GetParam();
  TempDir dir;
  auto broker = ::relay::testing::StartBroker(dir.Join("broker"));
  ASSERT_THAT(broker, IsOk());
  auto channel = ::relay::testing::Channel((*broker)->target());

  // Upstream: the order service's outbox.
  auto orders_db = OpenServiceDb(dir.Join("orders.db"));
  constexpr int kOrders = 200;
  ASSERT_THAT(orders_db->Transaction([&](Tx& tx) -> absl::Status {
    for (int i = 0; i < kOrders; ++i) {
      Event e = OrderCreatedEvent(absl::StrCat("ord-", i));
      e.clear_id();
      if (absl::Status s = Outbox::Add(tx, "orders", e).status(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }),
              IsOk());
  Publisher orders_publisher(channel, {});
  OutboxRelay orders_relay(orders_db.get(), &orders_publisher, {});
  orders_relay.Start();

  // Downstream: the payment service.
  auto payment_db = OpenServiceDb(dir.Join("payment.db"));
  Publisher payment_publisher(channel, {});
  OutboxRelay::Options relay_options;
  relay_options.poll_interval = absl::Hours(1);  // only the consumer's Wake() publishes
  OutboxRelay payment_relay(payment_db.get(), &payment_publisher, relay_options);
  payment_relay.Start();
  TransactionalConsumer::Options options;
  options.subscriber.topic = "orders";
  options.subscriber.group = "payment-service";
  options.subscriber.min_backoff = absl::Milliseconds(10);
  options.batch = batch;
  TransactionalConsumer consumer(payment_db.get(), channel, options, &payment_relay);
  absl::Mutex mu;
  int first_attempts_of_ord_7 = 0;
  consumer.On<OrderCreated>("order.created", [&](Tx& tx, const OrderCreated& m, const Event& e,
                                                 const DeliveryInfo& info) {
    std::set<std::string> fail;
    if (m.order_id() == "ord-7" && info.attempt == 1) {
      absl::MutexLock lock(&mu);
      ++first_attempts_of_ord_7;
      fail.insert("ord-7");
    }
    return Charge(tx, m, e, info, fail);
  });
  consumer.Start();
  ASSERT_TRUE(consumer.WaitUntilOpen(absl::Seconds(10)));

  ASSERT_TRUE(WaitFor([&] { return Count(*payment_db, "SELECT count(*) FROM charges") == kOrders; },
                      absl::Seconds(60)));
  EXPECT_EQ(Count(*payment_db, "SELECT attempt FROM charges WHERE order_id = 'ord-7'"), 2);
  EXPECT_EQ(Count(*payment_db, "SELECT count(*) FROM inbox"), kOrders);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(first_attempts_of_ord_7, 1);
  }
  // Everything the consumer caused reaches the broker without a poll.
  ASSERT_TRUE(
      WaitFor([&] { return payment_relay.stats().published == kOrders; }, absl::Seconds(30)));
  EXPECT_THAT(payment_relay.Pending(), IsOkAndHolds(0));
  TransactionalConsumer::Stats stats = consumer.stats();
  EXPECT_EQ(stats.handled, static_cast<uint64_t>(kOrders));
  EXPECT_EQ(stats.failed, 1u);
  if (batch) {
    EXPECT_LT(stats.commits, static_cast<uint64_t>(kOrders));
  } else {
    EXPECT_EQ(stats.commits, static_cast<uint64_t>(kOrders));
  }
  consumer.Stop();
  payment_relay.Stop();
  orders_relay.Stop();
}

INSTANTIATE_TEST_SUITE_P(BatchAndSingle, ConsumerOverBrokerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "OneTransactionPerBatch" : "OneTransactionPerEvent";
                         });

}  // namespace
}  // namespace relay::store
