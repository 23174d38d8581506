// The order.created / order.cancelled handlers driven through
// TransactionalConsumer::Handle and HandleBatch on a real SQLite file,
// without a broker.

#include "services/payment/payment_handlers.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "common/store/transactional_consumer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/events/v1/payment_events.pb.h"
#include "services/payment/payment_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::payment {
namespace {

namespace ev = relay::events::v1;
using relay::store::Database;
using relay::store::Statement;
using relay::store::TransactionalConsumer;
using relay::store::Tx;
using relay::testing::IsOk;
using relay::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

struct OutboxRow {
  std::string topic;
  ev::Event event;
};

ev::Money Usd(int64_t minor) {
  ev::Money m;
  m.set_amount_minor(minor);
  m.set_currency("USD");
  return m;
}

ev::Event Created(const std::string& event_id, const std::string& order_id,
                  const std::string& customer, int64_t total_minor) {
  ev::OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  ev::OrderLine* line = m.add_lines();
  line->set_sku("KB-1");
  line->set_quantity(1);
  *line->mutable_unit_price() = Usd(total_minor);
  *m.mutable_total() = Usd(total_minor);
  ev::Event e;
  e.set_id(event_id);
  e.set_topic("orders");
  e.set_type("order.created");
  e.set_key(order_id);
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = order_id;
  (*e.mutable_headers())["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  m.SerializeToString(e.mutable_data());
  return e;
}

ev::Event Cancelled(const std::string& event_id, const std::string& order_id,
                    const std::string& customer, const std::string& reason) {
  ev::OrderCancelled m;
  m.set_order_id(order_id);
  m.set_customer_id(customer);
  m.set_cause(ev::CANCEL_CAUSE_OUT_OF_STOCK);
  m.set_reason(reason);
  ev::Event e;
  e.set_id(event_id);
  e.set_topic("orders");
  e.set_type("order.cancelled");
  e.set_key(order_id);
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = order_id;
  m.SerializeToString(e.mutable_data());
  return e;
}

class PaymentHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override { Init({}); }

  // (Re)builds the consumer with handlers of `options` (the clock is fixed).
  void Init(PaymentHandlers::Options options) {
    consumer_.reset();
    if (db_ == nullptr) {
      absl::StatusOr<std::unique_ptr<Database>> db = OpenPaymentDatabase(dir_.Join("payment.db"));
      ASSERT_THAT(db, IsOk());
      db_ = std::move(*db);
      ASSERT_THAT(SeedAccountsIfEmpty(*db_), IsOk());
    }
    options.now = [] { return kNow; };
    handlers_ = std::make_unique<PaymentHandlers>(std::move(options));
    TransactionalConsumer::Options consumer_options;
    consumer_options.subscriber = PaymentSubscription();
    // As PaymentApp hooks them: a line is written only after its COMMIT.
    consumer_options.before_handle = [this](const ev::Event&) { handlers_->DropUncommitted(); };
    consumer_options.after_commit = [this](const ev::Event& e) {
      if (handlers_->Committed(e)) ++committed_;
    };
    // Never started: nothing dials the channel.
    consumer_ = std::make_unique<TransactionalConsumer>(
        db_.get(), relay::MakeChannel("127.0.0.1:1"), consumer_options);
    handlers_->Register(*consumer_);
  }

  // Handles `e` in its own transaction.
  absl::Status Handle(const ev::Event& e) { return consumer_->Handle(e, {}); }

  std::vector<absl::Status> HandleBatch(const std::vector<TransactionalConsumer::Delivery>& batch) {
    return consumer_->HandleBatch(batch);
  }

  int64_t Balance(const std::string& customer) {
    int64_t balance = -1;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      absl::StatusOr<std::optional<AccountRow>> a = FindAccount(tx, customer);
      if (!a.ok()) return a.status();
      if (a->has_value()) balance = (*a)->balance_minor;
      return absl::OkStatus();
    }),
                IsOk());
    return balance;
  }

  std::optional<PaymentRow> Payment(const std::string& order_id) {
    std::optional<PaymentRow> payment;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      absl::StatusOr<std::optional<PaymentRow>> p = FindPaymentByOrder(tx, order_id);
      if (!p.ok()) return p.status();
      payment = std::move(*p);
      return absl::OkStatus();
    }),
                IsOk());
    return payment;
  }

  std::vector<OutboxRow> Outbox() {
    std::vector<OutboxRow> rows;
    EXPECT_THAT(db_->Read([&](Tx& tx) -> absl::Status {
      absl::StatusOr<Statement> select = tx.Prepare("SELECT topic, event FROM outbox ORDER BY seq");
      if (!select.ok()) return select.status();
      while (true) {
        absl::StatusOr<bool> row = select->Step();
        if (!row.ok()) return row.status();
        if (!*row) return absl::OkStatus();
        OutboxRow r;
        r.topic = select->ColumnText(0);
        EXPECT_TRUE(r.event.ParseFromString(select->ColumnBlob(1)));
        rows.push_back(std::move(r));
      }
    }),
                IsOk());
    return rows;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<PaymentHandlers> handlers_;
  std::unique_ptr<TransactionalConsumer> consumer_;
  // Events whose log line was written (their effects committed).
  int committed_ = 0;
};

TEST_F(PaymentHandlersTest, CaptureTakesTheTotalAndEmitsPaymentCaptured) {
  ev::Event created = Created("e-1", "ord-1", "c-alice", 1250);
  ASSERT_THAT(Handle(created), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
  std::optional<PaymentRow> payment = Payment("ord-1");
  ASSERT_TRUE(payment.has_value());
  EXPECT_EQ(payment->status, v1::PAYMENT_STATUS_CAPTURED);
  EXPECT_EQ(payment->customer_id, "c-alice");
  EXPECT_EQ(payment->amount_minor, 1250);
  EXPECT_EQ(payment->currency, "USD");
  EXPECT_EQ(payment->reason, "");
  EXPECT_EQ(payment->created_us, absl::ToUnixMicros(kNow));
  EXPECT_THAT(payment->payment_id, HasSubstr("pay-"));

  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].topic, "payments");
  const ev::Event& e = out[0].event;
  EXPECT_FALSE(e.id().empty());
  EXPECT_NE(e.id(), created.id());
  EXPECT_EQ(e.type(), "payment.captured");
  EXPECT_EQ(e.key(), "ord-1");
  EXPECT_EQ(e.source(), "payment-service");
  EXPECT_TRUE(e.has_time());
  EXPECT_EQ(e.headers().at("correlation_id"), "ord-1");
  EXPECT_EQ(e.headers().at("causation_id"), "e-1");
  // The order's trace goes on as a new span.
  EXPECT_THAT(e.headers().at("traceparent"),
              ::testing::MatchesRegex("00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01"));
  EXPECT_NE(e.headers().at("traceparent"), created.headers().at("traceparent"));
  ev::PaymentCaptured captured;
  ASSERT_TRUE(captured.ParseFromString(e.data()));
  EXPECT_EQ(captured.order_id(), "ord-1");
  EXPECT_EQ(captured.customer_id(), "c-alice");
  EXPECT_EQ(captured.payment_id(), payment->payment_id);
  EXPECT_EQ(captured.amount().amount_minor(), 1250);
  EXPECT_EQ(captured.amount().currency(), "USD");
}

TEST_F(PaymentHandlersTest, CaptureOfTheWholeBalanceLeavesZero) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-dave", 500)), IsOk());
  EXPECT_EQ(Balance("c-dave"), 0);
  EXPECT_EQ(Payment("ord-1")->status, v1::PAYMENT_STATUS_CAPTURED);
}

TEST_F(PaymentHandlersTest, InsufficientFundsDeclinesAndKeepsTheBalance) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-dave", 1250)), IsOk());

  EXPECT_EQ(Balance("c-dave"), 500);
  std::optional<PaymentRow> payment = Payment("ord-1");
  ASSERT_TRUE(payment.has_value());
  EXPECT_EQ(payment->status, v1::PAYMENT_STATUS_DECLINED);
  EXPECT_EQ(payment->reason, "insufficient funds: balance 5.00 USD, order 12.50 USD");

  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].topic, "payments");
  EXPECT_EQ(out[0].event.type(), "payment.declined");
  EXPECT_EQ(out[0].event.key(), "ord-1");
  EXPECT_EQ(out[0].event.headers().at("causation_id"), "e-1");
  ev::PaymentDeclined declined;
  ASSERT_TRUE(declined.ParseFromString(out[0].event.data()));
  EXPECT_EQ(declined.order_id(), "ord-1");
  EXPECT_EQ(declined.customer_id(), "c-dave");
  EXPECT_EQ(declined.amount().amount_minor(), 1250);
  EXPECT_EQ(declined.reason(), "insufficient funds: balance 5.00 USD, order 12.50 USD");
}

TEST_F(PaymentHandlersTest, UnknownAccountDeclines) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-zed", 100)), IsOk());

  EXPECT_EQ(Payment("ord-1")->status, v1::PAYMENT_STATUS_DECLINED);
  EXPECT_EQ(Payment("ord-1")->reason, "unknown account c-zed");
  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(1));
  ev::PaymentDeclined declined;
  ASSERT_TRUE(declined.ParseFromString(out[0].event.data()));
  EXPECT_EQ(declined.reason(), "unknown account c-zed");
}

TEST_F(PaymentHandlersTest, TheSameEventTwiceHasOneEffect) {
  ev::Event created = Created("e-1", "ord-1", "c-alice", 1250);
  ASSERT_THAT(Handle(created), IsOk());
  ASSERT_THAT(Handle(created), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
  EXPECT_THAT(Outbox(), SizeIs(1));
  EXPECT_EQ(consumer_->stats().handled, 1u);
  EXPECT_EQ(consumer_->stats().duplicates, 1u);
  EXPECT_EQ(committed_, 1);
}

TEST_F(PaymentHandlersTest, TheSameEventTwiceInOneBatchHasOneEffect) {
  ev::Event created = Created("e-1", "ord-1", "c-alice", 1250);
  std::vector<TransactionalConsumer::Delivery> batch = {{&created, {1}}, {&created, {1}}};
  std::vector<absl::Status> statuses = HandleBatch(batch);
  ASSERT_THAT(statuses, SizeIs(2));
  EXPECT_THAT(statuses[0], IsOk());
  EXPECT_THAT(statuses[1], IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
  EXPECT_THAT(Outbox(), SizeIs(1));
}

TEST_F(PaymentHandlersTest, ASecondOrderCreatedForTheSameOrderIsIgnored) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-alice", 1250)), IsOk());
  // Re-published under another event id: the inbox cannot tell, the
  // payments table can.
  ASSERT_THAT(Handle(Created("e-2", "ord-1", "c-alice", 1250)), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
  EXPECT_THAT(Outbox(), SizeIs(1));
}

TEST_F(PaymentHandlersTest, CancelAfterCaptureRefundsExactlyOnce) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-bob", 2000)), IsOk());
  ev::Event cancel =
      Cancelled("e-2", "ord-1", "c-bob", "out of stock: sku KB-1 (wanted 2, 1 left)");
  ASSERT_THAT(Handle(cancel), IsOk());
  ASSERT_THAT(Handle(cancel), IsOk());                                       // redelivered
  ASSERT_THAT(Handle(Cancelled("e-3", "ord-1", "c-bob", "again")), IsOk());  // re-published

  EXPECT_EQ(Balance("c-bob"), 50000);
  std::optional<PaymentRow> payment = Payment("ord-1");
  EXPECT_EQ(payment->status, v1::PAYMENT_STATUS_REFUNDED);
  EXPECT_EQ(payment->reason, "out of stock: sku KB-1 (wanted 2, 1 left)");

  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_EQ(out[0].event.type(), "payment.captured");
  const ev::Event& e = out[1].event;
  EXPECT_EQ(out[1].topic, "payments");
  EXPECT_EQ(e.type(), "payment.refunded");
  EXPECT_EQ(e.key(), "ord-1");
  EXPECT_EQ(e.source(), "payment-service");
  EXPECT_EQ(e.headers().at("correlation_id"), "ord-1");
  EXPECT_EQ(e.headers().at("causation_id"), "e-2");
  ev::PaymentRefunded refunded;
  ASSERT_TRUE(refunded.ParseFromString(e.data()));
  EXPECT_EQ(refunded.order_id(), "ord-1");
  EXPECT_EQ(refunded.customer_id(), "c-bob");
  EXPECT_EQ(refunded.payment_id(), payment->payment_id);
  EXPECT_EQ(refunded.amount().amount_minor(), 2000);
  EXPECT_EQ(refunded.amount().currency(), "USD");
  EXPECT_EQ(refunded.reason(), "out of stock: sku KB-1 (wanted 2, 1 left)");
}

TEST_F(PaymentHandlersTest, CancelAfterDeclineDoesNothing) {
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-dave", 1250)), IsOk());
  ASSERT_THAT(Handle(Cancelled("e-2", "ord-1", "c-dave", "payment declined")), IsOk());

  EXPECT_EQ(Balance("c-dave"), 500);
  EXPECT_EQ(Payment("ord-1")->status, v1::PAYMENT_STATUS_DECLINED);
  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].event.type(), "payment.declined");
}

TEST_F(PaymentHandlersTest, CancelOfAnUnknownOrderDoesNothing) {
  ASSERT_THAT(Handle(Cancelled("e-1", "ord-404", "c-alice", "customer")), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000);
  EXPECT_FALSE(Payment("ord-404").has_value());
  EXPECT_THAT(Outbox(), SizeIs(0));
  EXPECT_EQ(consumer_->stats().handled, 1u);
}

TEST_F(PaymentHandlersTest, AnOrderCreatedReplayedAfterItsCancelChargesNothing) {
  // The order.created was dead-lettered here, the order timed out, and an
  // operator replays the order.created under a new event id.
  ASSERT_THAT(Handle(Cancelled("e-1", "ord-7", "c-alice", "timeout")), IsOk());
  ASSERT_THAT(Handle(Created("e-2", "ord-7", "c-alice", 1250)), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000);
  EXPECT_FALSE(Payment("ord-7").has_value());
  EXPECT_THAT(Outbox(), SizeIs(0));
  EXPECT_EQ(consumer_->stats().handled, 2u);
  // Only that order is closed.
  ASSERT_THAT(Handle(Created("e-3", "ord-8", "c-alice", 1250)), IsOk());
  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
}

TEST_F(PaymentHandlersTest, DeclineRateOneDeclinesEvenWhenFundsSuffice) {
  PaymentHandlers::Options options;
  options.decline_rate = 1;
  ASSERT_NO_FATAL_FAILURE(Init(options));
  ASSERT_THAT(Handle(Created("e-1", "ord-1", "c-alice", 1250)), IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000);
  EXPECT_EQ(Payment("ord-1")->status, v1::PAYMENT_STATUS_DECLINED);
  EXPECT_EQ(Payment("ord-1")->reason, "declined by fault injection");
  std::vector<OutboxRow> out = Outbox();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].event.type(), "payment.declined");
}

TEST_F(PaymentHandlersTest, AnEventWithoutOrderIdIsNackedAndLeavesNoTrace) {
  ev::Event created = Created("e-1", "", "c-alice", 1250);
  EXPECT_THAT(Handle(created), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id")));

  EXPECT_EQ(Balance("c-alice"), 100000);
  EXPECT_THAT(Outbox(), SizeIs(0));
  // Rolled back with the inbox claim: a fixed redelivery would be handled.
  EXPECT_EQ(consumer_->stats().failed, 1u);
  EXPECT_EQ(consumer_->stats().handled, 0u);
}

TEST_F(PaymentHandlersTest, APayloadThatDoesNotParseIsNacked) {
  ev::Event created = Created("e-1", "ord-1", "c-alice", 1250);
  created.set_data("\xff\xff\xff");
  EXPECT_THAT(Handle(created), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parse")));
  EXPECT_THAT(Outbox(), SizeIs(0));
}

TEST_F(PaymentHandlersTest, AFailingEventInABatchRollsBackOnlyItself) {
  ev::Event good = Created("e-1", "ord-1", "c-alice", 1250);
  ev::Event bad = Created("e-2", "", "c-bob", 100);
  ev::Event other = Created("e-3", "ord-3", "c-bob", 100);
  std::vector<TransactionalConsumer::Delivery> batch = {{&good, {1}}, {&bad, {1}}, {&other, {1}}};
  std::vector<absl::Status> statuses = HandleBatch(batch);
  ASSERT_THAT(statuses, SizeIs(3));
  EXPECT_THAT(statuses[0], IsOk());
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id")));
  EXPECT_THAT(statuses[2], IsOk());

  EXPECT_EQ(Balance("c-alice"), 100000 - 1250);
  EXPECT_EQ(Balance("c-bob"), 50000 - 100);
  EXPECT_THAT(Outbox(), SizeIs(2));
  EXPECT_EQ(committed_, 2);  // no log line for the rolled-back one
}

TEST_F(PaymentHandlersTest, TheLineOfAnEventRolledBackWithItsTransactionIsDropped) {
  ev::Event created = Created("e-1", "ord-1", "c-alice", 1250);
  // The handler applies it, then the transaction fails (as a failed COMMIT would).
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    ev::OrderCreated m;
    EXPECT_TRUE(m.ParseFromString(created.data()));
    if (absl::Status h = handlers_->OnOrderCreated(tx, m, created); !h.ok()) return h;
    return absl::AbortedError("commit failed");
  });
  ASSERT_THAT(s, StatusIs(absl::StatusCode::kAborted, HasSubstr("commit failed")));
  EXPECT_EQ(Balance("c-alice"), 100000);
  // The next event's handling drops the line of the rolled-back one.
  ASSERT_THAT(Handle(Created("e-2", "ord-2", "c-bob", 100)), IsOk());
  EXPECT_EQ(committed_, 1);
  EXPECT_FALSE(handlers_->Committed(created));
  // Redelivered, it is applied and its line written.
  ASSERT_THAT(Handle(created), IsOk());
  EXPECT_EQ(committed_, 2);
}

}  // namespace
}  // namespace relay::payment
