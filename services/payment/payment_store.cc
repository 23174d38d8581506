#include "services/payment/payment_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/store/inbox.h"
#include "common/store/outbox.h"
#include "common/text.h"
#include "services/payment/payment_ledger.h"
#include "services/shared/closed_orders.h"

namespace relay::payment {

using relay::store::Database;
using relay::store::Statement;
using relay::store::Tx;

namespace {

constexpr char kPaymentColumns[] =
    "payment_id, order_id, customer_id, amount_minor, currency, status, reason, created_us, "
    "updated_us";

// Reads a payments row selected with kPaymentColumns.
absl::StatusOr<PaymentRow> ReadPayment(const Statement& s) {
  PaymentRow p;
  p.payment_id = s.ColumnText(0);
  p.order_id = s.ColumnText(1);
  p.customer_id = s.ColumnText(2);
  p.amount_minor = s.ColumnInt64(3);
  p.currency = s.ColumnText(4);
  std::string status = s.ColumnText(5);
  if (!ParsePaymentStatus(status, &p.status)) {
    return absl::DataLossError(
        absl::StrCat("payment ", p.payment_id, " has unknown status '", status, "'"));
  }
  p.reason = s.ColumnText(6);
  p.created_us = s.ColumnInt64(7);
  p.updated_us = s.ColumnInt64(8);
  return p;
}

absl::StatusOr<std::optional<PaymentRow>> FindPaymentWhere(Tx& tx, absl::string_view column,
                                                           absl::string_view value) {
  absl::StatusOr<Statement> select =
      tx.Prepare(absl::StrCat("SELECT ", kPaymentColumns, " FROM payments WHERE ", column, " = ?"));
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, value); !s.ok()) return s;
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<PaymentRow>();
  absl::StatusOr<PaymentRow> payment = ReadPayment(*select);
  if (!payment.ok()) return payment.status();
  return std::optional<PaymentRow>(std::move(*payment));
}

AccountRow ReadAccount(const Statement& s) {
  return AccountRow{s.ColumnText(0), s.ColumnText(1), s.ColumnInt64(2), s.ColumnText(3)};
}

}  // namespace

std::vector<std::string> PaymentMigrations() {
  std::vector<std::string> steps = relay::store::Outbox::Migrations();
  for (std::string& step : relay::store::Inbox::Migrations()) steps.push_back(std::move(step));
  // payment-service's own steps from here on; append only.
  steps.push_back(
      "CREATE TABLE accounts ("
      "  customer_id TEXT PRIMARY KEY,"
      "  name TEXT NOT NULL,"
      "  balance_minor INTEGER NOT NULL,"
      "  currency TEXT NOT NULL)");
  steps.push_back(
      "CREATE TABLE payments ("
      "  payment_id TEXT PRIMARY KEY,"
      "  order_id TEXT NOT NULL UNIQUE,"
      "  customer_id TEXT NOT NULL,"
      "  amount_minor INTEGER NOT NULL,"
      "  currency TEXT NOT NULL,"
      "  status TEXT NOT NULL,"
      "  reason TEXT NOT NULL DEFAULT '',"
      "  created_us INTEGER NOT NULL,"
      "  updated_us INTEGER NOT NULL)");
  // Shared steps that came later: at the end, since steps are positional.
  for (std::string& s : relay::store::Inbox::PruneIndexMigrations()) steps.push_back(std::move(s));
  for (std::string& s : relay::store::Outbox::ParkedMigrations()) steps.push_back(std::move(s));
  steps.push_back(services::ClosedOrders::Migration());
  return steps;
}

absl::StatusOr<std::unique_ptr<Database>> OpenPaymentDatabase(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path, {});
  if (!db.ok()) return db.status();
  if (absl::Status s = (*db)->Migrate(PaymentMigrations()); !s.ok()) return s;
  return db;
}

std::vector<AccountRow> SeedAccounts() {
  return {
      {"c-alice", "Alice", 100000, "USD"},
      {"c-bob", "Bob", 50000, "USD"},
      {"c-carol", "Carol", 20000, "USD"},
      {"c-dave", "Dave", 500, "USD"},
  };
}

absl::StatusOr<int> SeedAccountsIfEmpty(Database& db) {
  int inserted = 0;
  absl::Status s = db.Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<Statement> count = tx.Prepare("SELECT count(*) FROM accounts");
    if (!count.ok()) return count.status();
    absl::StatusOr<bool> row = count->Step();
    if (!row.ok()) return row.status();
    if (*row && count->ColumnInt64(0) > 0) return absl::OkStatus();
    for (const AccountRow& account : SeedAccounts()) {
      if (absl::Status s = InsertAccount(tx, account); !s.ok()) return s;
      ++inserted;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return inserted;
}

absl::StatusOr<std::optional<AccountRow>> FindAccount(Tx& tx, absl::string_view customer_id) {
  absl::StatusOr<Statement> select = tx.Prepare(
      "SELECT customer_id, name, balance_minor, currency FROM accounts WHERE customer_id = ?");
  if (!select.ok()) return select.status();
  if (absl::Status s = select->BindText(1, customer_id); !s.ok()) return s;
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<AccountRow>();
  return std::optional<AccountRow>(ReadAccount(*select));
}

absl::StatusOr<std::vector<AccountRow>> ListAccounts(Tx& tx) {
  absl::StatusOr<Statement> select = tx.Prepare(
      "SELECT customer_id, name, balance_minor, currency FROM accounts ORDER BY customer_id");
  if (!select.ok()) return select.status();
  std::vector<AccountRow> accounts;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return accounts;
    accounts.push_back(ReadAccount(*select));
  }
}

absl::Status InsertAccount(Tx& tx, const AccountRow& account) {
  absl::StatusOr<Statement> insert = tx.Prepare(
      "INSERT INTO accounts (customer_id, name, balance_minor, currency) VALUES (?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, account.customer_id); !s.ok()) return s;
  if (absl::Status s = insert->BindText(2, account.name); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(3, account.balance_minor); !s.ok()) return s;
  if (absl::Status s = insert->BindText(4, account.currency); !s.ok()) return s;
  return insert->Run();
}

absl::Status SetBalance(Tx& tx, absl::string_view customer_id, int64_t balance_minor) {
  absl::StatusOr<Statement> update =
      tx.Prepare("UPDATE accounts SET balance_minor = ? WHERE customer_id = ?");
  if (!update.ok()) return update.status();
  if (absl::Status s = update->BindInt64(1, balance_minor); !s.ok()) return s;
  if (absl::Status s = update->BindText(2, customer_id); !s.ok()) return s;
  if (absl::Status s = update->Run(); !s.ok()) return s;
  if (tx.changes() != 1) {
    return absl::NotFoundError(absl::StrCat("no account for customer ", Excerpt(customer_id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<PaymentRow>> FindPaymentByOrder(Tx& tx, absl::string_view order_id) {
  return FindPaymentWhere(tx, "order_id", order_id);
}

absl::StatusOr<std::optional<PaymentRow>> FindPaymentById(Tx& tx, absl::string_view payment_id) {
  return FindPaymentWhere(tx, "payment_id", payment_id);
}

absl::Status InsertPayment(Tx& tx, const PaymentRow& p) {
  absl::StatusOr<Statement> insert = tx.Prepare(absl::StrCat(
      "INSERT INTO payments (", kPaymentColumns, ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  if (!insert.ok()) return insert.status();
  if (absl::Status s = insert->BindText(1, p.payment_id); !s.ok()) return s;
  if (absl::Status s = insert->BindText(2, p.order_id); !s.ok()) return s;
  if (absl::Status s = insert->BindText(3, p.customer_id); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(4, p.amount_minor); !s.ok()) return s;
  if (absl::Status s = insert->BindText(5, p.currency); !s.ok()) return s;
  if (absl::Status s = insert->BindText(6, PaymentStatusName(p.status)); !s.ok()) return s;
  if (absl::Status s = insert->BindText(7, p.reason); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(8, p.created_us); !s.ok()) return s;
  if (absl::Status s = insert->BindInt64(9, p.updated_us); !s.ok()) return s;
  return insert->Run();
}

absl::Status UpdatePaymentStatus(Tx& tx, absl::string_view payment_id,
                                 relay::payment::v1::PaymentStatus status, absl::string_view reason,
                                 int64_t updated_us) {
  absl::StatusOr<Statement> update =
      tx.Prepare("UPDATE payments SET status = ?, reason = ?, updated_us = ? WHERE payment_id = ?");
  if (!update.ok()) return update.status();
  if (absl::Status s = update->BindText(1, PaymentStatusName(status)); !s.ok()) return s;
  if (absl::Status s = update->BindText(2, reason); !s.ok()) return s;
  if (absl::Status s = update->BindInt64(3, updated_us); !s.ok()) return s;
  if (absl::Status s = update->BindText(4, payment_id); !s.ok()) return s;
  if (absl::Status s = update->Run(); !s.ok()) return s;
  if (tx.changes() != 1)
    return absl::NotFoundError(absl::StrCat("no payment ", Excerpt(payment_id)));
  return absl::OkStatus();
}

}  // namespace relay::payment
