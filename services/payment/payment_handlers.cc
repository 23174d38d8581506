#include "services/payment/payment_handlers.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/store/outbox.h"
#include "common/trace.h"
#include "relay/events/v1/payment_events.pb.h"
#include "services/payment/payment_ledger.h"
#include "services/payment/payment_steps.h"
#include "services/payment/payment_store.h"

namespace relay::payment {
namespace {

namespace ev = relay::events::v1;
using relay::store::TransactionalConsumer;
using relay::store::Tx;

// The correlation id to log for `event` (its header, else the order id).
std::string Corr(const ev::Event& event, const std::string& order_id) {
  auto it = event.headers().find("correlation_id");
  return it == event.headers().end() || it->second.empty() ? order_id : it->second;
}

// Adds the event of `type` with `payload` about `order_id`, caused by
// `cause`, to the outbox of topic "payments". Returns its id.
absl::StatusOr<std::string> Emit(Tx& tx, absl::string_view type, const std::string& order_id,
                                 const ev::Event& cause,
                                 const google::protobuf::MessageLite& payload) {
  ev::Event out;
  out.set_type(std::string(type));
  out.set_key(order_id);
  out.set_source(std::string(kServiceName));
  auto& headers = *out.mutable_headers();
  headers["correlation_id"] = order_id;
  headers["causation_id"] = cause.id();
  // The order's trace goes on, as a new span of it (docs/OBSERVABILITY.md#trace-context).
  if (auto it = cause.headers().find(std::string(kTraceparentHeader));
      it != cause.headers().end()) {
    if (std::string child = ChildTraceparent(it->second); !child.empty()) {
      headers[std::string(kTraceparentHeader)] = std::move(child);
    }
  }
  if (!payload.SerializeToString(out.mutable_data())) {
    return absl::InternalError(
        absl::StrCat(type, " payload for order ", order_id, " does not serialize"));
  }
  return relay::store::Outbox::Add(tx, kPaymentsTopic, std::move(out));
}

ev::Money MoneyOf(int64_t amount_minor, const std::string& currency) {
  ev::Money m;
  m.set_amount_minor(amount_minor);
  m.set_currency(currency);
  return m;
}

}  // namespace

relay::events::Subscriber::Options PaymentSubscription() {
  relay::events::Subscriber::Options o;
  o.topic = std::string(kOrdersTopic);
  o.group = std::string(kConsumerGroup);
  o.start.set_earliest(true);
  return o;
}

PaymentHandlers::PaymentHandlers(Options options) : options_(std::move(options)) {}

void PaymentHandlers::Register(TransactionalConsumer& consumer) {
  consumer.On<ev::OrderCreated>(
      "order.created",
      [this](Tx& tx, const ev::OrderCreated& m, const Event& e,
             const TransactionalConsumer::DeliveryInfo&) { return OnOrderCreated(tx, m, e); });
  consumer.On<ev::OrderCancelled>(
      "order.cancelled",
      [this](Tx& tx, const ev::OrderCancelled& m, const Event& e,
             const TransactionalConsumer::DeliveryInfo&) { return OnOrderCancelled(tx, m, e); });
}

absl::Status PaymentHandlers::OnOrderCreated(Tx& tx, const ev::OrderCreated& order,
                                             const Event& event) {
  const std::string& order_id = order.order_id();
  if (order_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("order.created event ", event.id(), " has no order_id"));
  }
  absl::StatusOr<ChargeResult> charged =
      ChargeOrder(tx, {order_id, order.customer_id(), order.total()}, options_.decline_rate,
                  absl::ToUnixMicros(options_.now()));
  if (!charged.ok()) return charged.status();
  if (charged->closed) {
    // A replayed order.created whose order.cancelled came first: charging
    // now would take money no cancel gives back.
    Note(event.id(), [order_id, id = event.id(), corr = Corr(event, order_id)] {
      RELAY_LOG(Warn, "order.created for an order cancelled before it was charged: nothing charged",
                {{"order", order_id}, {"event", id}, {"corr", corr}});
    });
    return absl::OkStatus();
  }
  const PaymentRow& payment = charged->payment;
  if (charged->replayed) {
    // Another order.created for the same order (a re-publish under a new
    // event id, which the inbox cannot recognize): the first one decided.
    Note(event.id(),
         [order_id, payment = payment.payment_id, status = PaymentStatusName(payment.status),
          id = event.id(), corr = Corr(event, order_id)] {
           RELAY_LOG(Info, "duplicate order.created ignored",
                     {{"order", order_id},
                      {"payment", payment},
                      {"status", status},
                      {"event", id},
                      {"corr", corr}});
         });
    return absl::OkStatus();
  }

  if (payment.status != v1::PAYMENT_STATUS_CAPTURED) {
    ev::PaymentDeclined declined;
    declined.set_order_id(order_id);
    declined.set_customer_id(order.customer_id());
    *declined.mutable_amount() = order.total();
    declined.set_reason(payment.reason);
    absl::StatusOr<std::string> id = Emit(tx, "payment.declined", order_id, event, declined);
    if (!id.ok()) return id.status();
    Note(event.id(), [order_id, customer = order.customer_id(), amount = FormatMoney(order.total()),
                      reason = payment.reason, id = event.id(), corr = Corr(event, order_id)] {
      RELAY_LOG(Info, "payment declined",
                {{"order", order_id},
                 {"customer", customer},
                 {"amount", amount},
                 {"reason", reason},
                 {"event", id},
                 {"corr", corr}});
    });
    return absl::OkStatus();
  }

  ev::PaymentCaptured captured;
  captured.set_order_id(order_id);
  captured.set_customer_id(order.customer_id());
  captured.set_payment_id(payment.payment_id);
  *captured.mutable_amount() = order.total();
  absl::StatusOr<std::string> id = Emit(tx, "payment.captured", order_id, event, captured);
  if (!id.ok()) return id.status();
  Note(event.id(), [order_id, customer = order.customer_id(), amount = FormatMoney(order.total()),
                    left = FormatMoney(charged->balance_minor, payment.currency),
                    payment = payment.payment_id, id = event.id(), corr = Corr(event, order_id)] {
    RELAY_LOG(Info, "payment captured",
              {{"order", order_id},
               {"customer", customer},
               {"amount", amount},
               {"balance", left},
               {"payment", payment},
               {"event", id},
               {"corr", corr}});
  });
  return absl::OkStatus();
}

absl::Status PaymentHandlers::OnOrderCancelled(Tx& tx, const ev::OrderCancelled& cancel,
                                               const Event& event) {
  const std::string& order_id = cancel.order_id();
  if (order_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("order.cancelled event ", event.id(), " has no order_id"));
  }
  const std::string reason =
      cancel.reason().empty() ? std::string("order cancelled") : cancel.reason();
  absl::StatusOr<RefundResult> refund =
      RefundOrder(tx, order_id, reason, absl::ToUnixMicros(options_.now()));
  if (!refund.ok()) return refund.status();
  if (!refund->refunded) {
    Note(event.id(),
         [order_id,
          payment =
              refund->payment.has_value() ? PaymentStatusName(refund->payment->status) : "none",
          id = event.id(), corr = Corr(event, order_id)] {
           RELAY_LOG(Info, "no refund needed",
                     {{"order", order_id}, {"payment", payment}, {"event", id}, {"corr", corr}});
         });
    return absl::OkStatus();
  }
  const PaymentRow& payment = *refund->payment;
  ev::PaymentRefunded refunded;
  refunded.set_order_id(order_id);
  refunded.set_customer_id(payment.customer_id);
  refunded.set_payment_id(payment.payment_id);
  *refunded.mutable_amount() = MoneyOf(payment.amount_minor, payment.currency);
  refunded.set_reason(reason);
  absl::StatusOr<std::string> id = Emit(tx, "payment.refunded", order_id, event, refunded);
  if (!id.ok()) return id.status();
  Note(event.id(),
       [order_id, customer = payment.customer_id,
        amount = FormatMoney(payment.amount_minor, payment.currency),
        left = FormatMoney(refund->balance_minor, payment.currency), id = payment.payment_id,
        reason, event_id = event.id(), corr = Corr(event, order_id)] {
         RELAY_LOG(Info, "payment refunded",
                   {{"order", order_id},
                    {"customer", customer},
                    {"amount", amount},
                    {"balance", left},
                    {"payment", id},
                    {"reason", reason},
                    {"event", event_id},
                    {"corr", corr}});
       });
  return absl::OkStatus();
}

}  // namespace relay::payment
