#include "bench/saga_bench_orders.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace relay::bench {
namespace {

namespace ov1 = relay::order::v1;

int Index(Phase phase) { return static_cast<int>(phase); }

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

// ---------------------------------------------------------------------------
// OrderTracker

void OrderTracker::Placed(const std::string& order_id, Phase phase, absl::Time scheduled,
                          absl::Time answered) {
  absl::MutexLock lock(&mu_);
  Order& o = orders_[order_id];
  o.phase = phase;
  o.scheduled = scheduled;
  o.answered = answered;
  Counts& c = counts_[Index(phase)];
  ++c.placed;
  auto early = early_.find(order_id);
  if (early == early_.end()) return;
  o.end = early->second.end;
  o.delivered = early->second.delivered;
  o.published = early->second.published;
  early_.erase(early);
  ++c.terminal;
  ++(o.end == End::kConfirmed ? c.confirmed : c.cancelled);
}

void OrderTracker::Terminal(absl::string_view order_id, bool confirmed, absl::Time delivered,
                            absl::Time published) {
  absl::MutexLock lock(&mu_);
  auto it = orders_.find(order_id);
  Order* o = nullptr;
  if (it != orders_.end()) {
    o = &it->second;
  } else {
    o = &early_[order_id];
  }
  if (o->end != End::kNone) {
    ++duplicates_;
    return;
  }
  o->end = confirmed ? End::kConfirmed : End::kCancelled;
  o->delivered = delivered;
  o->published = published;
  if (it == orders_.end()) return;  // counted once its order is placed
  Counts& c = counts_[Index(o->phase)];
  ++c.terminal;
  ++(confirmed ? c.confirmed : c.cancelled);
}

OrderTracker::Counts OrderTracker::counts(Phase phase) const {
  absl::MutexLock lock(&mu_);
  return counts_[Index(phase)];
}

uint64_t OrderTracker::unmatched() const {
  absl::MutexLock lock(&mu_);
  return early_.size();
}

uint64_t OrderTracker::duplicates() const {
  absl::MutexLock lock(&mu_);
  return duplicates_;
}

bool OrderTracker::AwaitAllTerminal(Phase phase, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto all = [this, phase] {
    mu_.AssertHeld();  // Await evaluates the condition with mu_ held
    const Counts& c = counts_[Index(phase)];
    return c.terminal >= c.placed;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&all), deadline);
}

std::vector<OrderTracker::Order> OrderTracker::Orders(Phase phase) const {
  absl::MutexLock lock(&mu_);
  std::vector<Order> out;
  out.reserve(counts_[Index(phase)].placed);
  for (const auto& [id, o] : orders_) {
    if (o.phase == phase) out.push_back(o);
  }
  return out;
}

// ---------------------------------------------------------------------------
// TerminalConsumer

namespace {

events::Subscriber::Options ConsumerOptions() {
  events::Subscriber::Options o;
  o.topic = "orders";
  o.group = "saga-bench";
  o.member_name = "saga-bench";
  o.max_in_flight = 10000;
  return o;
}

}  // namespace

TerminalConsumer::TerminalConsumer(std::shared_ptr<grpc::Channel> broker, OrderTracker* tracker)
    : tracker_(tracker), subscriber_(std::move(broker), ConsumerOptions()) {
  // The On() handlers only choose the types subscribed to; OnBatch handles.
  auto unused = [](const events::v1::Event&, const events::DeliveryInfo&) {
    return absl::OkStatus();
  };
  subscriber_.On("order.confirmed", unused);
  subscriber_.On("order.cancelled", unused);
  subscriber_.OnBatch([this](absl::Span<const events::Subscriber::Delivery> batch) {
    const absl::Time now = absl::Now();  // one delivery message: one receive time
    for (const events::Subscriber::Delivery& d : batch) {
      const events::v1::Event& e = *d.event;
      const bool confirmed = e.type() == "order.confirmed";
      if (!confirmed && e.type() != "order.cancelled") continue;
      tracker_->Terminal(e.key(), confirmed, now, FromProto(e.publish_time()));
    }
    {
      absl::MutexLock lock(&mu_);
      ++messages_;
      events_ += batch.size();
    }
    return std::vector<absl::Status>(batch.size(), absl::OkStatus());
  });
}

TerminalConsumer::~TerminalConsumer() { Stop(); }

absl::Status TerminalConsumer::Start(absl::Duration open_timeout) {
  subscriber_.Start();
  if (!subscriber_.WaitUntilOpen(open_timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("the saga-bench subscription to topic orders did not open within ",
                     absl::FormatDuration(open_timeout), ": ", subscriber_.last_error()));
  }
  return absl::OkStatus();
}

void TerminalConsumer::Stop() { subscriber_.Stop(); }

uint64_t TerminalConsumer::messages() const {
  absl::MutexLock lock(&mu_);
  return messages_;
}

uint64_t TerminalConsumer::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

// ---------------------------------------------------------------------------
// OrderPlacer

struct OrderPlacer::Call {
  Phase phase;
  absl::Time scheduled;
  grpc::ClientContext context;
  ov1::PlaceOrderRequest request;
  ov1::PlaceOrderResponse response;
};

OrderPlacer::OrderPlacer(std::shared_ptr<grpc::Channel> order_service, OrderTracker* tracker,
                         std::vector<std::string> customers, std::vector<std::string> skus,
                         std::string key_prefix, uint64_t seed, absl::Duration rpc_timeout)
    : stub_(ov1::OrderService::NewStub(std::move(order_service))),
      tracker_(tracker),
      customers_(std::move(customers)),
      skus_(std::move(skus)),
      key_prefix_(std::move(key_prefix)),
      rpc_timeout_(rpc_timeout),
      rng_(seed) {}

OrderPlacer::~OrderPlacer() {
  {
    absl::MutexLock lock(&mu_);
    for (Call* c : live_) c->context.TryCancel();
  }
  // Every call has a deadline, and cancelled ones end at once: bounded.
  AwaitOutstandingBelow(1, absl::Now() + rpc_timeout_ + absl::Seconds(5));
  absl::MutexLock lock(&mu_);
  for (Call* c : done_) delete c;
  done_.clear();
  // Calls still live here would be touched by a late callback: leak them.
}

void OrderPlacer::Place(Phase phase, absl::Time scheduled, int sku_index) {
  auto* call = new Call;
  call->phase = phase;
  call->scheduled = scheduled;
  call->request.set_customer_id(customers_[rng_() % customers_.size()]);
  ov1::PlaceOrderRequest::Item* item = call->request.add_items();
  item->set_sku(skus_[sku_index >= 0 ? static_cast<size_t>(sku_index) % skus_.size()
                                     : rng_() % skus_.size()]);
  item->set_quantity(1);
  call->request.set_idempotency_key(absl::StrCat(key_prefix_, next_++));
  call->context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoMilliseconds(rpc_timeout_));
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
    live_.insert(call);
  }
  stub_->async()->PlaceOrder(&call->context, &call->request, &call->response,
                             [this, call](grpc::Status status) { Done(call, status); });
}

void OrderPlacer::Done(Call* call, const grpc::Status& status) {
  if (status.ok()) {
    tracker_->Placed(call->response.order().order_id(), call->phase, call->scheduled, absl::Now());
  }
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (!status.ok()) {
    ++failed_;
    failed_calls_[Index(call->phase)].emplace_back(call->scheduled, now);
    ++failures_[absl::StrCat("code ", static_cast<int>(status.error_code()), ": ",
                             status.error_message().substr(0, 120))];
  }
  --outstanding_;
  live_.erase(call);
  // Deleted later by the placing thread, not inside gRPC's callback.
  done_.push_back(call);
}

void OrderPlacer::Reap() {
  std::vector<Call*> done;
  {
    absl::MutexLock lock(&mu_);
    done.swap(done_);
  }
  for (Call* c : done) delete c;
}

int64_t OrderPlacer::outstanding() const {
  absl::MutexLock lock(&mu_);
  return outstanding_;
}

uint64_t OrderPlacer::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

std::map<std::string, uint64_t> OrderPlacer::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

std::vector<std::pair<absl::Time, absl::Time>> OrderPlacer::FailedCalls(Phase phase) const {
  absl::MutexLock lock(&mu_);
  return failed_calls_[Index(phase)];
}

bool OrderPlacer::AwaitOutstandingBelow(int64_t limit, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto below = [this, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ < limit; };
  return mu_.AwaitWithDeadline(absl::Condition(&below), deadline);
}

}  // namespace relay::bench
