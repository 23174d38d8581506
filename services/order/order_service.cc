#include "services/order/order_service.h"

#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/text.h"
#include "services/order/order_validation.h"
#include "services/shared/field_bounds.h"

namespace relay::order {
namespace {

template <typename T>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::StatusOr<T> result,
                                 T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) {
    *response = std::move(*result);
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(ToGrpcStatus(result.status()));
  }
  return reactor;
}

// Streams one order's states until a terminal one, or until the hub stops
// (the service is shutting down: UNAVAILABLE, so the client retries
// elsewhere or later). Owned by gRPC from creation to OnDone(), where it
// deletes itself; it removes itself from the hub before finishing, so the
// hub never calls a finished reactor.
class WatchReactor final : public grpc::ServerWriteReactor<v1::Order> {
 public:
  WatchReactor(WatchHub* hub, const std::string& order_id) : hub_(hub) {
    absl::MutexLock lock(&mu_);
    handle_ = hub_->Add(
        order_id, [this](const v1::Order& order) { OnChange(order); }, [this] { OnHubStop(); });
    if (handle_ == 0) FinishLocked(ShuttingDown());
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    uint64_t handle;
    {
      absl::MutexLock lock(&mu_);
      handle = handle_;
    }
    // Not under mu_: Remove() waits for a running sink, and sinks take mu_.
    hub_->Remove(handle);
    delete this;
  }

 private:
  static grpc::Status ShuttingDown() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "order-service is shutting down");
  }

  // Called by WatchHub::Stop().
  void OnHubStop() {
    absl::MutexLock lock(&mu_);
    FinishLocked(ShuttingDown());
  }

  // Called on the hub's thread.
  void OnChange(const v1::Order& order) {
    absl::MutexLock lock(&mu_);
    if (done_ || terminal_queued_) return;
    if (last_.has_value() && last_->SerializeAsString() == order.SerializeAsString()) return;
    last_ = order;
    queue_.push_back(order);
    if (IsTerminal(order.status())) terminal_queued_ = true;
    MaybeWriteLocked();
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || done_) return;
    if (queue_.empty()) {
      if (terminal_queued_) FinishLocked(grpc::Status::OK);
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_) return;
    done_ = true;
    Finish(status);
  }

  WatchHub* const hub_;
  absl::Mutex mu_;
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::Order> queue_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::Order> last_ ABSL_GUARDED_BY(mu_);
  v1::Order current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_queued_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class FinishedWriteReactor final : public grpc::ServerWriteReactor<v1::Order> {
 public:
  explicit FinishedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* OrderServiceImpl::PlaceOrder(grpc::CallbackServerContext* context,
                                                       const v1::PlaceOrderRequest* request,
                                                       v1::PlaceOrderResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The customer id as logged: a refused request may carry megabytes.
  std::string customer = request->customer_id().size() <= services::kMaxIdBytes
                             ? request->customer_id()
                             : Excerpt(request->customer_id());
  // The reactor and response stay valid until Finish(), called once by the
  // answer (from the group-commit thread). PlaceAsync validates the request
  // (ValidatePlaceOrder) before anything else.
  if (sync_ != nullptr && sync_->Full()) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("order-service is overloaded: ", SyncSaga::kMaxQueued,
                     " orders wait for their direct calls; nothing was stored, try again later")));
    return reactor;
  }
  const absl::Time deadline = absl::FromChrono(context->deadline());
  manager_->PlaceAsync(
      *request,
      [reactor, response, customer = std::move(customer), sync = sync_,
       deadline](absl::StatusOr<OrderManager::PlaceResult> placed) {
        if (!placed.ok()) {
          RELAY_LOG(Info, "order rejected",
                    {{"customer", customer}, {"error", placed.status().ToString()}});
          reactor->Finish(ToGrpcStatus(placed.status()));
          return;
        }
        if (sync != nullptr && !placed->replayed) {
          // --flow=sync: the answer waits for the direct calls (sync_saga.h).
          sync->RunAsync(
              std::move(placed->order),
              [reactor, response](absl::StatusOr<v1::Order> ended) {
                if (!ended.ok()) {
                  reactor->Finish(ToGrpcStatus(ended.status()));
                  return;
                }
                *response->mutable_order() = *std::move(ended);
                reactor->Finish(grpc::Status::OK);
              },
              deadline);
          return;
        }
        *response->mutable_order() = std::move(placed->order);
        response->set_replayed(placed->replayed);
        reactor->Finish(grpc::Status::OK);
      },
      deadline);
  return reactor;
}

grpc::ServerUnaryReactor* OrderServiceImpl::GetOrder(grpc::CallbackServerContext* context,
                                                     const v1::GetOrderRequest* request,
                                                     v1::Order* response) {
  if (absl::Status s = ValidateGetOrder(*request); !s.ok()) {
    return Answer<v1::Order>(context, s, response);
  }
  return Answer(context, manager_->Get(request->order_id()), response);
}

grpc::ServerUnaryReactor* OrderServiceImpl::ListOrders(grpc::CallbackServerContext* context,
                                                       const v1::ListOrdersRequest* request,
                                                       v1::ListOrdersResponse* response) {
  if (absl::Status s = ValidateListOrders(*request); !s.ok()) {
    return Answer<v1::ListOrdersResponse>(context, s, response);
  }
  return Answer(context, manager_->List(*request), response);
}

grpc::ServerUnaryReactor* OrderServiceImpl::CancelOrder(grpc::CallbackServerContext* context,
                                                        const v1::CancelOrderRequest* request,
                                                        v1::Order* response) {
  if (absl::Status s = ValidateCancelOrder(*request); !s.ok()) {
    return Answer<v1::Order>(context, s, response);
  }
  return Answer(context, manager_->Cancel(request->order_id(), request->reason()), response);
}

grpc::ServerWriteReactor<v1::Order>* OrderServiceImpl::WatchOrder(
    grpc::CallbackServerContext*, const v1::WatchOrderRequest* request) {
  if (absl::Status s = ValidateWatchOrder(*request); !s.ok()) {
    return new FinishedWriteReactor(ToGrpcStatus(s));
  }
  absl::StatusOr<v1::Order> order = manager_->Get(request->order_id());
  if (!order.ok()) return new FinishedWriteReactor(ToGrpcStatus(order.status()));
  return new WatchReactor(hub_, request->order_id());
}

}  // namespace relay::order
