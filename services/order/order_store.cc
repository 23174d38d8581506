#include "services/order/order_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/store/inbox.h"
#include "common/store/outbox.h"
#include "google/protobuf/util/time_util.h"
#include "common/text.h"

namespace relay::order {
namespace {

using google::protobuf::util::TimeUtil;
using store::Statement;
using store::Tx;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

absl::StatusOr<std::optional<v1::Order>> ReadOne(Statement& st) {
  absl::StatusOr<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<v1::Order>();
  v1::Order order;
  if (!order.ParseFromString(st.ColumnBlob(0))) {
    return absl::DataLossError("an orders row holds an unparsable order");
  }
  return std::optional<v1::Order>(std::move(order));
}

int64_t CreatedMicros(const v1::Order& order) {
  return TimeUtil::TimestampToMicroseconds(order.created_at());
}

}  // namespace

std::vector<std::string> OrderStore::Migrations() {
  std::vector<std::string> steps = store::Outbox::Migrations();
  for (std::string& s : store::Inbox::Migrations()) steps.push_back(std::move(s));
  steps.push_back(R"sql(
    CREATE TABLE orders (
      order_id TEXT PRIMARY KEY,
      customer_id TEXT NOT NULL,
      status INTEGER NOT NULL,
      idempotency_key TEXT UNIQUE,
      created_us INTEGER NOT NULL,
      updated_us INTEGER NOT NULL,
      data BLOB NOT NULL
    );
    CREATE INDEX orders_by_created ON orders(created_us DESC, order_id DESC);
    CREATE INDEX orders_by_customer ON orders(customer_id, created_us DESC, order_id DESC);
    CREATE INDEX orders_by_status ON orders(status, created_us DESC, order_id DESC);
    CREATE TABLE catalog (
      sku TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      price_minor INTEGER NOT NULL,
      currency TEXT NOT NULL,
      updated_us INTEGER NOT NULL
    );
  )sql");
  // Idempotency keys scoped per customer, bound to the request they were
  // first used with. The first step's orders.idempotency_key is globally
  // UNIQUE and SQLite cannot drop that without rebuilding the table, so
  // orders written from here on leave that column NULL (the key stays in
  // the serialized order) and this table is the index. Keys already stored
  // keep their customer and get no fingerprint (NULL): their order's own
  // lines stand in for it.
  steps.push_back(R"sql(
    CREATE TABLE order_idempotency (
      customer_id TEXT NOT NULL,
      idempotency_key TEXT NOT NULL,
      request_fingerprint TEXT,
      order_id TEXT NOT NULL,
      PRIMARY KEY (customer_id, idempotency_key)
    ) WITHOUT ROWID;
    INSERT INTO order_idempotency(customer_id, idempotency_key, request_fingerprint, order_id)
      SELECT customer_id, idempotency_key, NULL, order_id FROM orders
      WHERE idempotency_key IS NOT NULL;
  )sql");
  // Shared steps that came later: at the end, since steps are positional.
  for (std::string& s : store::Inbox::PruneIndexMigrations()) steps.push_back(std::move(s));
  for (std::string& s : store::Outbox::ParkedMigrations()) steps.push_back(std::move(s));
  return steps;
}

absl::StatusOr<std::optional<v1::Order>> OrderStore::Get(Tx& tx, const std::string& order_id) {
  absl::StatusOr<Statement> st = tx.Prepare("SELECT data FROM orders WHERE order_id = ?");
  if (!st.ok()) return st.status();
  if (absl::Status s = st->BindText(1, order_id); !s.ok()) return s;
  return ReadOne(*st);
}

absl::StatusOr<std::optional<KeyedOrder>> OrderStore::GetByIdempotencyKey(
    Tx& tx, const std::string& customer_id, const std::string& key) {
  absl::StatusOr<Statement> st = tx.Prepare(
      "SELECT o.data, k.request_fingerprint FROM order_idempotency k "
      "JOIN orders o ON o.order_id = k.order_id "
      "WHERE k.customer_id = ? AND k.idempotency_key = ?");
  if (!st.ok()) return st.status();
  absl::Status s = st->BindText(1, customer_id);
  if (s.ok()) s = st->BindText(2, key);
  if (!s.ok()) return s;
  absl::StatusOr<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<KeyedOrder>();
  KeyedOrder found;
  if (!found.order.ParseFromString(st->ColumnBlob(0))) {
    return absl::DataLossError("an orders row holds an unparsable order");
  }
  found.request_fingerprint = st->ColumnText(1);
  return std::optional<KeyedOrder>(std::move(found));
}

absl::Status OrderStore::Insert(Tx& tx, const v1::Order& order,
                                const std::string& request_fingerprint) {
  absl::StatusOr<Statement> st = tx.Prepare(
      "INSERT INTO orders(order_id, customer_id, status, idempotency_key, created_us, updated_us, "
      "data) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  absl::Status s = st->BindText(1, order.order_id());
  if (s.ok()) s = st->BindText(2, order.customer_id());
  if (s.ok()) s = st->BindInt64(3, order.status());
  // Legacy column, globally UNIQUE: always NULL now (see Migrations()).
  if (s.ok()) s = st->BindNull(4);
  if (s.ok()) s = st->BindInt64(5, CreatedMicros(order));
  if (s.ok()) s = st->BindInt64(6, TimeUtil::TimestampToMicroseconds(order.updated_at()));
  if (s.ok()) s = st->BindBlob(7, order.SerializeAsString());
  if (!s.ok()) return s;
  if (s = st->Run(); !s.ok()) return s;
  if (order.idempotency_key().empty()) return absl::OkStatus();
  absl::StatusOr<Statement> key = tx.Prepare(
      "INSERT INTO order_idempotency(customer_id, idempotency_key, request_fingerprint, order_id) "
      "VALUES (?, ?, ?, ?)");
  if (!key.ok()) return key.status();
  s = key->BindText(1, order.customer_id());
  if (s.ok()) s = key->BindText(2, order.idempotency_key());
  if (s.ok()) s = key->BindText(3, request_fingerprint);
  if (s.ok()) s = key->BindText(4, order.order_id());
  if (!s.ok()) return s;
  return key->Run();
}

absl::Status OrderStore::Update(Tx& tx, const v1::Order& order) {
  absl::StatusOr<Statement> st =
      tx.Prepare("UPDATE orders SET status = ?, updated_us = ?, data = ? WHERE order_id = ?");
  if (!st.ok()) return st.status();
  absl::Status s = st->BindInt64(1, order.status());
  if (s.ok()) s = st->BindInt64(2, TimeUtil::TimestampToMicroseconds(order.updated_at()));
  if (s.ok()) s = st->BindBlob(3, order.SerializeAsString());
  if (s.ok()) s = st->BindText(4, order.order_id());
  if (!s.ok()) return s;
  if (s = st->Run(); !s.ok()) return s;
  if (tx.changes() != 1) {
    return absl::NotFoundError(absl::StrCat("order ", Excerpt(order.order_id())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> OrderStore::PendingCreatedBefore(Tx& tx,
                                                                         absl::Time cutoff,
                                                                         int limit) {
  absl::StatusOr<Statement> st = tx.Prepare(
      "SELECT order_id FROM orders WHERE status = ? AND created_us < ? "
      "ORDER BY created_us, order_id LIMIT ?");
  if (!st.ok()) return st.status();
  absl::Status s = st->BindInt64(1, v1::ORDER_STATUS_PENDING);
  if (s.ok()) s = st->BindInt64(2, absl::ToUnixMicros(cutoff));
  if (s.ok()) s = st->BindInt64(3, limit);
  if (!s.ok()) return s;
  std::vector<std::string> ids;
  while (true) {
    absl::StatusOr<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return ids;
    ids.push_back(st->ColumnText(0));
  }
}

absl::Status OrderStore::List(Tx& tx, const v1::ListOrdersRequest& request,
                              v1::ListOrdersResponse* response) {
  if (request.page_size() < 0 || request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be in [0, ", kMaxPageSize, "], got ", request.page_size()));
  }
  const int limit = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  // The token is "<created_us>/<order_id>" of the last order of the page.
  int64_t after_us = std::numeric_limits<int64_t>::max();
  std::string after_id;
  if (!request.page_token().empty()) {
    std::vector<std::string> parts = absl::StrSplit(request.page_token(), absl::MaxSplits('/', 1));
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &after_us) || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page_token ", Excerpt(request.page_token()), " is not one this service issued"));
    }
    after_id = parts[1];
  }
  std::string sql =
      "SELECT data, created_us, order_id FROM orders WHERE (created_us < ?1 OR (created_us = ?1 "
      "AND order_id < ?2))";
  if (request.status() != v1::ORDER_STATUS_UNSPECIFIED) sql += " AND status = ?3";
  if (!request.customer_id().empty()) sql += " AND customer_id = ?4";
  sql += " ORDER BY created_us DESC, order_id DESC LIMIT ?5";
  absl::StatusOr<Statement> st = tx.Prepare(sql);
  if (!st.ok()) return st.status();
  absl::Status s = st->BindInt64(1, after_us);
  if (s.ok()) s = st->BindText(2, after_id);
  if (s.ok() && request.status() != v1::ORDER_STATUS_UNSPECIFIED) {
    s = st->BindInt64(3, request.status());
  }
  if (s.ok() && !request.customer_id().empty()) s = st->BindText(4, request.customer_id());
  if (s.ok()) s = st->BindInt64(5, limit + 1);
  if (!s.ok()) return s;
  int64_t last_us = 0;
  std::string last_id;
  while (true) {
    absl::StatusOr<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (response->orders_size() == limit) {
      response->set_next_page_token(absl::StrCat(last_us, "/", last_id));
      break;
    }
    if (!response->add_orders()->ParseFromString(st->ColumnBlob(0))) {
      return absl::DataLossError("an orders row holds an unparsable order");
    }
    last_us = st->ColumnInt64(1);
    last_id = st->ColumnText(2);
  }
  return absl::OkStatus();
}

absl::Status OrderStore::UpsertProduct(Tx& tx, const events::v1::ProductUpdated& product,
                                       absl::Time now) {
  absl::StatusOr<Statement> st = tx.Prepare(
      "INSERT INTO catalog(sku, name, price_minor, currency, updated_us) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT(sku) DO UPDATE SET name = excluded.name, price_minor = excluded.price_minor, "
      "currency = excluded.currency, updated_us = excluded.updated_us");
  if (!st.ok()) return st.status();
  absl::Status s = st->BindText(1, product.sku());
  if (s.ok()) s = st->BindText(2, product.name());
  if (s.ok()) s = st->BindInt64(3, product.price().amount_minor());
  if (s.ok()) s = st->BindText(4, product.price().currency());
  if (s.ok()) s = st->BindInt64(5, absl::ToUnixMicros(now));
  if (!s.ok()) return s;
  return st->Run();
}

absl::StatusOr<std::optional<CatalogEntry>> OrderStore::GetProduct(Tx& tx, const std::string& sku) {
  absl::StatusOr<Statement> st =
      tx.Prepare("SELECT name, price_minor, currency FROM catalog WHERE sku = ?");
  if (!st.ok()) return st.status();
  if (absl::Status s = st->BindText(1, sku); !s.ok()) return s;
  absl::StatusOr<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<CatalogEntry>();
  CatalogEntry e;
  e.sku = sku;
  e.name = st->ColumnText(0);
  e.price.set_amount_minor(st->ColumnInt64(1));
  e.price.set_currency(st->ColumnText(2));
  return std::optional<CatalogEntry>(std::move(e));
}

absl::StatusOr<int64_t> OrderStore::CatalogSize(Tx& tx) {
  absl::StatusOr<Statement> st = tx.Prepare("SELECT COUNT(*) FROM catalog");
  if (!st.ok()) return st.status();
  absl::StatusOr<bool> row = st->Step();
  if (!row.ok()) return row.status();
  return *row ? st->ColumnInt64(0) : 0;
}

}  // namespace relay::order
