#include "services/order/sync_saga.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_channel.h"
#include "common/log.h"
#include "common/text.h"
#include "services/order/order_saga.h"

namespace relay::order {
namespace {

// ReleaseStockRequest.reason and RefundRequest.reason: at most 500 bytes,
// cut on a UTF-8 boundary (a proto3 string that is not UTF-8 fails to parse).
constexpr size_t kMaxReasonBytes = 500;

// Waits for a group of asynchronous unary calls. Each call's callback
// (from Add()) runs on a gRPC thread, stores the status and counts down;
// it never blocks.
class CallGroup {
 public:
  std::function<void(grpc::Status)> Add(grpc::Status* out) {
    absl::MutexLock lock(&mu_);
    ++pending_;
    return [this, out](grpc::Status status) {
      absl::MutexLock lock(&mu_);
      *out = std::move(status);
      --pending_;
    };
  }
  void Wait() {
    absl::MutexLock lock(&mu_);
    auto done = [this] {
      mu_.AssertHeld();
      return pending_ == 0;
    };
    mu_.Await(absl::Condition(&done));
  }

 private:
  absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string Describe(const char* who, const grpc::Status& s) {
  return absl::StrCat(who, ": ",
                      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                          ? "no answer within the deadline"
                          : s.error_message());
}

}  // namespace

absl::Status SyncSaga::Validate(const Options& o) {
  if (o.inventory_target.empty() || o.payment_target.empty()) {
    return absl::InvalidArgumentError(
        "--flow=sync needs --inventory and --payment (host:port of each service)");
  }
  if (o.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("call_timeout must be positive");
  }
  if (o.workers < 1 || o.workers > 4096) {
    return absl::InvalidArgumentError("sync workers must be within 1..4096");
  }
  return absl::OkStatus();
}

SyncSaga::SyncSaga(OrderManager* manager, Options options)
    : manager_(manager),
      options_(std::move(options)),
      inventory_(inventory::v1::InventoryService::NewStub(MakeChannel(options_.inventory_target))),
      payment_(payment::v1::PaymentService::NewStub(MakeChannel(options_.payment_target))) {
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkLoop(); });
}

SyncSaga::~SyncSaga() { Stop(); }

void SyncSaga::RunAsync(v1::Order order, Done done, absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Job{std::move(order), std::move(done), deadline});
      ++queued_sagas_;
      return;
    }
  }
  done(absl::UnavailableError(
      absl::StrCat("order-service is shutting down; order ", order.order_id(), " stays PENDING")));
}

bool SyncSaga::Full() {
  absl::MutexLock lock(&mu_);
  return queued_sagas_ >= kMaxQueued;
}

void SyncSaga::CompensateAsync(v1::Order order) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) queue_.push_back(Job{std::move(order), nullptr});
}

void SyncSaga::Stop() {
  std::deque<Job> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    left.swap(queue_);
    queued_sagas_ = 0;
  }
  for (Job& job : left) {
    if (job.done) {
      job.done(absl::UnavailableError(absl::StrCat("order-service is shutting down; order ",
                                                   job.order.order_id(), " stays PENDING")));
    }
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void SyncSaga::WorkLoop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping
      job = std::move(queue_.front());
      queue_.pop_front();
      if (job.done) --queued_sagas_;
    }
    if (job.done && absl::Now() >= job.deadline) {
      Abandon(std::move(job));
    } else if (job.done) {
      Run(std::move(job));
    } else {
      Compensate(job.order, job.order.cancel_reason());
    }
  }
}

void SyncSaga::ReserveAndCharge(const v1::Order& order, absl::Time caller_deadline, Call* reserve,
                                Call* charge) {
  inventory::v1::ReserveStockRequest reserve_request;
  reserve_request.set_order_id(order.order_id());
  for (const events::v1::OrderLine& l : order.lines()) {
    events::v1::StockLine* line = reserve_request.add_lines();
    line->set_sku(l.sku());
    line->set_quantity(l.quantity());
  }
  payment::v1::ChargeRequest charge_request;
  charge_request.set_order_id(order.order_id());
  charge_request.set_customer_id(order.customer_id());
  *charge_request.mutable_amount() = order.total();

  inventory::v1::ReserveStockResponse reserved;
  payment::v1::ChargeResponse charged;
  grpc::ClientContext reserve_context, charge_context;
  // Not past the caller's own deadline: once it has passed, the caller has
  // its DEADLINE_EXCEEDED and no order id, so the calls count as failed and
  // what they did is undone below.
  const auto deadline =
      absl::ToChronoTime(std::min(absl::Now() + options_.call_timeout, caller_deadline));
  reserve_context.set_deadline(deadline);
  charge_context.set_deadline(deadline);
  CallGroup calls;
  inventory_->async()->ReserveStock(&reserve_context, &reserve_request, &reserved,
                                    calls.Add(&reserve->status));
  payment_->async()->Charge(&charge_context, &charge_request, &charged, calls.Add(&charge->status));
  calls.Wait();
  if (reserve->status.ok()) {
    reserve->yes = reserved.reserved();
    reserve->reason = reserved.reason();
  }
  if (charge->status.ok()) {
    charge->yes = charged.payment().status() == payment::v1::PAYMENT_STATUS_CAPTURED;
    charge->reason = charged.payment().status() == payment::v1::PAYMENT_STATUS_REFUNDED
                         ? "the order's payment was refunded before"
                         : charged.payment().reason();
  }
}

void SyncSaga::Abandon(Job job) {
  // Its caller has been told DEADLINE_EXCEEDED and holds no order id: a
  // reserve and a charge now would sell and bill an order nobody waits for.
  // Nothing was called, so nothing needs undoing.
  const std::string& id = job.order.order_id();
  absl::StatusOr<v1::Order> decided = manager_->Decide(
      id, {{SagaInput::kTimeout,
            "the PlaceOrder call's deadline passed before a worker took its saga; nothing was "
            "reserved or charged"}});
  if (!decided.ok()) {
    job.done(decided.status());
    return;
  }
  job.done(absl::DeadlineExceededError(
      absl::StrCat("order ", id, " cancelled: its deadline passed while it waited for a worker")));
}

void SyncSaga::Run(Job job) {
  const v1::Order& order = job.order;
  const std::string& id = order.order_id();
  Call reserve, charge;
  ReserveAndCharge(order, job.deadline, &reserve, &charge);

  std::vector<OrderManager::DirectOutcome> outcomes;
  std::string failure;
  grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
  if (reserve.status.ok()) {
    outcomes.push_back(
        {reserve.yes ? SagaInput::kStockReserved : SagaInput::kStockRejected, reserve.reason});
  } else {
    failure = Describe("inventory-service", reserve.status);
    if (reserve.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      code = reserve.status.error_code();
  }
  if (charge.status.ok()) {
    outcomes.push_back({charge.yes ? SagaInput::kPaymentCaptured : SagaInput::kPaymentDeclined,
                        absl::StrCat("payment declined: ", charge.reason)});
  } else {
    absl::StrAppend(&failure, failure.empty() ? "" : "; ",
                    Describe("payment-service", charge.status));
    if (charge.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      code = charge.status.error_code();
  }
  if (!failure.empty()) outcomes.push_back({SagaInput::kDependencyFailed, failure});

  const bool confirmed = reserve.status.ok() && reserve.yes && charge.status.ok() && charge.yes;
  if (!confirmed) {
    // Undo before the decision is stored: a crash in between leaves the
    // order PENDING for the saga timeout, which compensates again. A call
    // that failed may still have taken effect, so it is undone too; only a
    // clear "no" needs nothing.
    const bool release = !(reserve.status.ok() && !reserve.yes);
    const bool refund = !(charge.status.ok() && !charge.yes);
    if (release || refund) {
      std::string reason = !failure.empty()                      ? failure
                           : reserve.status.ok() && !reserve.yes ? reserve.reason
                                                                 : charge.reason;
      Compensate(order, reason, release, refund);
    }
  }

  absl::StatusOr<v1::Order> decided = manager_->Decide(id, outcomes);
  if (!decided.ok()) {
    job.done(decided.status());
    return;
  }
  if (decided->status() == v1::ORDER_STATUS_CANCELLED &&
      decided->cancel_cause() == events::v1::CANCEL_CAUSE_DEPENDENCY_UNAVAILABLE) {
    job.done(absl::Status(static_cast<absl::StatusCode>(code),
                          absl::StrCat("order ", id, " cancelled: ", decided->cancel_reason())));
    return;
  }
  if (confirmed && decided->status() == v1::ORDER_STATUS_CANCELLED) {
    // The customer cancelled while the calls ran (CancelOrder): the late
    // "yes" answers are recorded on the cancelled order and undone here.
    Compensate(order, decided->cancel_reason());
  }
  const bool commit = decided->status() == v1::ORDER_STATUS_CONFIRMED;
  job.done(*std::move(decided));
  // After the answer: in events mode too the client sees CONFIRMED before
  // inventory turns the reservation into a sale.
  if (commit) CommitStock(order);
}

void SyncSaga::Compensate(const v1::Order& order, const std::string& reason, bool release,
                          bool refund) {
  const std::string& id = order.order_id();
  // The reason may quote a peer's error message: whatever bytes it holds,
  // the services refuse control characters, and a refused compensation is
  // not tried again (the stock would stay held, the money taken).
  const std::string clean(Utf8Prefix(ControlsReplaced(reason), kMaxReasonBytes));
  inventory::v1::ReleaseStockRequest release_request;
  release_request.set_order_id(id);
  release_request.set_reason(clean);
  payment::v1::RefundRequest refund_request;
  refund_request.set_order_id(id);
  refund_request.set_reason(clean);
  inventory::v1::StockChangeResponse released;
  payment::v1::RefundResponse refunded;
  grpc::Status release_status, refund_status;
  grpc::ClientContext release_context, refund_context;
  const auto deadline = absl::ToChronoTime(absl::Now() + options_.call_timeout);
  release_context.set_deadline(deadline);
  refund_context.set_deadline(deadline);
  CallGroup calls;
  if (release) {
    inventory_->async()->ReleaseStock(&release_context, &release_request, &released,
                                      calls.Add(&release_status));
  }
  if (refund) {
    payment_->async()->Refund(&refund_context, &refund_request, &refunded,
                              calls.Add(&refund_status));
  }
  calls.Wait();
  // Not retried: this flow has no durable queue of pending compensations
  // (docs/EVENT-DRIVEN.md#the-honest-gaps-of-sync-mode).
  if (!release_status.ok()) {
    RELAY_LOG(
        Error, "release failed: stock may stay held for a cancelled order",
        {{"order", id}, {"error", Describe("inventory-service", release_status)}, {"corr", id}});
  }
  if (!refund_status.ok()) {
    RELAY_LOG(Error, "refund failed: money may stay taken for a cancelled order",
              {{"order", id}, {"error", Describe("payment-service", refund_status)}, {"corr", id}});
  }
}

void SyncSaga::CommitStock(const v1::Order& order) {
  inventory::v1::CommitStockRequest request;
  request.set_order_id(order.order_id());
  inventory::v1::StockChangeResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  grpc::Status status;
  CallGroup calls;
  inventory_->async()->CommitStock(&context, &request, &response, calls.Add(&status));
  calls.Wait();
  if (!status.ok()) {
    RELAY_LOG(Error, "commit failed: the confirmed order's stock stays HELD",
              {{"order", order.order_id()},
               {"error", Describe("inventory-service", status)},
               {"corr", order.order_id()}});
  }
}

}  // namespace relay::order
