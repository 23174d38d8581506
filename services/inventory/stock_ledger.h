#ifndef RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_
#define RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "relay/events/v1/inventory_events.pb.h"

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
  // Lines merged by sku (an order naming a sku twice reserves the sum).
  std::vector<events::v1::StockLine> lines;
  // When !ok: the first short (or unknown) sku.
  std::string short_sku;
  int32_t requested = 0;
  int64_t available = 0;
  std::string reason;
};

// All or nothing (DESIGN §4.3): ok when every line's sku is known and has
// the quantity available; otherwise names the first sku (in order of first
// appearance) that is short. Pure.
ReserveDecision DecideReservation(const std::vector<events::v1::StockLine>& lines,
                                  const absl::flat_hash_map<std::string, StockLevel>& levels);

// Stock effects of a reservation's life, applied to `level`:
//   Hold:    reserved += q              (order.created, reserved)
//   Commit:  on_hand -= q, reserved -= q (order.confirmed: a sale)
//   Release: reserved -= q              (order.cancelled)
void Hold(StockLevel& level, int64_t quantity);
void Commit(StockLevel& level, int64_t quantity);
void Release(StockLevel& level, int64_t quantity);

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_STOCK_LEDGER_H_
