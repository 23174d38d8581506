#ifndef RELAY_SERVICES_ORDER_ORDER_SERVICE_H_
#define RELAY_SERVICES_ORDER_ORDER_SERVICE_H_

#include "relay/order/v1/order.grpc.pb.h"
#include "services/order/order_manager.h"
#include "services/order/sync_saga.h"
#include "services/order/watch_hub.h"

namespace relay::order {

// The gRPC face of order-service (relay.order.v1.OrderService), callback
// API. Unary calls run on gRPC's threads against OrderManager; WatchOrder is
// a write reactor fed by the WatchHub.
//
// With a SyncSaga (--flow=sync), PlaceOrder answers once the saga ended:
// the order CONFIRMED or CANCELLED, or the error of a failed call
// (sync_saga.h); otherwise it answers the PENDING order at once.
//
// Thread-safe. `manager`, `hub` and `sync` must outlive the server; `sync`
// may be null (events mode).
class OrderServiceImpl final : public v1::OrderService::CallbackService {
 public:
  OrderServiceImpl(OrderManager* manager, WatchHub* hub, SyncSaga* sync = nullptr)
      : manager_(manager), hub_(hub), sync_(sync) {}

  grpc::ServerUnaryReactor* PlaceOrder(grpc::CallbackServerContext* context,
                                       const v1::PlaceOrderRequest* request,
                                       v1::PlaceOrderResponse* response) override;
  grpc::ServerUnaryReactor* GetOrder(grpc::CallbackServerContext* context,
                                     const v1::GetOrderRequest* request,
                                     v1::Order* response) override;
  grpc::ServerUnaryReactor* ListOrders(grpc::CallbackServerContext* context,
                                       const v1::ListOrdersRequest* request,
                                       v1::ListOrdersResponse* response) override;
  grpc::ServerUnaryReactor* CancelOrder(grpc::CallbackServerContext* context,
                                        const v1::CancelOrderRequest* request,
                                        v1::Order* response) override;
  grpc::ServerWriteReactor<v1::Order>* WatchOrder(grpc::CallbackServerContext* context,
                                                  const v1::WatchOrderRequest* request) override;

 private:
  OrderManager* const manager_;
  WatchHub* const hub_;
  SyncSaga* const sync_;
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_SERVICE_H_
