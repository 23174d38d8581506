#ifndef RELAY_SERVICES_ORDER_ORDER_STORE_H_
#define RELAY_SERVICES_ORDER_ORDER_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/order/v1/order.pb.h"

namespace relay::order {

// A catalog entry of the read model built from product.updated.
struct CatalogEntry {
  std::string sku;
  std::string name;
  events::v1::Money price;
};

// An order found by its idempotency key.
struct KeyedOrder {
  v1::Order order;
  std::string request_fingerprint;  // empty: stored before fingerprints were
};

// order-service's tables (orders, order_idempotency, catalog) as functions on a transaction.
// The whole Order is kept as a serialized relay.order.v1.Order next to the
// columns it is looked up by. Stateless: thread safety is the Database's.
class OrderStore {
 public:
  // Outbox and inbox steps first, then the service's own.
  static std::vector<std::string> Migrations();

  static absl::StatusOr<std::optional<v1::Order>> Get(store::Tx& tx, const std::string& order_id);
  // The order `customer_id` placed with idempotency key `key`, with the
  // fingerprint of the request it was placed with (request_fingerprint.h;
  // empty for keys stored before fingerprints were). Keys are scoped per
  // customer: another customer's key never matches.
  static absl::StatusOr<std::optional<KeyedOrder>> GetByIdempotencyKey(
      store::Tx& tx, const std::string& customer_id, const std::string& key);
  // Inserts a new order and, when it has an idempotency key, binds
  // (customer, key) to it and to `request_fingerprint`. REQUIRES: order_id
  // and created_at set; the key not yet used by this customer (else the
  // SQL constraint error).
  static absl::Status Insert(store::Tx& tx, const v1::Order& order,
                             const std::string& request_fingerprint);
  // Rewrites an existing order (status, flags, reason, updated_at).
  static absl::Status Update(store::Tx& tx, const v1::Order& order);

  // Ids of PENDING orders created before `cutoff`, oldest first, at most
  // `limit` (the orders_by_status index).
  static absl::StatusOr<std::vector<std::string>> PendingCreatedBefore(store::Tx& tx,
                                                                       absl::Time cutoff,
                                                                       int limit);

  // Newest first. `page_token` is empty or a previous next_page_token
  // (INVALID_ARGUMENT when it does not parse).
  static absl::Status List(store::Tx& tx, const v1::ListOrdersRequest& request,
                           v1::ListOrdersResponse* response);

  static absl::Status UpsertProduct(store::Tx& tx, const events::v1::ProductUpdated& product,
                                    absl::Time now);
  static absl::StatusOr<std::optional<CatalogEntry>> GetProduct(store::Tx& tx,
                                                               const std::string& sku);
  static absl::StatusOr<int64_t> CatalogSize(store::Tx& tx);
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_ORDER_STORE_H_
