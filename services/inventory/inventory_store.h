#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_STORE_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_STORE_H_

// inventory-service's SQLite schema and the queries its handlers and API
// run, all through a caller's store::Tx so they join the caller's
// transaction (and its outbox rows and inbox claim).
//
//   db->Migrate(InventoryStore::Migrations());
//   db->Transaction([&](store::Tx& tx) -> absl::Status {
//     absl::StatusOr<std::optional<Product>> p = InventoryStore::GetProduct(tx, "KB-1");
//     ...
//   });

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/event.pb.h"
#include "relay/inventory/v1/inventory.pb.h"
#include "services/inventory/stock_ledger.h"

namespace relay::inventory {

inline constexpr char kServiceName[] = "inventory-service";
// The topic inventory-service publishes to, and the one it consumes.
inline constexpr char kInventoryTopic[] = "inventory";
inline constexpr char kOrdersTopic[] = "orders";

// One row of `reservations`: `quantity` units of `sku` for `order_id`.
struct ReservationRow {
  std::string order_id;
  std::string sku;
  int64_t quantity = 0;
  v1::ReservationState state = v1::RESERVATION_STATE_UNSPECIFIED;
};

// What ListReservations returns.
struct ReservationFilter {
  std::string order_id;  // empty: every order
  bool held_only = false;
  int64_t limit = 100;  // REQUIRES: > 0
};

// Stateless; every function works inside the caller's transaction `tx`.
// Thread safety is the Database's.
class InventoryStore {
 public:
  // Every schema step of inventory.db: the outbox's and the inbox's first,
  // then products and reservations. Append-only (see Database::Migrate).
  static std::vector<std::string> Migrations();

  // The product `sku`, or nullopt when there is none.
  static absl::StatusOr<std::optional<v1::Product>> GetProduct(store::Tx& tx,
                                                               absl::string_view sku);
  // Every product, sorted by sku.
  static absl::StatusOr<std::vector<v1::Product>> ListProducts(store::Tx& tx);
  static absl::StatusOr<int64_t> CountProducts(store::Tx& tx);

  // Inserts a new product (sku, name, price, on_hand; reserved 0).
  // ALREADY_EXISTS when the sku is taken.
  static absl::Status InsertProduct(store::Tx& tx, const v1::Product& product, absl::Time now);
  // Overwrites name, price, on_hand and reserved of an existing product
  // (NOT_FOUND otherwise). `available` is ignored.
  static absl::Status UpdateProduct(store::Tx& tx, const v1::Product& product, absl::Time now);

  // Stock levels of `skus` (unknown skus are absent from the map).
  static absl::StatusOr<absl::flat_hash_map<std::string, StockLevel>> Levels(
      store::Tx& tx, const std::vector<std::string>& skus);
  // Writes `level` to an existing product (NOT_FOUND otherwise).
  static absl::Status SetLevel(store::Tx& tx, absl::string_view sku, const StockLevel& level,
                               absl::Time now);

  // The reservations of `order_id`, by sku; `held_only` keeps those HELD.
  static absl::StatusOr<std::vector<ReservationRow>> ReservationsOf(store::Tx& tx,
                                                                    absl::string_view order_id,
                                                                    bool held_only);
  // Inserts a reservation; ALREADY_EXISTS for an (order, sku) pair that has one.
  static absl::Status InsertReservation(store::Tx& tx, const ReservationRow& row, absl::Time now);
  // Moves the reservation (order_id, sku) to `state` (NOT_FOUND when absent).
  static absl::Status SetReservationState(store::Tx& tx, absl::string_view order_id,
                                          absl::string_view sku, v1::ReservationState state,
                                          absl::Time now);
  // Reservations matching `filter`, newest first.
  static absl::StatusOr<std::vector<v1::Reservation>> ListReservations(
      store::Tx& tx, const ReservationFilter& filter);

  // The seed catalog (docs/ARCHITECTURE.md#seed-data): ten products in USD; GPU-1 has one unit,
  // so an order for two shows the out-of-stock path by hand.
  static std::vector<v1::Product> SeedCatalog();
  // When there are no products yet: inserts SeedCatalog() and, for each
  // product, its product.updated event in the outbox, in `tx`. Returns how
  // many products it inserted (0 when there were some already).
  static absl::StatusOr<int> SeedIfEmpty(store::Tx& tx, absl::Time now);
};

// The "product.updated" event of `product` for topic "inventory": keyed by
// sku, no correlation (it belongs to no order).
events::v1::Event ProductUpdatedEvent(const v1::Product& product);

// An event of inventory-service about order `order_id`, caused by `cause`:
// key and correlation_id = order id, causation_id = cause.id(), the
// cause's traceparent carried on. `payload` is serialized into data.
events::v1::Event OrderEvent(absl::string_view type, absl::string_view order_id,
                             const events::v1::Event& cause,
                             const google::protobuf::Message& payload);

// "89.00 USD" for a log line.
std::string FormatMoney(int64_t amount_minor, absl::string_view currency);

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_STORE_H_
