#include "services/shared/closed_orders.h"

namespace relay::services {

std::string ClosedOrders::Migration() {
  return "CREATE TABLE closed_orders ("
         "  order_id TEXT PRIMARY KEY,"
         "  closed_us INTEGER NOT NULL)";
}

absl::Status ClosedOrders::Close(store::Tx& tx, absl::string_view order_id, int64_t now_us) {
  absl::StatusOr<store::Statement> insert =
      tx.Prepare("INSERT OR IGNORE INTO closed_orders (order_id, closed_us) VALUES (?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, order_id); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(2, now_us); !s.ok()) return s;
  return insert->Run();
}

absl::StatusOr<bool> ClosedOrders::IsClosed(store::Tx& tx, absl::string_view order_id) {
  absl::StatusOr<store::Statement> select =
      tx.Prepare("SELECT 1 FROM closed_orders WHERE order_id = ?");
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, order_id); !s.ok()) return s;
  return select->Step();
}

}  // namespace relay::services
