// relayctl order place|get|list|watch|cancel: the order-service API.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/money.h"
#include "tools/relayctl/order_view.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

namespace ov1 = relay::order::v1;

constexpr absl::Duration kDefaultWaitTimeout = absl::Seconds(30);

std::unique_ptr<ov1::OrderService::Stub> OrderStub(Context& ctx) {
  return ov1::OrderService::NewStub(ctx.Channel(ctx.endpoints().order));
}

int RpcFailed(Context& ctx, absl::string_view what, const grpc::Status& status) {
  return ctx.RpcFailed(what, ctx.endpoints().order, status);
}

// How WatchUntilTerminal ended.
struct WatchResult {
  grpc::Status status;  // OK once a terminal state was seen.
  ov1::Order last;      // The last state received (empty if none).
  bool timed_out = false;
};

// Streams `order_id` until it is CONFIRMED or CANCELLED or `wait` passes,
// calling `on_update` for each state received.
WatchResult WatchUntilTerminal(Context& ctx, const std::string& order_id, absl::Duration wait,
                               const std::function<void(const ov1::Order&)>& on_update) {
  WatchResult result;
  auto stub = OrderStub(ctx);
  grpc::ClientContext call;
  call.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(wait));
  ov1::WatchOrderRequest request;
  request.set_order_id(order_id);
  std::unique_ptr<grpc::ClientReader<ov1::Order>> reader = stub->WatchOrder(&call, request);
  ov1::Order order;
  bool terminal = false;
  while (reader->Read(&order)) {
    result.last = order;
    if (on_update) on_update(order);
    if (IsTerminal(order.status())) {
      terminal = true;
      // The server ends the stream after a terminal state; do not wait for it.
      call.TryCancel();
      break;
    }
  }
  grpc::Status finish = reader->Finish();
  if (terminal) return result;
  if (finish.ok()) {
    result.status =
        grpc::Status(grpc::StatusCode::INTERNAL, "the watch stream ended before the order ended");
  } else {
    result.timed_out = finish.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    result.status = finish;
  }
  return result;
}

// Ends a watch: prints nothing more, maps the outcome to the exit code.
int FinishWatch(Context& ctx, const std::string& order_id, absl::Duration wait,
                const WatchResult& result) {
  if (result.timed_out) {
    const std::string state =
        result.last.order_id().empty() ? std::string("not seen") : StatusName(result.last.status());
    return ctx.Fail(kExitError, absl::StrCat("watch order ", order_id),
                    absl::StrCat("still ", state, " after ", absl::FormatDuration(wait)));
  }
  if (!result.status.ok())
    return RpcFailed(ctx, absl::StrCat("watch order ", order_id), result.status);
  return result.last.status() == ov1::ORDER_STATUS_CANCELLED ? kExitCancelled : kExitOk;
}

absl::StatusOr<ov1::PlaceOrderRequest::Item> ParseItem(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--item ", Excerpt(text), ": expected SKU:QTY"));
  }
  ov1::PlaceOrderRequest::Item item;
  item.set_sku(text.substr(0, colon));
  absl::StatusOr<int64_t> qty = ParseInt(absl::StrCat("--item ", Excerpt(text), ": quantity"),
                                         text.substr(colon + 1), 1, 1000000);
  if (!qty.ok()) return qty.status();
  item.set_quantity(static_cast<int32_t>(*qty));
  return item;
}

int Place(Context& ctx, const Args& args) {
  const char* kPath = "order place";
  if (!args.Has("customer") || args.Get("customer").empty()) {
    return ctx.UsageError(kPath, "--customer is required");
  }
  ov1::PlaceOrderRequest request;
  request.set_customer_id(args.Get("customer"));
  request.set_idempotency_key(args.Get("key"));
  for (const std::string& text : args.GetAll("item")) {
    absl::StatusOr<ov1::PlaceOrderRequest::Item> item = ParseItem(text);
    if (!item.ok()) return ctx.UsageError(kPath, item.status());
    *request.add_items() = *item;
  }
  if (request.items().empty())
    return ctx.UsageError(kPath, "at least one --item SKU:QTY is required");
  absl::StatusOr<absl::Duration> wait = DurationFlag(args, "wait-timeout", kDefaultWaitTimeout);
  if (!wait.ok()) return ctx.UsageError(kPath, wait.status());
  if (args.Has("wait-timeout") && !args.Has("wait")) {
    return ctx.UsageError(kPath, "--wait-timeout needs --wait");
  }

  auto stub = OrderStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  ov1::PlaceOrderResponse response;
  grpc::Status status = stub->PlaceOrder(&call, request, &response);
  if (!status.ok()) return RpcFailed(ctx, "place order", status);

  const bool quiet = args.Has("quiet");
  if (!args.Has("wait")) {
    if (quiet) {
      ctx.out() << response.order().order_id() << "\n";
    } else if (ctx.json()) {
      ctx.out() << ToJson(response, true) << "\n";
    } else {
      if (response.replayed())
        ctx.out() << "(replayed: this idempotency key placed the order before)\n";
      PrintOrder(ctx.out(), response.order());
    }
    return kExitOk;
  }
  const std::string order_id = response.order().order_id();
  WatchResult result = WatchUntilTerminal(ctx, order_id, *wait, nullptr);
  if (!result.last.order_id().empty()) *response.mutable_order() = result.last;
  if (result.status.ok()) {
    if (quiet) {
      ctx.out() << order_id << "\n";
    } else if (ctx.json()) {
      ctx.out() << ToJson(response, true) << "\n";
    } else {
      if (response.replayed())
        ctx.out() << "(replayed: this idempotency key placed the order before)\n";
      PrintOrder(ctx.out(), response.order());
    }
  }
  return FinishWatch(ctx, order_id, *wait, result);
}

int Get(Context& ctx, const Args& args) {
  const std::string& id = args.Positional(0);
  auto stub = OrderStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  ov1::GetOrderRequest request;
  request.set_order_id(id);
  ov1::Order order;
  grpc::Status status = stub->GetOrder(&call, request, &order);
  if (!status.ok()) return RpcFailed(ctx, absl::StrCat("get order ", Excerpt(id)), status);
  if (ctx.json()) {
    ctx.out() << ToJson(order, true) << "\n";
  } else {
    PrintOrder(ctx.out(), order);
  }
  return kExitOk;
}

int List(Context& ctx, const Args& args) {
  const char* kPath = "order list";
  ov1::ListOrdersRequest request;
  if (args.Has("status")) {
    absl::StatusOr<ov1::OrderStatus> status = ParseStatus(args.Get("status"));
    if (!status.ok()) return ctx.UsageError(kPath, status.status());
    request.set_status(*status);
  }
  request.set_customer_id(args.Get("customer"));
  absl::StatusOr<int64_t> limit = IntFlag(args, "limit", 50, 1, 100000);
  if (!limit.ok()) return ctx.UsageError(kPath, limit.status());

  auto stub = OrderStub(ctx);
  ov1::ListOrdersResponse all;
  std::string token = args.Get("page-token");
  while (all.orders_size() < *limit) {
    request.set_page_size(
        static_cast<int32_t>(std::min<int64_t>(*limit - all.orders_size(), 1000)));
    request.set_page_token(token);
    grpc::ClientContext call;
    ctx.SetDeadline(&call);
    ov1::ListOrdersResponse page;
    grpc::Status status = stub->ListOrders(&call, request, &page);
    if (!status.ok()) return RpcFailed(ctx, "list orders", status);
    for (ov1::Order& o : *page.mutable_orders()) {
      if (all.orders_size() < *limit) *all.add_orders() = std::move(o);
    }
    token = page.next_page_token();
    if (token.empty() || page.orders().empty()) break;
  }
  all.set_next_page_token(token);
  if (ctx.json()) {
    ctx.out() << ToJson(all, true) << "\n";
    return kExitOk;
  }
  Table table({{"ORDER"},
               {"CUSTOMER"},
               {"STATUS"},
               {"TOTAL", Table::kRight},
               {"ITEMS"},
               {"CREATED"},
               {"REASON"}});
  for (const ov1::Order& o : all.orders()) {
    table.AddRow({o.order_id(), o.customer_id(), StatusName(o.status()), FormatMoney(o.total()),
                  ItemsText(o), FormatUtcTime(o.created_at()), CancelText(o)});
  }
  table.Render(ctx.out());
  if (!token.empty()) ctx.out() << "(more: --page-token " << token << ")\n";
  return kExitOk;
}

int Watch(Context& ctx, const Args& args) {
  const std::string& id = args.Positional(0);
  absl::StatusOr<absl::Duration> wait = DurationFlag(args, "wait-timeout", kDefaultWaitTimeout);
  if (!wait.ok()) return ctx.UsageError("order watch", wait.status());
  WatchResult result = WatchUntilTerminal(ctx, id, *wait, [&](const ov1::Order& o) {
    if (ctx.json()) {
      ctx.out() << ToJson(o, false) << "\n";
    } else {
      ctx.out() << FormatUtcTime(o.updated_at()) << "  " << o.order_id() << "  "
                << StatusName(o.status()) << "  stock=" << (o.stock_reserved() ? "reserved" : "-")
                << "  payment=" << (o.payment_captured() ? "captured" : "-");
      if (o.status() == ov1::ORDER_STATUS_CANCELLED) ctx.out() << "  " << CancelText(o);
      ctx.out() << "\n";
    }
    ctx.out().flush();
  });
  return FinishWatch(ctx, id, *wait, result);
}

int Cancel(Context& ctx, const Args& args) {
  const std::string& id = args.Positional(0);
  auto stub = OrderStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  ov1::CancelOrderRequest request;
  request.set_order_id(id);
  request.set_reason(args.Get("reason"));
  ov1::Order order;
  grpc::Status status = stub->CancelOrder(&call, request, &order);
  if (!status.ok()) return RpcFailed(ctx, absl::StrCat("cancel order ", Excerpt(id)), status);
  if (ctx.json()) {
    ctx.out() << ToJson(order, true) << "\n";
  } else {
    PrintOrder(ctx.out(), order);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> OrderCommands() {
  const Flag wait_timeout{"wait-timeout", Flag::kValue, "DURATION",
                          "how long to wait for CONFIRMED or CANCELLED (default 30s)"};
  return {
      {{"order place",
        "Places an order; with --wait, follows it to CONFIRMED or CANCELLED.",
        {},
        {{"customer", Flag::kValue, "CUSTOMER", "customer (account) id, required"},
         {"item", Flag::kList, "SKU:QTY", "a line of the order, at least one"},
         {"key", Flag::kValue, "KEY",
          "idempotency key of this customer: placing the same items again with it returns the "
          "same order; other items with it are refused"},
         {"wait", Flag::kBool, "", "watch the order until it ends; exit 5 if CANCELLED"},
         wait_timeout,
         {"quiet", Flag::kBool, "", "print only the order id (for scripts: ORDER=$(...))", 'q'}},
        "Prints the order as accepted (PENDING), or with --wait its final state and reason."},
       Place},
      {{"order get", "Shows one order with its lines.", {"ORDER_ID"}, {}, ""}, Get},
      {{"order list",
        "Lists orders, newest first.",
        {},
        {{"status", Flag::kValue, "STATUS", "only pending, confirmed or cancelled orders"},
         {"customer", Flag::kValue, "CUSTOMER", "only this customer's orders"},
         {"limit", Flag::kValue, "N", "at most N orders (default 50)"},
         {"page-token", Flag::kValue, "TOKEN", "continue a previous listing"}},
        ""},
       List},
      {{"order watch",
        "Prints the order now and at every change until it ends.",
        {"ORDER_ID"},
        {wait_timeout},
        "One line per state (one JSON object per line with --json). Exits 0 when the order\n"
        "is CONFIRMED, 5 when it is CANCELLED, 1 if it is still PENDING after --wait-timeout."},
       Watch},
      {{"order cancel",
        "Cancels a PENDING order (stock is released and the payment refunded).",
        {"ORDER_ID"},
        {{"reason", Flag::kValue, "TEXT", "recorded in the cancel reason"}},
        ""},
       Cancel},
  };
}

}  // namespace relay::ctl
