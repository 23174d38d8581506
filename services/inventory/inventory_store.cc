#include "services/inventory/inventory_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/store/inbox.h"
#include "common/store/outbox.h"
#include "common/text.h"
#include "common/trace.h"
#include "google/protobuf/util/time_util.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/shared/closed_orders.h"

namespace relay::inventory {
namespace {

using google::protobuf::util::TimeUtil;
using store::Statement;
using store::Tx;

const char* StateName(v1::ReservationState state) {
  switch (state) {
    case v1::RESERVATION_STATE_HELD:
      return "HELD";
    case v1::RESERVATION_STATE_COMMITTED:
      return "COMMITTED";
    case v1::RESERVATION_STATE_RELEASED:
      return "RELEASED";
    default:
      return "UNSPECIFIED";
  }
}

v1::ReservationState StateFromName(absl::string_view name) {
  if (name == "HELD") return v1::RESERVATION_STATE_HELD;
  if (name == "COMMITTED") return v1::RESERVATION_STATE_COMMITTED;
  if (name == "RELEASED") return v1::RESERVATION_STATE_RELEASED;
  return v1::RESERVATION_STATE_UNSPECIFIED;
}

constexpr char kProductColumns[] = "sku, name, price_minor, currency, on_hand, reserved";

// A product from a row selected with kProductColumns.
v1::Product ReadProduct(const Statement& row) {
  v1::Product p;
  p.set_sku(row.ColumnText(0));
  p.set_name(row.ColumnText(1));
  p.mutable_price()->set_amount_minor(row.ColumnInt64(2));
  p.mutable_price()->set_currency(row.ColumnText(3));
  p.set_on_hand(row.ColumnInt64(4));
  p.set_reserved(row.ColumnInt64(5));
  p.set_available(p.on_hand() - p.reserved());
  return p;
}

// A value to bind: text or int64. Only lives within one call.
struct Arg {
  Arg(absl::string_view t) : text(t), is_text(true) {}   // NOLINT: implicit on purpose
  Arg(const std::string& t) : text(t), is_text(true) {}  // NOLINT
  Arg(const char* t) : text(t), is_text(true) {}         // NOLINT
  Arg(int64_t i) : integer(i), is_text(false) {}         // NOLINT
  absl::string_view text;
  int64_t integer = 0;
  bool is_text;
};

// Binds `args` in order to `stmt`'s parameters 1, 2, ...
absl::Status Bind(Statement& stmt, std::initializer_list<Arg> args) {
  int index = 1;
  for (const Arg& a : args) {
    absl::Status s = a.is_text ? stmt.BindText(index, a.text) : stmt.BindInt64(index, a.integer);
    if (!s.ok()) return s;
    ++index;
  }
  return absl::OkStatus();
}

// Prepares `sql`, binds `args` and runs it to completion; returns the rows
// changed.
absl::StatusOr<int64_t> Run(Tx& tx, absl::string_view sql, std::initializer_list<Arg> args) {
  absl::StatusOr<Statement> stmt = tx.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  if (absl::Status s = Bind(*stmt, args); !s.ok()) return s;
  if (absl::Status s = stmt->Run(); !s.ok()) return s;
  return tx.changes();
}

// Runs the insert `sql` unless `exists_sql` finds a row for `key`, which is
// ALREADY_EXISTS naming `what` (clearer than SQLite's constraint message).
absl::Status InsertOnce(Tx& tx, absl::string_view sql, std::initializer_list<Arg> args,
                        absl::string_view exists_sql, std::initializer_list<Arg> key,
                        const std::string& what) {
  absl::StatusOr<Statement> exists = tx.Prepare(exists_sql);
  if (!exists.ok()) return exists.status();
  if (absl::Status s = Bind(*exists, key); !s.ok()) return s;
  absl::StatusOr<bool> found = exists->Step();
  if (!found.ok()) return found.status();
  if (*found) return absl::AlreadyExistsError(absl::StrCat(what, " already exists"));
  return Run(tx, sql, args).status();
}

}  // namespace

std::vector<std::string> InventoryStore::Migrations() {
  std::vector<std::string> steps = store::Outbox::Migrations();
  for (std::string& s : store::Inbox::Migrations()) steps.push_back(std::move(s));
  // The CHECKs make a bug that would break a stock invariant fail its
  // transaction instead of committing it.
  steps.push_back(
      "CREATE TABLE products ("
      "  sku TEXT PRIMARY KEY,"
      "  name TEXT NOT NULL,"
      "  price_minor INTEGER NOT NULL CHECK (price_minor >= 0),"
      "  currency TEXT NOT NULL,"
      "  on_hand INTEGER NOT NULL CHECK (on_hand >= 0),"
      "  reserved INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),"
      "  updated_us INTEGER NOT NULL);"
      "CREATE TABLE reservations ("
      "  order_id TEXT NOT NULL,"
      "  sku TEXT NOT NULL REFERENCES products(sku),"
      "  quantity INTEGER NOT NULL CHECK (quantity > 0),"
      "  state TEXT NOT NULL CHECK (state IN ('HELD', 'COMMITTED', 'RELEASED')),"
      "  created_us INTEGER NOT NULL,"
      "  updated_us INTEGER NOT NULL,"
      "  PRIMARY KEY (order_id, sku));"
      "CREATE INDEX reservations_by_time ON reservations(created_us);"
      "CREATE INDEX reservations_by_state ON reservations(state, created_us)");
  // Shared steps that came later: at the end, since steps are positional.
  for (std::string& s : store::Inbox::PruneIndexMigrations()) steps.push_back(std::move(s));
  for (std::string& s : store::Outbox::ParkedMigrations()) steps.push_back(std::move(s));
  steps.push_back(services::ClosedOrders::Migration());
  return steps;
}

absl::StatusOr<std::optional<v1::Product>> InventoryStore::GetProduct(Tx& tx,
                                                                      absl::string_view sku) {
  absl::StatusOr<Statement> select =
      tx.Prepare(absl::StrCat("SELECT ", kProductColumns, " FROM products WHERE sku = ?"));
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, sku); !s.ok()) return s;
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<v1::Product>();
  return std::optional<v1::Product>(ReadProduct(*select));
}

absl::StatusOr<std::vector<v1::Product>> InventoryStore::ListProducts(Tx& tx) {
  absl::StatusOr<Statement> select =
      tx.Prepare(absl::StrCat("SELECT ", kProductColumns, " FROM products ORDER BY sku"));
  if (!select.ok()) return select.status();
  std::vector<v1::Product> products;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return products;
    products.push_back(ReadProduct(*select));
  }
}

absl::StatusOr<int64_t> InventoryStore::CountProducts(Tx& tx) {
  absl::StatusOr<Statement> count = tx.Prepare("SELECT count(*) FROM products");
  if (!count.ok()) return count.status();
  absl::StatusOr<bool> row = count->Step();
  if (!row.ok()) return row.status();
  return *row ? count->ColumnInt64(0) : 0;
}

absl::Status InventoryStore::InsertProduct(Tx& tx, const v1::Product& p, absl::Time now) {
  return InsertOnce(tx,
                    "INSERT INTO products (sku, name, price_minor, currency, on_hand, reserved,"
                    " updated_us) VALUES (?, ?, ?, ?, ?, 0, ?)",
                    {p.sku(), p.name(), p.price().amount_minor(), p.price().currency(), p.on_hand(),
                     absl::ToUnixMicros(now)},
                    "SELECT 1 FROM products WHERE sku = ?", {p.sku()},
                    absl::StrCat("product ", p.sku()));
}

absl::Status InventoryStore::UpdateProduct(Tx& tx, const v1::Product& p, absl::Time now) {
  absl::StatusOr<int64_t> changed =
      Run(tx,
          "UPDATE products SET name = ?, price_minor = ?, currency = ?, on_hand = ?,"
          " reserved = ?, updated_us = ? WHERE sku = ?",
          {p.name(), p.price().amount_minor(), p.price().currency(), p.on_hand(), p.reserved(),
           absl::ToUnixMicros(now), p.sku()});
  if (!changed.ok()) return changed.status();
  if (*changed == 0) return absl::NotFoundError(absl::StrCat("unknown sku ", Excerpt(p.sku())));
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_map<std::string, StockLevel>> InventoryStore::Levels(
    Tx& tx, const std::vector<std::string>& skus) {
  absl::flat_hash_map<std::string, StockLevel> levels;
  absl::StatusOr<Statement> select =
      tx.Prepare("SELECT on_hand, reserved FROM products WHERE sku = ?");
  if (!select.ok()) return select.status();
  for (const std::string& sku : skus) {
    if (levels.contains(sku)) continue;
    select->Reset();
    if (absl::Status s = select->BindText(1, sku); !s.ok()) return s;
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (*row) levels[sku] = StockLevel{select->ColumnInt64(0), select->ColumnInt64(1)};
  }
  return levels;
}

absl::Status InventoryStore::SetLevel(Tx& tx, absl::string_view sku, const StockLevel& level,
                                      absl::Time now) {
  absl::StatusOr<int64_t> changed =
      Run(tx, "UPDATE products SET on_hand = ?, reserved = ?, updated_us = ? WHERE sku = ?",
          {level.on_hand, level.reserved, absl::ToUnixMicros(now), sku});
  if (!changed.ok()) return changed.status();
  if (*changed == 0) return absl::NotFoundError(absl::StrCat("unknown sku ", Excerpt(sku)));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReservationRow>> InventoryStore::ReservationsOf(
    Tx& tx, absl::string_view order_id, bool held_only) {
  absl::StatusOr<Statement> select = tx.Prepare(
      held_only ? "SELECT sku, quantity, state FROM reservations"
                  " WHERE order_id = ? AND state = 'HELD' ORDER BY sku"
                : "SELECT sku, quantity, state FROM reservations WHERE order_id = ? ORDER BY sku");
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, order_id); !s.ok()) return s;
  std::vector<ReservationRow> rows;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return rows;
    rows.push_back(ReservationRow{std::string(order_id), select->ColumnText(0),
                                  select->ColumnInt64(1), StateFromName(select->ColumnText(2))});
  }
}

absl::Status InventoryStore::InsertReservation(Tx& tx, const ReservationRow& r, absl::Time now) {
  const int64_t us = absl::ToUnixMicros(now);
  return InsertOnce(tx,
                    "INSERT INTO reservations (order_id, sku, quantity, state, created_us,"
                    " updated_us) VALUES (?, ?, ?, ?, ?, ?)",
                    {r.order_id, r.sku, r.quantity, StateName(r.state), us, us},
                    "SELECT 1 FROM reservations WHERE order_id = ? AND sku = ?",
                    {r.order_id, r.sku},
                    absl::StrCat("reservation of sku ", r.sku, " for order ", r.order_id));
}

absl::Status InventoryStore::SetReservationState(Tx& tx, absl::string_view order_id,
                                                 absl::string_view sku, v1::ReservationState state,
                                                 absl::Time now) {
  absl::StatusOr<int64_t> changed =
      Run(tx, "UPDATE reservations SET state = ?, updated_us = ? WHERE order_id = ? AND sku = ?",
          {StateName(state), absl::ToUnixMicros(now), order_id, sku});
  if (!changed.ok()) return changed.status();
  if (*changed == 0) {
    return absl::NotFoundError(
        absl::StrCat("no reservation of sku ", Excerpt(sku), " for order ", Excerpt(order_id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Reservation>> InventoryStore::ListReservations(
    Tx& tx, const ReservationFilter& filter) {
  // `? = ''` lets one cached statement serve every combination of filters.
  absl::StatusOr<Statement> select = tx.Prepare(
      "SELECT order_id, sku, quantity, state, created_us, updated_us FROM reservations"
      " WHERE (? = '' OR order_id = ?) AND (? = 0 OR state = 'HELD')"
      " ORDER BY created_us DESC, order_id DESC, sku LIMIT ?");
  if (!select.ok()) return select.status();
  if (absl::Status s = Bind(*select, {filter.order_id, filter.order_id,
                                      int64_t{filter.held_only ? 1 : 0}, filter.limit});
      !s.ok()) {
    return s;
  }
  std::vector<v1::Reservation> out;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    v1::Reservation& r = out.emplace_back();
    r.set_order_id(select->ColumnText(0));
    r.set_sku(select->ColumnText(1));
    r.set_quantity(static_cast<int32_t>(select->ColumnInt64(2)));
    r.set_state(StateFromName(select->ColumnText(3)));
    *r.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(select->ColumnInt64(4));
    *r.mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(select->ColumnInt64(5));
  }
}

std::vector<v1::Product> InventoryStore::SeedCatalog() {
  struct Seed {
    const char* sku;
    const char* name;
    int64_t price_minor;
    int64_t on_hand;
  };
  static constexpr Seed kSeed[] = {
      {"KB-1", "Mechanical keyboard", 8900, 50}, {"MS-1", "Wireless mouse", 2500, 100},
      {"MN-27", "27-inch monitor", 24900, 20},   {"HD-1", "Headphones", 5900, 30},
      {"CB-USB", "USB-C cable", 950, 500},       {"WC-1", "Webcam", 4500, 25},
      {"DK-1", "Docking station", 12900, 10},    {"LP-1", "Laptop stand", 3500, 40},
      {"SSD-1", "1 TB SSD", 7900, 60},           {"GPU-1", "Graphics card", 29900, 1},
  };
  std::vector<v1::Product> products;
  for (const Seed& s : kSeed) {
    v1::Product& p = products.emplace_back();
    p.set_sku(s.sku);
    p.set_name(s.name);
    p.mutable_price()->set_amount_minor(s.price_minor);
    p.mutable_price()->set_currency("USD");
    p.set_on_hand(s.on_hand);
    p.set_available(s.on_hand);
  }
  return products;
}

absl::StatusOr<int> InventoryStore::SeedIfEmpty(Tx& tx, absl::Time now) {
  absl::StatusOr<int64_t> count = CountProducts(tx);
  if (!count.ok()) return count.status();
  if (*count > 0) return 0;
  int inserted = 0;
  for (const v1::Product& p : SeedCatalog()) {
    if (absl::Status s = InsertProduct(tx, p, now); !s.ok()) return s;
    // order-service builds its catalog from these events, so each product
    // and its event commit together.
    absl::StatusOr<std::string> id =
        store::Outbox::Add(tx, kInventoryTopic, ProductUpdatedEvent(p));
    if (!id.ok()) return id.status();
    ++inserted;
  }
  return inserted;
}

events::v1::Event ProductUpdatedEvent(const v1::Product& product) {
  events::v1::ProductUpdated payload;
  payload.set_sku(product.sku());
  payload.set_name(product.name());
  *payload.mutable_price() = product.price();
  events::v1::Event event;
  event.set_type("product.updated");
  event.set_key(product.sku());
  event.set_source(kServiceName);
  event.set_data(payload.SerializeAsString());
  return event;
}

events::v1::Event OrderEvent(absl::string_view type, absl::string_view order_id,
                             const events::v1::Event& cause,
                             const google::protobuf::Message& payload) {
  events::v1::Event event;
  event.set_type(std::string(type));
  event.set_key(std::string(order_id));
  event.set_source(kServiceName);
  auto& headers = *event.mutable_headers();
  headers["correlation_id"] = std::string(order_id);
  headers["causation_id"] = cause.id();
  // The order's trace goes on, as a new span of it (docs/OBSERVABILITY.md#trace-context).
  if (auto it = cause.headers().find(std::string(kTraceparentHeader));
      it != cause.headers().end()) {
    if (std::string child = ChildTraceparent(it->second); !child.empty()) {
      headers[std::string(kTraceparentHeader)] = std::move(child);
    }
  }
  event.set_data(payload.SerializeAsString());
  return event;
}

std::string FormatMoney(int64_t amount_minor, absl::string_view currency) {
  const char* sign = amount_minor < 0 ? "-" : "";
  const uint64_t abs = amount_minor < 0 ? 0 - static_cast<uint64_t>(amount_minor)
                                        : static_cast<uint64_t>(amount_minor);
  return absl::StrFormat("%s%d.%02d %s", sign, abs / 100, abs % 100, currency);
}

}  // namespace relay::inventory
