#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_SERVICE_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_SERVICE_H_

// The gRPC face of inventory-service (relay.inventory.v1.InventoryService):
// products, stock levels and reservations, read from and written to
// inventory.db. A change of a product's name or price writes its
// product.updated event to the outbox in the same transaction.
// ReserveStock, ReleaseStock and CommitStock are the saga's inventory steps
// as direct calls (stock_steps.h), for order-service --flow=sync.

#include <functional>

#include "absl/time/time.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"

namespace relay::inventory {

// Callback-API service; each RPC runs one short SQLite transaction on the
// gRPC thread and finishes its DefaultReactor before returning (the
// reactor's lifetime is gRPC's). With a debug_delay, the three saga RPCs
// run on a grpc::Alarm's callback that long later instead, holding no
// thread meanwhile. Thread-safe (the Database serializes).
class InventoryServiceImpl final : public v1::InventoryService::CallbackService {
 public:
  // REQUIRES: `db` (with InventoryStore's schema) outlives the service;
  // `relay`, when not null, too (it is woken after a commit that added
  // outbox rows; else they wait for the relay's next poll).
  // `debug_delay` (>= 0; for benchmarks, inventory-service --debug_delay):
  // how long ReserveStock, ReleaseStock and CommitStock wait before they
  // start.
  InventoryServiceImpl(store::Database* db, store::OutboxRelay* relay,
                       absl::Duration debug_delay = absl::ZeroDuration());

  grpc::ServerUnaryReactor* ListProducts(grpc::CallbackServerContext* context,
                                         const v1::ListProductsRequest* request,
                                         v1::ListProductsResponse* response) override;
  grpc::ServerUnaryReactor* GetStock(grpc::CallbackServerContext* context,
                                     const v1::GetStockRequest* request,
                                     v1::Product* response) override;
  grpc::ServerUnaryReactor* SetStock(grpc::CallbackServerContext* context,
                                     const v1::SetStockRequest* request,
                                     v1::Product* response) override;
  grpc::ServerUnaryReactor* Restock(grpc::CallbackServerContext* context,
                                    const v1::RestockRequest* request,
                                    v1::Product* response) override;
  grpc::ServerUnaryReactor* ListReservations(grpc::CallbackServerContext* context,
                                             const v1::ListReservationsRequest* request,
                                             v1::ListReservationsResponse* response) override;
  grpc::ServerUnaryReactor* ReserveStock(grpc::CallbackServerContext* context,
                                         const v1::ReserveStockRequest* request,
                                         v1::ReserveStockResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseStock(grpc::CallbackServerContext* context,
                                         const v1::ReleaseStockRequest* request,
                                         v1::StockChangeResponse* response) override;
  grpc::ServerUnaryReactor* CommitStock(grpc::CallbackServerContext* context,
                                        const v1::CommitStockRequest* request,
                                        v1::StockChangeResponse* response) override;

  // The bodies, as absl::Status (converted at the edge).
  absl::Status DoListProducts(v1::ListProductsResponse* response);
  absl::Status DoGetStock(const v1::GetStockRequest& request, v1::Product* response);
  absl::Status DoSetStock(const v1::SetStockRequest& request, v1::Product* response);
  absl::Status DoRestock(const v1::RestockRequest& request, v1::Product* response);
  absl::Status DoListReservations(const v1::ListReservationsRequest& request,
                                  v1::ListReservationsResponse* response);
  absl::Status DoReserveStock(const v1::ReserveStockRequest& request,
                              v1::ReserveStockResponse* response);
  absl::Status DoReleaseStock(const v1::ReleaseStockRequest& request,
                              v1::StockChangeResponse* response);
  absl::Status DoCommitStock(const v1::CommitStockRequest& request,
                             v1::StockChangeResponse* response);

  // ListReservations' page size when the request gives none, and its cap.
  static constexpr int kDefaultLimit = 100;
  static constexpr int kMaxLimit = 1000;

 private:
  // Finishes the call with `body`'s status, now or after debug_delay_.
  grpc::ServerUnaryReactor* AfterDebugDelay(grpc::CallbackServerContext* context,
                                            std::function<absl::Status()> body);

  store::Database* const db_;
  store::OutboxRelay* const relay_;
  const absl::Duration debug_delay_;
};

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_SERVICE_H_
