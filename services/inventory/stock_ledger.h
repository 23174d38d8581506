#ifndef RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_
#define RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/inventory/v1/inventory.pb.h"

namespace relay::inventory {

// A product's stock: on_hand counts reserved units too.
struct StockLevel {
  int64_t on_hand = 0;
  int64_t reserved = 0;
  int64_t available() const { return on_hand - reserved; }
};

// The answer to "can this order be reserved?".
struct ReserveDecision {
  bool ok = false;
  // Lines merged by sku (an order naming a sku twice reserves the sum), in
  // order of first appearance. What to hold when ok.
  std::vector<events::v1::StockLine> lines;
  // When !ok: the first short (or unknown) sku.
  std::string short_sku;
  int32_t requested = 0;
  int64_t available = 0;
  std::string reason;
};

// All or nothing (docs/ARCHITECTURE.md#saga-steps, step 3): ok when every line's sku is known
// and has the quantity available; otherwise names the first sku (in order of first
// appearance) that is short. A line with quantity < 1, or a sku whose lines
// add up past int32, is rejected too (order-service never sends one, but a
// negative quantity must not turn into stock). An order without lines is
// rejected. Pure.
ReserveDecision DecideReservation(const std::vector<events::v1::StockLine>& lines,
                                  const absl::flat_hash_map<std::string, StockLevel>& levels);

// Stock effects of a reservation's life, applied to `level`:
//   Hold:    reserved += q              (order.created, reserved)
//   Commit:  on_hand -= q, reserved -= q (order.confirmed: a sale)
//   Release: reserved -= q              (order.cancelled)
void Hold(StockLevel& level, int64_t quantity);
void Commit(StockLevel& level, int64_t quantity);
void Release(StockLevel& level, int64_t quantity);

// Checks setting a product's on-hand quantity to `on_hand`: INVALID_ARGUMENT
// when negative, FAILED_PRECONDITION when below what `level` has reserved
// (the reservations of pending orders must stay covered). Messages name
// `sku`. Pure.
absl::Status CheckSetOnHand(absl::string_view sku, const StockLevel& level, int64_t on_hand);

// Checks adding `quantity` to `level`'s on-hand quantity: INVALID_ARGUMENT
// unless quantity > 0 and the sum stays below kMaxOnHand. Pure.
absl::Status CheckRestock(absl::string_view sku, const StockLevel& level, int64_t quantity);

// Largest on-hand quantity a product may have (keeps every sum of stock
// counters far from int64 overflow).
inline constexpr int64_t kMaxOnHand = int64_t{1} << 50;

// What a SetStock request does to a product.
struct SetStockPlan {
  // The product as it will be stored (available = on_hand - reserved).
  v1::Product product;
  bool created = false;
  // Name or price differ (or the product is new): product.updated is due.
  bool catalog_changed = false;
};

// The rules of SetStock over the product's current row (`current`, nullopt
// when the sku is unknown):
//  - INVALID_ARGUMENT: no sku, on_hand < 0 (or above kMaxOnHand), a price
//    with a negative amount or a currency that is not 3 capital letters;
//  - NOT_FOUND: an unknown sku without both a name and a price;
//  - FAILED_PRECONDITION: on_hand below the units reserved now.
// An empty name or an absent price leaves the current one. Pure.
absl::StatusOr<SetStockPlan> PlanSetStock(const std::optional<v1::Product>& current,
                                          const v1::SetStockRequest& request);

// "KB-1x2,MS-1x1": the lines of a reservation for a log line. Pure.
std::string FormatLines(const std::vector<events::v1::StockLine>& lines);

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_
