#include "bench/flow_compare_load.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace relay::bench {

// Follows one order until a terminal state. Owned by gRPC from StartCall()
// to OnDone(), where it reports and deletes itself.
class OrderLoad::Watch final : public grpc::ClientReadReactor<order::v1::Order> {
 public:
  Watch(OrderLoad* load, int index, const std::string& order_id) : load_(load), index_(index) {
    request_.set_order_id(order_id);
    context_.set_deadline(absl::ToChronoTime(absl::Now() + load->options_.watch_timeout));
    load->stub_->async()->WatchOrder(&context_, &request_, this);
    StartRead(&order_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (order_.status() == order::v1::ORDER_STATUS_CONFIRMED ||
        order_.status() == order::v1::ORDER_STATUS_CANCELLED) {
      ended_ = true;
      load_->Ended(index_, order_, absl::Now());
    }
    StartRead(&order_);
  }
  void OnDone(const grpc::Status&) override {
    load_->WatchDone(index_);
    delete this;
  }

 private:
  OrderLoad* const load_;
  const int index_;
  grpc::ClientContext context_;
  order::v1::WatchOrderRequest request_;
  order::v1::Order order_;
  bool ended_ = false;
};

namespace {

std::string CauseName(events::v1::CancelCause cause) {
  std::string name = events::v1::CancelCause_Name(cause);
  constexpr char kPrefix[] = "CANCEL_CAUSE_";
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(sizeof(kPrefix) - 1);
  return absl::AsciiStrToLower(name);
}

}  // namespace

OrderLoad::OrderLoad(std::shared_ptr<grpc::Channel> order_channel, Options options)
    : options_(std::move(options)), stub_(order::v1::OrderService::NewStub(order_channel)) {}

OrderLoad::~OrderLoad() {
  absl::MutexLock lock(&mu_);
  auto idle = [this] {
    mu_.AssertHeld();
    return calls_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

void OrderLoad::Place(absl::Time sent, int tag) {
  int index;
  int64_t seq;
  {
    absl::MutexLock lock(&mu_);
    index = static_cast<int>(orders_.size());
    PlacedOrder& o = orders_.emplace_back();
    o.tag = tag;
    o.sent = sent;
    ++open_;
    ++calls_;
    seq = seq_++;
  }
  struct Call {
    grpc::ClientContext context;
    order::v1::PlaceOrderRequest request;
    order::v1::PlaceOrderResponse response;
  };
  auto* call = new Call;
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  call->request.set_customer_id(options_.customers[seq % options_.customers.size()]);
  call->request.set_idempotency_key(
      absl::StrCat("flow-compare-", seq, "-", absl::ToUnixNanos(sent)));
  auto* item = call->request.add_items();
  item->set_sku(options_.skus[seq % options_.skus.size()]);
  item->set_quantity(1);
  stub_->async()->PlaceOrder(&call->context, &call->request, &call->response,
                             [this, call, index](grpc::Status status) {
                               Answered(index, status, call->response);
                               delete call;
                               absl::MutexLock lock(&mu_);
                               --calls_;
                             });
}

void OrderLoad::Answered(int index, const grpc::Status& status,
                         const order::v1::PlaceOrderResponse& r) {
  const absl::Time now = absl::Now();
  std::string watch;  // the order to follow, when PENDING
  {
    absl::MutexLock lock(&mu_);
    PlacedOrder& o = orders_[index];
    o.answered = now;
    o.code = status.error_code();
    if (!status.ok()) {
      // --flow=sync names the order it cancelled: "order ord-… cancelled: …".
      const std::string& m = status.error_message();
      if (size_t at = m.find("ord-"); at != std::string::npos) {
        o.order_id = m.substr(at, m.find(' ', at) - at);
      }
      if (m.find(" cancelled: ") != std::string::npos) {
        o.status = order::v1::ORDER_STATUS_CANCELLED;
        o.cause = "dependency_unavailable";
      }
      o.ended = true;
      o.end = now;
      --open_;
      return;
    }
    o.order_id = r.order().order_id();
    if (r.order().status() == order::v1::ORDER_STATUS_PENDING) {
      ++calls_;
      watch = o.order_id;
    } else {
      o.ended = true;
      o.end = now;
      o.status = r.order().status();
      if (o.status == order::v1::ORDER_STATUS_CANCELLED) {
        o.cause = CauseName(r.order().cancel_cause());
      }
      --open_;
    }
  }
  // Not under mu_: gRPC may run the watch's reactions on this thread.
  if (!watch.empty()) new Watch(this, index, watch);  // owned by gRPC
}

void OrderLoad::Ended(int index, const order::v1::Order& order, absl::Time at) {
  absl::MutexLock lock(&mu_);
  PlacedOrder& o = orders_[index];
  if (o.ended) return;
  o.ended = true;
  o.end = at;
  o.status = order.status();
  if (o.status == order::v1::ORDER_STATUS_CANCELLED) o.cause = CauseName(order.cancel_cause());
  --open_;
}

void OrderLoad::WatchDone(int index) {
  absl::MutexLock lock(&mu_);
  --calls_;
  // Ended without a terminal state (its deadline, a broken stream): it
  // stays unended, counted as pending at the end.
  if (!orders_[index].ended) --open_;
}

int64_t OrderLoad::OpenLoop(const std::function<double(absl::Duration)>& rate,
                            absl::Duration duration, int tag) {
  const absl::Time start = absl::Now();
  absl::Time due = start;
  int64_t placed = 0;
  while (due < start + duration) {
    const absl::Time now = absl::Now();
    if (due > now) absl::SleepFor(due - now);
    Place(due, tag);
    ++placed;
    due += absl::Seconds(1.0 / std::max(rate(due - start), 1e-3));
  }
  return placed;
}

int64_t OrderLoad::ClosedLoop(int clients, absl::Duration duration, int tag) {
  const absl::Time start = absl::Now();
  const absl::Time stop = start + duration;
  int64_t base;
  {
    absl::MutexLock lock(&mu_);
    base = open_;
  }
  while (absl::Now() < stop) {
    {
      absl::MutexLock lock(&mu_);
      auto room = [this, base, clients] {
        mu_.AssertHeld();
        return open_ - base < clients;
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&room), stop)) break;
    }
    Place(absl::Now(), tag);
  }
  int64_t ended = 0;
  for (const PlacedOrder& o : Orders()) {
    if (o.tag == tag && o.ended && o.end <= stop && o.code == grpc::StatusCode::OK) ++ended;
  }
  return ended;
}

bool OrderLoad::AwaitQuiet(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto quiet = [this] {
    mu_.AssertHeld();
    return open_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&quiet), deadline);
}

std::vector<PlacedOrder> OrderLoad::Orders() const {
  absl::MutexLock lock(&mu_);
  return orders_;
}

int64_t OrderLoad::outstanding() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

}  // namespace relay::bench
