#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_TEST_UTIL_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_TEST_UTIL_H_

// Test-only helpers shared by inventory-service's tests: building the order
// events it consumes and reading what it wrote to its outbox.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "common/store/sqlite.h"
#include "relay/events/v1/event.pb.h"
#include "relay/events/v1/order_events.pb.h"

namespace relay::inventory::test_util {

// An order line: `quantity` of `sku`.
inline events::v1::OrderLine Line(const std::string& sku, int32_t quantity) {
  events::v1::OrderLine l;
  l.set_sku(sku);
  l.set_quantity(quantity);
  return l;
}

// An event from order-service about `order_id` with `payload`, as it
// arrives on topic "orders": keyed and correlated by the order id.
inline events::v1::Event OrderEventFor(const std::string& type, const std::string& order_id,
                                       const google::protobuf::Message& payload) {
  events::v1::Event e;
  e.set_id(NewEventId());
  e.set_topic("orders");
  e.set_type(type);
  e.set_key(order_id);
  e.set_source("order-service");
  (*e.mutable_headers())["correlation_id"] = order_id;
  e.set_data(payload.SerializeAsString());
  return e;
}

inline events::v1::Event Created(const std::string& order_id,
                                 const std::vector<events::v1::OrderLine>& lines) {
  events::v1::OrderCreated m;
  m.set_order_id(order_id);
  m.set_customer_id("c-1");
  for (const events::v1::OrderLine& l : lines) *m.add_lines() = l;
  return OrderEventFor("order.created", order_id, m);
}

inline events::v1::Event Confirmed(const std::string& order_id) {
  events::v1::OrderConfirmed m;
  m.set_order_id(order_id);
  return OrderEventFor("order.confirmed", order_id, m);
}

inline events::v1::Event Cancelled(const std::string& order_id, const std::string& reason) {
  events::v1::OrderCancelled m;
  m.set_order_id(order_id);
  m.set_cause(events::v1::CANCEL_CAUSE_CUSTOMER);
  m.set_reason(reason);
  return OrderEventFor("order.cancelled", order_id, m);
}

// The outbox rows of `db`, in order: (topic, event).
inline absl::StatusOr<std::vector<std::pair<std::string, events::v1::Event>>> OutboxRows(
    store::Database& db) {
  std::vector<std::pair<std::string, events::v1::Event>> rows;
  absl::Status s = db.Read([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<store::Statement> select =
        tx.Prepare("SELECT topic, event FROM outbox ORDER BY seq");
    if (!select.ok()) return select.status();
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      events::v1::Event e;
      if (!e.ParseFromString(select->ColumnBlob(1))) {
        return absl::DataLossError("an outbox row does not parse");
      }
      rows.emplace_back(select->ColumnText(0), std::move(e));
    }
  });
  if (!s.ok()) return s;
  return rows;
}

// The payload of `e` as a `Message` (empty when it does not parse).
template <typename Message>
Message Payload(const events::v1::Event& e) {
  Message m;
  m.ParseFromString(e.data());
  return m;
}

}  // namespace relay::inventory::test_util

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_TEST_UTIL_H_
