#include "services/order/order_manager.h"

#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/text.h"
#include "common/trace.h"
#include "google/protobuf/util/time_util.h"
#include "relay/events/v1/order_events.pb.h"
#include "services/order/order_metrics.h"
#include "services/order/order_store.h"
#include "services/order/order_validation.h"
#include "services/order/request_fingerprint.h"

namespace relay::order {
namespace {

using google::protobuf::util::TimeUtil;
using store::Tx;

// Orders placed in one transaction at most (group commit).
constexpr size_t kMaxPlaceBatch = 256;
constexpr char kTopic[] = "orders";
constexpr char kSource[] = "order-service";

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

std::string Money(const events::v1::Money& m) {
  int64_t a = m.amount_minor();
  return absl::StrCat(a / 100, ".", std::string(a % 100 < 10 ? "0" : ""), a % 100, " ",
                      m.currency());
}

// An event of this service about `order`, keyed and correlated by its id.
events::v1::Event OrderEvent(const v1::Order& order, const std::string& type,
                             const google::protobuf::Message& payload,
                             const std::string& causation_id) {
  events::v1::Event e;
  e.set_id(NewEventId());
  e.set_type(type);
  e.set_key(order.order_id());
  e.set_source(kSource);
  (*e.mutable_headers())["correlation_id"] = order.order_id();
  if (!causation_id.empty()) (*e.mutable_headers())["causation_id"] = causation_id;
  // One trace per order, its id the order id's 128 bits, so that every
  // event the order causes carries it and `relayctl trace` takes either
  // (docs/OBSERVABILITY.md#trace-context).
  if (std::optional<std::string> trace = IdBitsHex(order.order_id()); trace.has_value()) {
    (*e.mutable_headers())[std::string(kTraceparentHeader)] =
        FormatTraceparent({*trace, NewSpanId(), "01"});
  }
  e.set_data(payload.SerializeAsString());
  return e;
}

}  // namespace

OrderManager::OrderManager(store::Database* db, store::OutboxRelay* relay, WatchHub* hub,
                           std::function<absl::Time()> clock, bool publish_events)
    : db_(db),
      relay_(relay),
      hub_(hub),
      clock_(std::move(clock)),
      publish_events_(publish_events),
      pending_metric_(std::make_unique<PendingOrdersCollector>(db)),
      place_thread_([this] { PlaceLoop(); }) {}

OrderManager::~OrderManager() { Stop(); }

void OrderManager::AfterCommit(const std::string& order_id) {
  if (relay_ != nullptr) relay_->Wake();
  if (hub_ != nullptr) hub_->Changed(order_id);
}

absl::Status OrderManager::PlaceInTx(Tx& tx, const v1::PlaceOrderRequest& request,
                                     PlaceResult* result) {
  const std::string fingerprint = PlaceRequestFingerprint(request);
  if (!request.idempotency_key().empty()) {
    absl::StatusOr<std::optional<KeyedOrder>> existing =
        OrderStore::GetByIdempotencyKey(tx, request.customer_id(), request.idempotency_key());
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) {
      KeyedOrder& found = **existing;
      const std::string& first = found.request_fingerprint.empty() ? OrderFingerprint(found.order)
                                                                   : found.request_fingerprint;
      if (first != fingerprint) {
        // As payment APIs do: a silent replay would answer a request that
        // was never carried out.
        return absl::FailedPreconditionError(
            absl::StrCat("idempotency_key was already used for a different request (order ",
                         found.order.order_id(), "); use a new key for a new order"));
      }
      result->order = std::move(found.order);
      result->replayed = true;
      return absl::OkStatus();
    }
  }
  v1::Order& order = result->order;
  order.set_order_id(NewId("ord"));
  order.set_customer_id(request.customer_id());
  order.set_status(v1::ORDER_STATUS_PENDING);
  order.set_idempotency_key(request.idempotency_key());
  std::string currency;
  int64_t total = 0;
  for (const auto& item : request.items()) {
    absl::StatusOr<std::optional<CatalogEntry>> product = OrderStore::GetProduct(tx, item.sku());
    if (!product.ok()) return product.status();
    if (!product->has_value()) {
      absl::StatusOr<int64_t> size = OrderStore::CatalogSize(tx);
      if (size.ok() && *size == 0) {
        return absl::UnavailableError(
            "the catalog is still empty: no product.updated event has arrived from "
            "inventory-service yet (is the broker up?)");
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown sku ", Excerpt(item.sku())));
    }
    const CatalogEntry& p = **product;
    if (currency.empty()) currency = p.price.currency();
    if (p.price.currency() != currency) {
      return absl::InvalidArgumentError(absl::StrCat("sku ", Excerpt(item.sku()), " is priced in ",
                                                     p.price.currency(), ", the order in ",
                                                     currency));
    }
    if (p.price.amount_minor() > 0 &&
        item.quantity() > (std::numeric_limits<int64_t>::max() - total) / p.price.amount_minor()) {
      return absl::InvalidArgumentError("the order total overflows");
    }
    total += p.price.amount_minor() * item.quantity();
    events::v1::OrderLine* line = order.add_lines();
    line->set_sku(item.sku());
    line->set_quantity(item.quantity());
    *line->mutable_unit_price() = p.price;
    line->set_name(p.name);
  }
  order.mutable_total()->set_amount_minor(total);
  order.mutable_total()->set_currency(currency);
  *order.mutable_created_at() = ToProto(clock_());
  *order.mutable_updated_at() = order.created_at();
  if (absl::Status s = OrderStore::Insert(tx, order, fingerprint); !s.ok()) return s;
  if (!publish_events_) return absl::OkStatus();

  events::v1::OrderCreated created;
  created.set_order_id(order.order_id());
  created.set_customer_id(order.customer_id());
  *created.mutable_lines() = order.lines();
  *created.mutable_total() = order.total();
  return store::Outbox::Add(tx, kTopic, OrderEvent(order, "order.created", created, "")).status();
}

void OrderManager::ReportPlaced(const PlaceResult& result) {
  const v1::Order& o = result.order;
  if (result.replayed) {
    RELAY_LOG(Info, "order replayed (same idempotency key)",
              {{"order", o.order_id()}, {"key", o.idempotency_key()}});
    return;
  }
  AfterCommit(o.order_id());
  CountPlaced();
  std::vector<std::string> items;
  for (const auto& l : o.lines()) items.push_back(absl::StrCat(l.sku(), "x", l.quantity()));
  RELAY_LOG(Info, "order placed",
            {{"order", o.order_id()},
             {"customer", o.customer_id()},
             {"items", absl::StrJoin(items, ",")},
             {"total", Money(o.total())},
             {"corr", o.order_id()}});
}

void OrderManager::PlaceAsync(const v1::PlaceOrderRequest& request, PlaceDone done,
                              absl::Time deadline) {
  if (absl::Status s = ValidatePlaceOrder(request); !s.ok()) {
    done(s);
    return;
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&place_mu_);
    if (place_stopping_) {
      refused = absl::UnavailableError("order-service is shutting down");
    } else if (place_queue_.size() >= kMaxQueuedPlaces) {
      // The database is stalled or the load past what it commits: say so
      // rather than hold requests without end.
      refused = absl::ResourceExhaustedError(
          absl::StrCat("order-service has ", place_queue_.size(),
                       " orders waiting to be stored (the limit); try again later"));
    } else {
      place_queue_.push_back(PendingPlace{request, std::move(done), deadline});
      return;
    }
  }
  done(refused);
}

absl::StatusOr<OrderManager::PlaceResult> OrderManager::Place(
    const v1::PlaceOrderRequest& request) {
  absl::StatusOr<PlaceResult> out = absl::UnknownError("not answered");
  absl::Notification answered;
  PlaceAsync(request, [&](absl::StatusOr<PlaceResult> r) {
    out = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  return out;
}

void OrderManager::PlaceLoop() {
  while (true) {
    std::vector<PendingPlace> batch;
    {
      absl::MutexLock lock(&place_mu_);
      auto ready = [this] {
        place_mu_.AssertHeld();
        return place_stopping_ || !place_queue_.empty();
      };
      place_mu_.Await(absl::Condition(&ready));
      if (place_queue_.empty()) return;  // stopping, nothing left
      size_t n = std::min(place_queue_.size(), kMaxPlaceBatch);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(place_queue_.front()));
        place_queue_.pop_front();
      }
    }
    // Group commit: one transaction (one fsync) for every order waiting,
    // each in its own savepoint so a failing one rolls back alone.
    std::vector<absl::Status> statuses(batch.size());
    std::vector<PlaceResult> results(batch.size());
    absl::Status committed = db_->Transaction([&](Tx& tx) -> absl::Status {
      // Looked at here, once the database is ours: waiting for it is where
      // a stall holds the orders.
      const absl::Time now = absl::Now();
      for (size_t i = 0; i < batch.size(); ++i) {
        if (now >= batch[i].deadline) {
          // The caller is gone: nobody would learn of the order but the
          // customer's account.
          statuses[i] = absl::DeadlineExceededError(
              "the order waited past its deadline to be stored; nothing was placed");
          continue;
        }
        statuses[i] =
            tx.Savepoint([&](Tx& sp) { return PlaceInTx(sp, batch[i].request, &results[i]); });
        if (!tx.in_transaction()) {
          return statuses[i].ok() ? absl::InternalError("the transaction ended unexpectedly")
                                  : statuses[i];
        }
      }
      return absl::OkStatus();
    });
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!committed.ok() && statuses[i].ok()) {
        batch[i].done(committed);
      } else if (!statuses[i].ok()) {
        batch[i].done(statuses[i]);
      } else {
        ReportPlaced(results[i]);
        batch[i].done(std::move(results[i]));
      }
    }
  }
}

void OrderManager::Stop() {
  {
    absl::MutexLock lock(&place_mu_);
    place_stopping_ = true;
  }
  if (place_thread_.joinable()) place_thread_.join();
}

absl::StatusOr<v1::Order> OrderManager::Cancel(const std::string& order_id,
                                               const std::string& reason) {
  if (order_id.empty()) return absl::InvalidArgumentError("order_id is required");
  v1::Order order;
  SagaOutcome outcome = SagaOutcome::kNone;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, order_id);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError(absl::StrCat("no order ", Excerpt(order_id)));
    order = std::move(**got);
    absl::StatusOr<SagaOutcome> o = ApplySagaInput(order, SagaInput::kCustomerCancel, reason);
    if (!o.ok()) return o.status();
    outcome = *o;
    return Persist(tx, order, outcome, "");
  });
  if (!s.ok()) return s;
  if (outcome == SagaOutcome::kCancelled) {
    AfterCommit(order_id);
    CountEnded(order, clock_());
    RELAY_LOG(Info, "order cancelled",
              {{"order", order_id}, {"reason", order.cancel_reason()}, {"corr", order_id}});
  }
  return order;
}

absl::StatusOr<v1::Order> OrderManager::Get(const std::string& order_id) {
  if (order_id.empty()) return absl::InvalidArgumentError("order_id is required");
  v1::Order order;
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, order_id);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError(absl::StrCat("no order ", Excerpt(order_id)));
    order = std::move(**got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return order;
}

absl::StatusOr<int> OrderManager::CancelTimedOut(absl::Duration timeout, int limit) {
  std::vector<v1::Order> cancelled;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    cancelled.clear();  // a retried transaction starts over
    absl::StatusOr<std::vector<std::string>> ids =
        OrderStore::PendingCreatedBefore(tx, clock_() - timeout, limit);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, id);
      if (!got.ok()) return got.status();
      if (!got->has_value()) continue;
      v1::Order order = std::move(**got);
      std::vector<std::string> missing;
      if (!order.stock_reserved()) missing.push_back("inventory");
      if (!order.payment_captured()) missing.push_back("payment");
      absl::StatusOr<SagaOutcome> outcome =
          ApplySagaInput(order, SagaInput::kTimeout,
                         absl::StrCat("no outcome from ", absl::StrJoin(missing, " and "),
                                      " within ", absl::FormatDuration(timeout)));
      if (!outcome.ok()) return outcome.status();
      if (absl::Status p = Persist(tx, order, *outcome, ""); !p.ok()) return p;
      if (*outcome == SagaOutcome::kCancelled) cancelled.push_back(std::move(order));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const v1::Order& order : cancelled) {
    AfterCommit(order.order_id());
    CountEnded(order, clock_());
    RELAY_LOG(Warn, "order cancelled",
              {{"order", order.order_id()},
               {"on", "saga timeout"},
               {"status", StatusName(order.status())},
               {"reason", order.cancel_reason()},
               {"corr", order.order_id()}});
    if (timed_out_listener_) timed_out_listener_(order);
  }
  return static_cast<int>(cancelled.size());
}

absl::StatusOr<v1::Order> OrderManager::Decide(const std::string& order_id,
                                               const std::vector<DirectOutcome>& outcomes) {
  v1::Order order;
  SagaOutcome final_outcome = SagaOutcome::kNone;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    final_outcome = SagaOutcome::kNone;  // a retried transaction starts over
    absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, order_id);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError(absl::StrCat("no order ", Excerpt(order_id)));
    order = std::move(**got);
    for (const DirectOutcome& o : outcomes) {
      absl::StatusOr<SagaOutcome> step = ApplySagaInput(order, o.input, o.reason);
      if (!step.ok()) return step.status();
      // A terminal outcome is the one to store and report; later inputs
      // only record late facts on it.
      if (*step == SagaOutcome::kConfirmed || *step == SagaOutcome::kCancelled ||
          final_outcome == SagaOutcome::kNone) {
        if (*step != SagaOutcome::kNone) final_outcome = *step;
      }
    }
    return Persist(tx, order, final_outcome, "");
  });
  if (!s.ok()) return s;
  if (final_outcome != SagaOutcome::kNone) AfterCommit(order_id);
  if (final_outcome == SagaOutcome::kConfirmed || final_outcome == SagaOutcome::kCancelled) {
    CountEnded(order, clock_());
    RELAY_LOG(Info,
              final_outcome == SagaOutcome::kConfirmed ? "order confirmed" : "order cancelled",
              {{"order", order_id},
               {"on", "direct calls"},
               {"status", StatusName(order.status())},
               {"reason", order.cancel_reason()},
               {"corr", order_id}});
  }
  return order;
}

absl::StatusOr<v1::ListOrdersResponse> OrderManager::List(const v1::ListOrdersRequest& request) {
  v1::ListOrdersResponse response;
  absl::Status s = db_->Read([&](Tx& tx) { return OrderStore::List(tx, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::Status OrderManager::Persist(Tx& tx, v1::Order& order, SagaOutcome outcome,
                                   const std::string& causation_id) {
  if (outcome == SagaOutcome::kNone) return absl::OkStatus();
  *order.mutable_updated_at() = ToProto(clock_());
  if (absl::Status s = OrderStore::Update(tx, order); !s.ok()) return s;
  if (!publish_events_) return absl::OkStatus();
  if (outcome == SagaOutcome::kConfirmed) {
    events::v1::OrderConfirmed confirmed;
    confirmed.set_order_id(order.order_id());
    confirmed.set_customer_id(order.customer_id());
    *confirmed.mutable_lines() = order.lines();
    *confirmed.mutable_total() = order.total();
    return store::Outbox::Add(tx, kTopic,
                              OrderEvent(order, "order.confirmed", confirmed, causation_id))
        .status();
  }
  if (outcome == SagaOutcome::kCancelled) {
    events::v1::OrderCancelled cancelled;
    cancelled.set_order_id(order.order_id());
    cancelled.set_customer_id(order.customer_id());
    cancelled.set_cause(order.cancel_cause());
    cancelled.set_reason(order.cancel_reason());
    *cancelled.mutable_lines() = order.lines();
    *cancelled.mutable_total() = order.total();
    return store::Outbox::Add(tx, kTopic,
                              OrderEvent(order, "order.cancelled", cancelled, causation_id))
        .status();
  }
  return absl::OkStatus();
}

namespace {
// Writes the line now, or once the transaction commits.
void LogWhenCommitted(services::PendingLogLines* lines, const events::v1::Event& cause,
                      std::function<void()> line) {
  if (lines == nullptr) {
    line();
  } else {
    lines->Note(cause.id(), std::move(line));
  }
}
}  // namespace

absl::Status OrderManager::ApplyOutcome(Tx& tx, const std::string& order_id, SagaInput input,
                                        const std::string& reason, const events::v1::Event& cause,
                                        services::PendingLogLines* lines) {
  absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, order_id);
  if (!got.ok()) return got.status();
  if (!got->has_value()) {
    // Not ours (another deployment's order, or a lost database): nothing to
    // decide. Acked so it does not block the key.
    LogWhenCommitted(lines, cause, [order_id, type = cause.type(), event = cause.id()] {
      RELAY_LOG(Warn, "event for an unknown order ignored",
                {{"order", order_id}, {"type", type}, {"event", event}});
    });
    return absl::OkStatus();
  }
  v1::Order order = std::move(**got);
  absl::StatusOr<SagaOutcome> outcome = ApplySagaInput(order, input, reason);
  if (!outcome.ok()) return outcome.status();
  if (absl::Status s = Persist(tx, order, *outcome, cause.id()); !s.ok()) return s;
  if (hub_ != nullptr && *outcome != SagaOutcome::kNone) hub_->Changed(order_id);

  const char* what = "order unchanged (duplicate or late)";
  switch (*outcome) {
    case SagaOutcome::kConfirmed:
      what = "order confirmed";
      break;
    case SagaOutcome::kCancelled:
      what = "order cancelled";
      break;
    case SagaOutcome::kUpdated:
      what = order.status() == v1::ORDER_STATUS_PENDING ? "order waiting for the other outcome"
                                                        : "late outcome recorded on ended order";
      break;
    case SagaOutcome::kNone:
      break;
  }
  const bool ended = *outcome == SagaOutcome::kConfirmed || *outcome == SagaOutcome::kCancelled;
  LogWhenCommitted(
      lines, cause,
      [what, order_id, on = cause.type(), status = StatusName(order.status()),
       reason = order.cancel_reason(), event = cause.id(),
       ended_order = ended ? std::make_optional(order) : std::nullopt, now = clock_()] {
        if (ended_order.has_value()) CountEnded(*ended_order, now);
        RELAY_LOG(Info, what,
                  {{"order", order_id},
                   {"on", on},
                   {"status", status},
                   {"reason", reason},
                   {"event", event},
                   {"corr", order_id}});
      });
  return absl::OkStatus();
}

void OrderManager::RegisterCatalogHandler(store::TransactionalConsumer& consumer,
                                          services::PendingLogLines* lines) {
  consumer.On<events::v1::ProductUpdated>(
      "product.updated",
      [this, lines](Tx& tx, const events::v1::ProductUpdated& p, const events::v1::Event& e,
                    const events::DeliveryInfo&) -> absl::Status {
        if (p.sku().empty() || p.price().currency().empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("product.updated ", e.id(), " lacks a sku or a currency"));
        }
        if (absl::Status s = OrderStore::UpsertProduct(tx, p, clock_()); !s.ok()) return s;
        LogWhenCommitted(
            lines, e, [sku = p.sku(), name = p.name(), price = Money(p.price()), event = e.id()] {
              RELAY_LOG(Info, "catalog updated",
                        {{"sku", sku}, {"name", name}, {"price", price}, {"event", event}});
            });
        return absl::OkStatus();
      });
}

void OrderManager::RegisterInventoryHandlers(store::TransactionalConsumer& consumer,
                                             services::PendingLogLines* lines) {
  RegisterCatalogHandler(consumer, lines);
  consumer.On<events::v1::StockReserved>(
      "stock.reserved", [this, lines](Tx& tx, const events::v1::StockReserved& m,
                                      const events::v1::Event& e, const events::DeliveryInfo&) {
        return ApplyOutcome(tx, m.order_id(), SagaInput::kStockReserved, "", e, lines);
      });
  consumer.On<events::v1::StockRejected>(
      "stock.rejected", [this, lines](Tx& tx, const events::v1::StockRejected& m,
                                      const events::v1::Event& e, const events::DeliveryInfo&) {
        return ApplyOutcome(tx, m.order_id(), SagaInput::kStockRejected, m.reason(), e, lines);
      });
}

void OrderManager::RegisterPaymentHandlers(store::TransactionalConsumer& consumer,
                                           services::PendingLogLines* lines) {
  consumer.On<events::v1::PaymentCaptured>(
      "payment.captured", [this, lines](Tx& tx, const events::v1::PaymentCaptured& m,
                                        const events::v1::Event& e, const events::DeliveryInfo&) {
        return ApplyOutcome(tx, m.order_id(), SagaInput::kPaymentCaptured, "", e, lines);
      });
  consumer.On<events::v1::PaymentDeclined>(
      "payment.declined", [this, lines](Tx& tx, const events::v1::PaymentDeclined& m,
                                        const events::v1::Event& e, const events::DeliveryInfo&) {
        return ApplyOutcome(tx, m.order_id(), SagaInput::kPaymentDeclined,
                            absl::StrCat("payment declined: ", m.reason()), e, lines);
      });
}

}  // namespace relay::order
