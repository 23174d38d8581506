#include "services/inventory/inventory_service.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/text.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/inventory_validation.h"
#include "services/inventory/stock_ledger.h"
#include "services/inventory/stock_steps.h"

namespace relay::inventory {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& s) {
  // The default reactor belongs to gRPC; it is done with it after Finish().
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

std::string Price(const v1::Product& p) {
  return FormatMoney(p.price().amount_minor(), p.price().currency());
}

// Runs one stock step (CommitOrder, ReleaseOrder) for `order_id` in one
// transaction; the lines it moved, also added to `response`.
absl::StatusOr<std::vector<events::v1::StockLine>> MoveHeldStock(
    store::Database* db,
    absl::StatusOr<std::vector<events::v1::StockLine>> (*step)(store::Tx&, const std::string&,
                                                               absl::Time),
    const std::string& order_id, v1::StockChangeResponse* response) {
  std::vector<events::v1::StockLine> moved;
  absl::Status s = db->Transaction([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::vector<events::v1::StockLine>> r = step(tx, order_id, absl::Now());
    if (!r.ok()) return r.status();
    moved = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const events::v1::StockLine& l : moved) *response->add_lines() = l;
  return moved;
}

}  // namespace

InventoryServiceImpl::InventoryServiceImpl(store::Database* db, store::OutboxRelay* relay,
                                           absl::Duration debug_delay)
    : db_(db), relay_(relay), debug_delay_(debug_delay) {}

grpc::ServerUnaryReactor* InventoryServiceImpl::AfterDebugDelay(
    grpc::CallbackServerContext* context, std::function<absl::Status()> body) {
  if (debug_delay_ <= absl::ZeroDuration()) return Finish(context, body());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Owned by its own callback: deleting an alarm inside its callback is
  // safe (gRPC holds a reference until the callback returns). The body
  // runs even when the caller gave up meanwhile, as a slow server's would.
  auto* alarm = new grpc::Alarm;
  alarm->Set(absl::ToChronoTime(absl::Now() + debug_delay_),
             [reactor, alarm, body = std::move(body)](bool fired) {
               reactor->Finish(fired ? ToGrpcStatus(body())
                                     : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                    "inventory-service is shutting down"));
               delete alarm;
             });
  return reactor;
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ReserveStock(grpc::CallbackServerContext* context,
                                                             const v1::ReserveStockRequest* request,
                                                             v1::ReserveStockResponse* response) {
  return AfterDebugDelay(context,
                         [this, request, response] { return DoReserveStock(*request, response); });
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ReleaseStock(grpc::CallbackServerContext* context,
                                                             const v1::ReleaseStockRequest* request,
                                                             v1::StockChangeResponse* response) {
  return AfterDebugDelay(context,
                         [this, request, response] { return DoReleaseStock(*request, response); });
}

grpc::ServerUnaryReactor* InventoryServiceImpl::CommitStock(grpc::CallbackServerContext* context,
                                                            const v1::CommitStockRequest* request,
                                                            v1::StockChangeResponse* response) {
  return AfterDebugDelay(context,
                         [this, request, response] { return DoCommitStock(*request, response); });
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ListProducts(grpc::CallbackServerContext* context,
                                                             const v1::ListProductsRequest*,
                                                             v1::ListProductsResponse* response) {
  return Finish(context, DoListProducts(response));
}

grpc::ServerUnaryReactor* InventoryServiceImpl::GetStock(grpc::CallbackServerContext* context,
                                                         const v1::GetStockRequest* request,
                                                         v1::Product* response) {
  return Finish(context, DoGetStock(*request, response));
}

grpc::ServerUnaryReactor* InventoryServiceImpl::SetStock(grpc::CallbackServerContext* context,
                                                         const v1::SetStockRequest* request,
                                                         v1::Product* response) {
  return Finish(context, DoSetStock(*request, response));
}

grpc::ServerUnaryReactor* InventoryServiceImpl::Restock(grpc::CallbackServerContext* context,
                                                        const v1::RestockRequest* request,
                                                        v1::Product* response) {
  return Finish(context, DoRestock(*request, response));
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ListReservations(
    grpc::CallbackServerContext* context, const v1::ListReservationsRequest* request,
    v1::ListReservationsResponse* response) {
  return Finish(context, DoListReservations(*request, response));
}

absl::Status InventoryServiceImpl::DoListProducts(v1::ListProductsResponse* response) {
  return db_->Read([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::vector<v1::Product>> products = InventoryStore::ListProducts(tx);
    if (!products.ok()) return products.status();
    for (v1::Product& p : *products) *response->add_products() = std::move(p);
    return absl::OkStatus();
  });
}

absl::Status InventoryServiceImpl::DoGetStock(const v1::GetStockRequest& request,
                                              v1::Product* response) {
  if (absl::Status s = ValidateGetStock(request); !s.ok()) return s;
  return db_->Read([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<v1::Product>> p = InventoryStore::GetProduct(tx, request.sku());
    if (!p.ok()) return p.status();
    if (!p->has_value())
      return absl::NotFoundError(absl::StrCat("unknown sku ", Excerpt(request.sku())));
    *response = **p;
    return absl::OkStatus();
  });
}

absl::Status InventoryServiceImpl::DoSetStock(const v1::SetStockRequest& request,
                                              v1::Product* response) {
  if (absl::Status s = ValidateSetStock(request); !s.ok()) return s;
  SetStockPlan plan;
  int64_t was = 0;
  std::string event_id;
  absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<v1::Product>> current =
        InventoryStore::GetProduct(tx, request.sku());
    if (!current.ok()) return current.status();
    absl::StatusOr<SetStockPlan> planned = PlanSetStock(*current, request);
    if (!planned.ok()) return planned.status();
    plan = std::move(*planned);
    was = current->has_value() ? (*current)->on_hand() : 0;
    const absl::Time now = absl::Now();
    absl::Status written = plan.created ? InventoryStore::InsertProduct(tx, plan.product, now)
                                        : InventoryStore::UpdateProduct(tx, plan.product, now);
    if (!written.ok()) return written;
    if (!plan.catalog_changed) return absl::OkStatus();
    absl::StatusOr<std::string> id =
        store::Outbox::Add(tx, kInventoryTopic, ProductUpdatedEvent(plan.product));
    if (!id.ok()) return id.status();
    event_id = *id;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!event_id.empty() && relay_ != nullptr) relay_->Wake();
  const v1::Product& p = plan.product;
  if (plan.created) {
    RELAY_LOG(Info, "product created",
              {{"sku", p.sku()},
               {"name", p.name()},
               {"price", Price(p)},
               {"on_hand", absl::StrCat(p.on_hand())},
               {"event", event_id}});
  } else if (plan.catalog_changed) {
    RELAY_LOG(Info, "product updated",
              {{"sku", p.sku()},
               {"name", p.name()},
               {"price", Price(p)},
               {"on_hand", absl::StrCat(p.on_hand())},
               {"was", absl::StrCat(was)},
               {"event", event_id}});
  } else {
    RELAY_LOG(Info, "stock set",
              {{"sku", p.sku()},
               {"on_hand", absl::StrCat(p.on_hand())},
               {"was", absl::StrCat(was)},
               {"reserved", absl::StrCat(p.reserved())}});
  }
  *response = p;
  return absl::OkStatus();
}

absl::Status InventoryServiceImpl::DoRestock(const v1::RestockRequest& request,
                                             v1::Product* response) {
  if (absl::Status s = ValidateRestock(request); !s.ok()) return s;
  if (request.quantity() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("restock quantity must be > 0 for sku ",
                                                   Excerpt(request.sku()), ", got ",
                                                   request.quantity()));
  }
  absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<v1::Product>> current =
        InventoryStore::GetProduct(tx, request.sku());
    if (!current.ok()) return current.status();
    if (!current->has_value()) {
      return absl::NotFoundError(absl::StrCat("unknown sku ", Excerpt(request.sku())));
    }
    v1::Product p = **current;
    StockLevel level{p.on_hand(), p.reserved()};
    if (absl::Status checked = CheckRestock(p.sku(), level, request.quantity()); !checked.ok()) {
      return checked;
    }
    level.on_hand += request.quantity();
    if (absl::Status written = InventoryStore::SetLevel(tx, p.sku(), level, absl::Now());
        !written.ok()) {
      return written;
    }
    p.set_on_hand(level.on_hand);
    p.set_available(level.available());
    *response = p;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  RELAY_LOG(Info, "stock restocked",
            {{"sku", response->sku()},
             {"added", absl::StrCat(request.quantity())},
             {"on_hand", absl::StrCat(response->on_hand())},
             {"available", absl::StrCat(response->available())}});
  return absl::OkStatus();
}

absl::Status InventoryServiceImpl::DoListReservations(const v1::ListReservationsRequest& request,
                                                      v1::ListReservationsResponse* response) {
  if (absl::Status s = ValidateListReservations(request); !s.ok()) return s;
  if (request.limit() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be >= 0 (0: the default ",
                                                   kDefaultLimit, "), got ", request.limit()));
  }
  ReservationFilter filter;
  filter.order_id = request.order_id();
  filter.held_only = request.held_only();
  filter.limit = request.limit() == 0 ? kDefaultLimit : std::min(request.limit(), kMaxLimit);
  return db_->Read([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<std::vector<v1::Reservation>> rows =
        InventoryStore::ListReservations(tx, filter);
    if (!rows.ok()) return rows.status();
    for (v1::Reservation& r : *rows) *response->add_reservations() = std::move(r);
    return absl::OkStatus();
  });
}

absl::Status InventoryServiceImpl::DoReserveStock(const v1::ReserveStockRequest& request,
                                                  v1::ReserveStockResponse* response) {
  if (absl::Status s = ValidateReserveStock(request); !s.ok()) return s;
  const std::string& order_id = request.order_id();
  std::vector<events::v1::StockLine> lines(request.lines().begin(), request.lines().end());
  ReserveResult result;
  absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<ReserveResult> r = ReserveOrder(tx, order_id, lines, absl::Now());
    if (!r.ok()) return r.status();
    result = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (result.closed) {
    response->set_replayed(true);
    response->set_state(v1::RESERVATION_STATE_RELEASED);
    response->set_reason("the order was released before it was reserved");
    RELAY_LOG(Warn, "reserve for an order released before it was reserved: nothing held",
              {{"order", order_id}, {"via", "ReserveStock"}, {"corr", order_id}});
    return absl::OkStatus();
  }
  if (result.replayed) {
    // One state per order: the steps move all of an order's rows together.
    const v1::ReservationState state = result.existing.front().state;
    response->set_replayed(true);
    response->set_state(state);
    response->set_reserved(state != v1::RESERVATION_STATE_RELEASED);
    for (const ReservationRow& row : result.existing) {
      events::v1::StockLine* line = response->add_lines();
      line->set_sku(row.sku);
      line->set_quantity(static_cast<int32_t>(row.quantity));
    }
    if (!response->reserved()) response->set_reason("the order's reservation was released");
    RELAY_LOG(Info, "stock already decided for this order, nothing to do",
              {{"order", order_id}, {"via", "ReserveStock"}, {"corr", order_id}});
    return absl::OkStatus();
  }
  const ReserveDecision& d = result.decision;
  if (!d.ok) {
    response->set_short_sku(d.short_sku);
    response->set_requested(d.requested);
    response->set_available(static_cast<int32_t>(
        std::clamp<int64_t>(d.available, 0, std::numeric_limits<int32_t>::max())));
    response->set_reason(d.reason);
    RELAY_LOG(
        Info, "stock rejected",
        {{"order", order_id}, {"reason", d.reason}, {"via", "ReserveStock"}, {"corr", order_id}});
    return absl::OkStatus();
  }
  response->set_reserved(true);
  response->set_state(v1::RESERVATION_STATE_HELD);
  for (const events::v1::StockLine& l : d.lines) *response->add_lines() = l;
  RELAY_LOG(Info, "stock reserved",
            {{"order", order_id},
             {"lines", FormatLines(d.lines)},
             {"via", "ReserveStock"},
             {"corr", order_id}});
  return absl::OkStatus();
}

absl::Status InventoryServiceImpl::DoReleaseStock(const v1::ReleaseStockRequest& request,
                                                  v1::StockChangeResponse* response) {
  if (absl::Status s = ValidateReleaseStock(request); !s.ok()) return s;
  absl::StatusOr<std::vector<events::v1::StockLine>> moved =
      MoveHeldStock(db_, &ReleaseOrder, request.order_id(), response);
  if (!moved.ok()) return moved.status();
  if (moved->empty()) {
    RELAY_LOG(
        Info, "no stock held to release",
        {{"order", request.order_id()}, {"via", "ReleaseStock"}, {"corr", request.order_id()}});
  } else {
    RELAY_LOG(Info, "stock released",
              {{"order", request.order_id()},
               {"lines", FormatLines(*moved)},
               {"reason", request.reason()},
               {"via", "ReleaseStock"},
               {"corr", request.order_id()}});
  }
  return absl::OkStatus();
}

absl::Status InventoryServiceImpl::DoCommitStock(const v1::CommitStockRequest& request,
                                                 v1::StockChangeResponse* response) {
  if (absl::Status s = ValidateCommitStock(request); !s.ok()) return s;
  absl::StatusOr<std::vector<events::v1::StockLine>> moved =
      MoveHeldStock(db_, &CommitOrder, request.order_id(), response);
  if (!moved.ok()) return moved.status();
  if (moved->empty()) {
    RELAY_LOG(
        Warn, "order confirmed but no stock is held for it",
        {{"order", request.order_id()}, {"via", "CommitStock"}, {"corr", request.order_id()}});
  } else {
    RELAY_LOG(Info, "stock committed",
              {{"order", request.order_id()},
               {"lines", FormatLines(*moved)},
               {"via", "CommitStock"},
               {"corr", request.order_id()}});
  }
  return absl::OkStatus();
}

}  // namespace relay::inventory
