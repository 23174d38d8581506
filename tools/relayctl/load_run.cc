// The machinery of one load run (load_run.h): a thread that keeps the
// schedule, one OrderProbe per order, and LoadRun collecting what the
// probes' callbacks report.

#include "tools/relayctl/load_run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/order_view.h"

namespace relay::ctl {
namespace {

namespace ov1 = relay::order::v1;

class LoadRun;

// One order's life: PlaceOrder, then WatchOrder until a terminal state.
// Owned by LoadRun (kept until the run ends, so a late callback or
// TryCancel never touches freed memory); done once OnDone ran or the place
// call failed.
class OrderProbe : public grpc::ClientReadReactor<ov1::Order> {
 public:
  OrderProbe(LoadRun* run, ov1::PlaceOrderRequest request)
      : run_(run), place_request_(std::move(request)) {}

  void Place(ov1::OrderService::Stub* stub, absl::Duration timeout, absl::Time watch_deadline);
  void Cancel() {
    place_context_.TryCancel();
    watch_context_.TryCancel();
  }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void OnPlaced(const grpc::Status& status);

  LoadRun* const run_;
  ov1::OrderService::Stub* stub_ = nullptr;
  absl::Time sent_;
  absl::Time watch_deadline_;
  ov1::PlaceOrderRequest place_request_;
  ov1::PlaceOrderResponse place_response_;
  grpc::ClientContext place_context_;
  grpc::ClientContext watch_context_;
  ov1::WatchOrderRequest watch_request_;
  ov1::Order order_;
  bool ended_ = false;  // Touched only by the reactor's callbacks, which do not overlap.
};

// Thread-safe: the probes' callbacks report here from gRPC threads.
class LoadRun {
 public:
  LoadRun(Context& ctx, const std::string& order_address, const LoadOptions& options)
      : ctx_(ctx),
        options_(options),
        stub_(ov1::OrderService::NewStub(ctx.Channel(order_address))) {}

  // Runs the schedule and waits for every probe.
  LoadResult Run();

  void Placed() {
    absl::MutexLock lock(&mu_);
    ++tally_.placed;
  }
  void Ended(const ov1::Order& order, absl::Duration latency) {
    absl::MutexLock lock(&mu_);
    tally_.latencies.push_back(latency);
    if (order.status() == ov1::ORDER_STATUS_CONFIRMED) {
      ++tally_.confirmed;
    } else {
      ++tally_.cancelled[CancelCauseName(order.cancel_cause())];
    }
  }
  void Failed(absl::string_view step, const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    const bool place = step == "place";
    if (place && ExitCodeFor(status) == kExitUnavailable) ++tally_.place_unavailable;
    if (!place && (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                   status.error_code() == grpc::StatusCode::CANCELLED)) {
      ++tally_.not_terminal;
      return;
    }
    std::string kind = absl::StrCat(step, ": ", CodeName(status.error_code()));
    ++tally_.errors[kind];
    tally_.error_examples.emplace(kind, status.error_message());
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    --outstanding_;
  }

 private:
  static std::string CodeName(grpc::StatusCode code);

  Context& ctx_;
  const LoadOptions& options_;
  std::unique_ptr<ov1::OrderService::Stub> stub_;
  std::vector<std::unique_ptr<OrderProbe>> probes_;  // Only the scheduling thread touches it.
  absl::Mutex mu_;
  LoadTally tally_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

void OrderProbe::Place(ov1::OrderService::Stub* stub, absl::Duration timeout,
                       absl::Time watch_deadline) {
  stub_ = stub;
  watch_deadline_ = watch_deadline;
  sent_ = absl::Now();
  place_context_.set_deadline(std::chrono::system_clock::now() +
                              absl::ToChronoMilliseconds(timeout));
  stub->async()->PlaceOrder(&place_context_, &place_request_, &place_response_,
                            [this](grpc::Status status) { OnPlaced(status); });
}

void OrderProbe::OnPlaced(const grpc::Status& status) {
  if (!status.ok()) {
    run_->Failed("place", status);
    run_->Done();
    return;
  }
  run_->Placed();
  watch_request_.set_order_id(place_response_.order().order_id());
  watch_context_.set_deadline(absl::ToChronoTime(watch_deadline_));
  // Starting the next call from this callback is fine: it does not block.
  stub_->async()->WatchOrder(&watch_context_, &watch_request_, this);
  StartRead(&order_);
  StartCall();
}

void OrderProbe::OnReadDone(bool ok) {
  if (!ok) return;  // The stream ended; OnDone follows.
  if (!ended_ && IsTerminal(order_.status())) {
    ended_ = true;
    run_->Ended(order_, absl::Now() - sent_);
  }
  // Read on: the server ends the stream after the terminal state.
  StartRead(&order_);
}

void OrderProbe::OnDone(const grpc::Status& status) {
  if (!ended_) {
    run_->Failed("watch", status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL,
                                                     "watch ended before the order did")
                                      : status);
  }
  run_->Done();
}

std::string LoadRun::CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

LoadResult LoadRun::Run() {
  std::mt19937_64 rng(options_.seed);
  const std::string run_id = absl::StrCat(absl::ToUnixMillis(absl::Now()), "-", getpid());
  const absl::Time start = absl::Now();
  const absl::Time stop = start + options_.duration;
  const absl::Time watch_deadline = stop + options_.grace;
  ctx_.ArmInterrupt();
  for (int64_t i = 0; i < options_.max_orders; ++i) {
    const absl::Time at = start + absl::Seconds(static_cast<double>(i) / options_.rate);
    if (at >= stop) break;
    while (!ctx_.Interrupted() && absl::Now() < at) {
      absl::SleepFor(std::min(at - absl::Now(), absl::Milliseconds(20)));
    }
    if (ctx_.Interrupted()) break;
    ov1::PlaceOrderRequest request;
    request.set_customer_id(options_.customers[rng() % options_.customers.size()]);
    ov1::PlaceOrderRequest::Item* item = request.add_items();
    item->set_sku(options_.skus[rng() % options_.skus.size()]);
    item->set_quantity(options_.quantity);
    request.set_idempotency_key(absl::StrCat("load-", run_id, "-", i));
    probes_.push_back(std::make_unique<OrderProbe>(this, std::move(request)));
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
      ++tally_.scheduled;
    }
    probes_.back()->Place(stub_.get(), ctx_.timeout(), watch_deadline);
  }

  // Every probe ends by its deadline; Ctrl-C cuts the wait short.
  bool cancelled = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto none_left = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
      if (mu_.AwaitWithTimeout(absl::Condition(&none_left), absl::Milliseconds(50))) break;
    }
    if (!cancelled && ctx_.Interrupted()) {
      cancelled = true;
      for (auto& p : probes_) p->Cancel();
    }
  }
  absl::MutexLock lock(&mu_);
  return {tally_, absl::Now() - start, ctx_.Interrupted()};
}

// "a, b,,c " -> {"a", "b", "c"}: blanks around an item are not part of it
// (" c-bob" is no customer, and its orders would all be declined).
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) items.emplace_back(item);
  }
  return items;
}

}  // namespace

std::vector<Flag> LoadShapeFlags() {
  return {{"customers", Flag::kValue, "C1,C2", "customers to order for (default: every account)"},
          {"skus", Flag::kValue, "S1,S2", "skus to order, one per order (default: every product)"},
          {"quantity", Flag::kValue, "N", "units per order (default 1)"},
          {"max-orders", Flag::kValue, "N", "hard cap on orders placed (default 10000)"},
          {"grace", Flag::kValue, "DURATION",
           "how long after the last order to wait for orders to end (default 10s)"},
          {"seed", Flag::kValue, "N", "random seed for the customer/sku choice"}};
}

int ReadLoadOptions(Context& ctx, const Args& args, absl::string_view path, double default_rate,
                    absl::Duration default_duration, LoadOptions* options) {
  absl::StatusOr<double> rate = PositiveNumberFlag(args, "rate", default_rate);
  if (!rate.ok()) return ctx.UsageError(path, rate.status());
  absl::StatusOr<absl::Duration> duration = DurationFlag(args, "duration", default_duration);
  if (!duration.ok()) return ctx.UsageError(path, duration.status());
  absl::StatusOr<absl::Duration> grace = DurationFlag(args, "grace", absl::Seconds(10));
  if (!grace.ok()) return ctx.UsageError(path, grace.status());
  absl::StatusOr<int64_t> max_orders = IntFlag(args, "max-orders", 10000, 1, 1000000);
  if (!max_orders.ok()) return ctx.UsageError(path, max_orders.status());
  absl::StatusOr<int64_t> quantity = IntFlag(args, "quantity", 1, 1, 1000);
  if (!quantity.ok()) return ctx.UsageError(path, quantity.status());
  absl::StatusOr<int64_t> seed =
      IntFlag(args, "seed", static_cast<int64_t>(std::random_device()() & 0x7fffffff), 0,
              std::numeric_limits<int64_t>::max());
  if (!seed.ok()) return ctx.UsageError(path, seed.status());
  options->rate = *rate;
  options->duration = *duration;
  options->grace = *grace;
  options->max_orders = *max_orders;
  options->quantity = static_cast<int32_t>(*quantity);
  options->seed = static_cast<uint64_t>(*seed);
  return kExitOk;
}

int ResolveLoadTargets(Context& ctx, const Args& args, absl::string_view path,
                       LoadOptions* options) {
  if (args.Has("customers")) {
    options->customers = SplitList(args.Get("customers"));
  } else {
    auto stub = relay::payment::v1::PaymentService::NewStub(ctx.Channel(ctx.endpoints().payment));
    grpc::ClientContext call;
    ctx.SetDeadline(&call);
    relay::payment::v1::ListAccountsResponse response;
    grpc::Status s = stub->ListAccounts(&call, {}, &response);
    if (!s.ok()) {
      return ctx.RpcFailed(absl::StrCat(path, ": list accounts (or pass --customers)"),
                           ctx.endpoints().payment, s);
    }
    options->customers.clear();
    for (const auto& a : response.accounts()) options->customers.push_back(a.customer_id());
  }
  if (options->customers.empty())
    return ctx.UsageError(path, "no customers: pass --customers c1,c2");

  if (args.Has("skus")) {
    options->skus = SplitList(args.Get("skus"));
  } else {
    auto stub =
        relay::inventory::v1::InventoryService::NewStub(ctx.Channel(ctx.endpoints().inventory));
    grpc::ClientContext call;
    ctx.SetDeadline(&call);
    relay::inventory::v1::ListProductsResponse response;
    grpc::Status s = stub->ListProducts(&call, {}, &response);
    if (!s.ok()) {
      return ctx.RpcFailed(absl::StrCat(path, ": list products (or pass --skus)"),
                           ctx.endpoints().inventory, s);
    }
    options->skus.clear();
    for (const auto& p : response.products()) options->skus.push_back(p.sku());
  }
  if (options->skus.empty()) return ctx.UsageError(path, "no skus: pass --skus s1,s2");
  return kExitOk;
}

LoadResult RunLoad(Context& ctx, const std::string& order_address, const LoadOptions& options) {
  LoadRun run(ctx, order_address, options);
  return run.Run();
}

int LoadExitCode(Context& ctx, absl::string_view what, const std::string& order_address,
                 const LoadTally& tally) {
  if (tally.scheduled > 0 && tally.place_unavailable == tally.scheduled) {
    return ctx.Fail(
        kExitUnavailable, what,
        absl::StrCat("order-service at ", order_address, " refused or timed out every order"));
  }
  if (tally.errors_total() > 0 || tally.not_terminal > 0) {
    return ctx.Fail(kExitError, what,
                    absl::StrCat(tally.errors_total(), " errors, ", tally.not_terminal,
                                 " orders not ended in time"));
  }
  return kExitOk;
}

}  // namespace relay::ctl
