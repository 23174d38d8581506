#include "tools/relayctl/event_format.h"

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.pb.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/events/v1/payment_events.pb.h"
#include "tests/testing/status_matchers.h"

namespace relay::ctl {
namespace {

namespace ev = relay::events::v1;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

ev::Money Usd(int64_t minor) {
  ev::Money m;
  m.set_amount_minor(minor);
  m.set_currency("USD");
  return m;
}

ev::Event EventOf(const std::string& type, const google::protobuf::Message& payload) {
  ev::Event e;
  e.set_id("e-1");
  e.set_type(type);
  e.set_topic("orders");
  e.set_key("o-1");
  e.set_offset(12);
  (*e.mutable_headers())["correlation_id"] = "o-1";
  *e.mutable_publish_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(1795732219229);
  e.set_data(payload.SerializeAsString());
  return e;
}

TEST(SummarizePayload, OrderEventsShowCustomerItemsTotalAndCause) {
  ev::OrderCreated created;
  created.set_order_id("o-1");
  created.set_customer_id("c-1");
  ev::OrderLine* line = created.add_lines();
  line->set_sku("KB-1");
  line->set_quantity(2);
  line = created.add_lines();
  line->set_sku("MS-1");
  line->set_quantity(1);
  *created.mutable_total() = Usd(2550);
  EXPECT_EQ(SummarizePayload(EventOf("order.created", created)),
            "customer=c-1 items=KB-1x2,MS-1x1 total=25.50 USD");

  ev::OrderCancelled cancelled;
  cancelled.set_cause(ev::CANCEL_CAUSE_OUT_OF_STOCK);
  cancelled.set_reason("out of stock: sku KB-1 (wanted 2, 1 left)");
  *cancelled.mutable_total() = Usd(2550);
  EXPECT_EQ(SummarizePayload(EventOf("order.cancelled", cancelled)),
            "cause=out_of_stock reason=\"out of stock: sku KB-1 (wanted 2, 1 left)\" "
            "total=25.50 USD");
}

TEST(SummarizePayload, InventoryAndPaymentEventsShowTheirKeyFields) {
  ev::StockRejected rejected;
  rejected.set_sku("KB-1");
  rejected.set_requested(2);
  rejected.set_available(1);
  rejected.set_reason("short");
  EXPECT_EQ(SummarizePayload(EventOf("stock.rejected", rejected)),
            "sku=KB-1 requested=2 available=1 reason=short");

  ev::PaymentDeclined declined;
  declined.set_customer_id("c-9");
  *declined.mutable_amount() = Usd(1250);
  declined.set_reason("unknown account c-9");
  EXPECT_EQ(SummarizePayload(EventOf("payment.declined", declined)),
            "customer=c-9 amount=12.50 USD reason=\"unknown account c-9\"");

  ev::PaymentCaptured captured;
  captured.set_payment_id("p-1");
  captured.set_customer_id("c-1");
  *captured.mutable_amount() = Usd(5);
  EXPECT_EQ(SummarizePayload(EventOf("payment.captured", captured)),
            "payment=p-1 customer=c-1 amount=0.05 USD");

  ev::ProductUpdated product;
  product.set_sku("KB-1");
  product.set_name("Keyboard \"Pro\"");
  *product.mutable_price() = Usd(4999);
  EXPECT_EQ(SummarizePayload(EventOf("product.updated", product)),
            "sku=KB-1 name=\"Keyboard \\\"Pro\\\"\" price=49.99 USD");
}

TEST(SummarizePayload, DeadLettersNameTheGroupAndTheOriginalEvent) {
  relay::broker::v1::DeadLetter letter;
  letter.set_group("payment-service");
  letter.mutable_event()->set_type("order.created");
  letter.mutable_event()->set_offset(7);
  letter.set_last_error("nack: db locked");
  letter.add_attempts()->set_attempt(1);
  letter.add_attempts()->set_attempt(2);
  EXPECT_EQ(SummarizePayload(EventOf("relay.dead_letter", letter)),
            "group=payment-service event=order.created offset=7 attempts=2 "
            "error=\"nack: db locked\"");
  // Too large for the log whole: written without the event's data, and
  // with the last attempts only.
  letter.set_event_trimmed(true);
  letter.set_attempts_omitted(3);
  EXPECT_EQ(SummarizePayload(EventOf("relay.dead_letter", letter)),
            "group=payment-service event=order.created offset=7 attempts=5 "
            "error=\"nack: db locked\" event_trimmed=true");
}

TEST(SummarizePayload, UnknownTypesAndBadBytesSaySo) {
  ev::Event e;
  e.set_type("thing.happened");
  e.set_data("abcd");
  EXPECT_EQ(SummarizePayload(e), "(4 bytes)");
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> decoded = DecodePayload(e);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, nullptr);
  e.set_type("order.created");
  e.set_data(std::string(64, 'd'));  // Not a protobuf message.
  EXPECT_EQ(SummarizePayload(e), "(undecodable 64 bytes)");
  EXPECT_THAT(DecodePayload(e), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("OrderCreated")));
}

TEST(FormatEventLine, ShowsWhereWhatAndWho) {
  ev::OrderConfirmed confirmed;
  confirmed.set_customer_id("c-1");
  *confirmed.mutable_total() = Usd(100);
  EXPECT_EQ(FormatEventLine(EventOf("order.confirmed", confirmed)),
            "2026-11-26T22:30:19.229Z  orders         12  order.confirmed    key=o-1  corr=o-1  "
            "customer=c-1 total=1.00 USD");
}

// An event's key, type and payload strings are the publisher's bytes:
// control characters are escaped, never sent to the terminal.
TEST(FormatEventLine, EscapesControlCharacters) {
  ev::OrderConfirmed confirmed;
  confirmed.set_customer_id("c\x1b]0;x\x07");
  *confirmed.mutable_total() = Usd(100);
  ev::Event e = EventOf("order.confirmed", confirmed);
  e.set_key("o\r1");
  const std::string line = FormatEventLine(e);
  EXPECT_THAT(line, HasSubstr("key=\"o\\r1\""));
  EXPECT_THAT(line, HasSubstr("customer=\"c\\x1b]0;x\\x07\""));
  EXPECT_EQ(line.find_first_of("\x1b\r\x07"), std::string::npos) << line;
}

// Table cells of what others wrote (relayctl trace's type and source,
// broker groups' type filters) escape the same bytes, without quoting.
TEST(Printable, EscapesControlCharactersOnly) {
  EXPECT_EQ(Printable("order.created"), "order.created");
  EXPECT_EQ(Printable("Mechanical keyboard"), "Mechanical keyboard");
  EXPECT_EQ(Printable("x\x1b]0;pwn\x07\n"), "x\\x1b]0;pwn\\x07\\n");
}

TEST(FormatDelta, ScalesItsUnit) {
  EXPECT_EQ(FormatDelta(absl::Microseconds(420)), "0.4ms");
  EXPECT_EQ(FormatDelta(absl::Microseconds(12345)), "12.3ms");
  EXPECT_EQ(FormatDelta(absl::Milliseconds(1204)), "1.204s");
  EXPECT_EQ(FormatDelta(absl::Milliseconds(123456)), "2m3.4s");
  EXPECT_EQ(FormatDelta(-absl::Milliseconds(5)), "-5.0ms");
}

TEST(FormatUtcTime, IsRfc3339WithMillisecondsLikeTheLogs) {
  EXPECT_EQ(FormatUtcTime(google::protobuf::util::TimeUtil::MillisecondsToTimestamp(1795732219229)),
            "2026-11-26T22:30:19.229Z");
  EXPECT_EQ(FormatUtcTime(google::protobuf::Timestamp()), "-");
}

TEST(EventToJsonValue, DecodesThePayloadInPlaceOfTheBytes) {
  ev::StockReserved reserved;
  reserved.set_order_id("o-1");
  ev::StockLine* line = reserved.add_lines();
  line->set_sku("KB-1");
  line->set_quantity(2);
  std::string json = ToJson(EventToJsonValue(EventOf("stock.reserved", reserved)), false);
  EXPECT_THAT(json, HasSubstr("\"payload\":{"));
  EXPECT_THAT(json, HasSubstr("\"sku\":\"KB-1\""));
  EXPECT_THAT(json, HasSubstr("\"correlation_id\":\"o-1\""));
  EXPECT_THAT(json, HasSubstr("\"summary\":\"items=KB-1x2\""));
  EXPECT_THAT(json, Not(HasSubstr("\"data\"")));

  ev::Event unknown;
  unknown.set_type("thing.happened");
  unknown.set_data("abc");
  json = ToJson(EventToJsonValue(unknown), false);
  EXPECT_THAT(json, HasSubstr("\"data\":\"YWJj\""));
}

TEST(CancelCauseName, IsShortAndLowercase) {
  EXPECT_EQ(CancelCauseName(ev::CANCEL_CAUSE_PAYMENT_DECLINED), "payment_declined");
  EXPECT_EQ(CancelCauseName(ev::CANCEL_CAUSE_UNSPECIFIED), "unspecified");
}

}  // namespace
}  // namespace relay::ctl
