#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_STORE_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_STORE_H_

// payment.db: the schema (outbox, inbox, accounts, payments) and the row
// access the handlers and the gRPC API share. Every function that takes a
// Tx runs inside the caller's transaction, so a handler's reads, writes and
// outbox rows commit together.
//
//   auto db = OpenPaymentDatabase("data/payment/payment.db");
//   absl::StatusOr<int> seeded = SeedAccountsIfEmpty(**db);
//   (*db)->Read([&](Tx& tx) -> absl::Status {
//     absl::StatusOr<std::optional<AccountRow>> a = FindAccount(tx, "c-alice");
//     ...
//   });

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store/sqlite.h"
#include "relay/payment/v1/payment.pb.h"

namespace relay::payment {

// One row of `accounts`.
struct AccountRow {
  std::string customer_id;
  std::string name;
  int64_t balance_minor = 0;
  std::string currency;
};

// One row of `payments`: the one payment of one order.
struct PaymentRow {
  std::string payment_id;
  std::string order_id;
  std::string customer_id;
  int64_t amount_minor = 0;
  std::string currency;
  relay::payment::v1::PaymentStatus status = relay::payment::v1::PAYMENT_STATUS_UNSPECIFIED;
  std::string reason;
  int64_t created_us = 0;  // Unix microseconds
  int64_t updated_us = 0;
};

// The schema steps: Outbox's, Inbox's, then payment-service's own.
// Append-only (see Database::Migrate).
std::vector<std::string> PaymentMigrations();

// Opens (creating when missing) the database at `path` and brings its
// schema up to date. Errors name the path.
absl::StatusOr<std::unique_ptr<relay::store::Database>> OpenPaymentDatabase(
    const std::string& path);

// The accounts a fresh payment-service starts with (docs/ARCHITECTURE.md#seed-data): Alice,
// Bob, Carol, and Dave, who can afford little.
std::vector<AccountRow> SeedAccounts();

// Inserts SeedAccounts() when the accounts table is empty, in one
// transaction. Returns how many accounts it inserted (0: there were some).
absl::StatusOr<int> SeedAccountsIfEmpty(relay::store::Database& db);

// ---- Row access inside a transaction.

// The account of `customer_id`, or nullopt.
absl::StatusOr<std::optional<AccountRow>> FindAccount(relay::store::Tx& tx,
                                                      absl::string_view customer_id);
// Every account, sorted by customer id.
absl::StatusOr<std::vector<AccountRow>> ListAccounts(relay::store::Tx& tx);
// Inserts a new account (ALREADY_EXISTS when the customer has one).
absl::Status InsertAccount(relay::store::Tx& tx, const AccountRow& account);
// Sets the balance of an existing account (NOT_FOUND when there is none).
absl::Status SetBalance(relay::store::Tx& tx, absl::string_view customer_id, int64_t balance_minor);

// The payment of `order_id`, or nullopt.
absl::StatusOr<std::optional<PaymentRow>> FindPaymentByOrder(relay::store::Tx& tx,
                                                             absl::string_view order_id);
// The payment `payment_id`, or nullopt.
absl::StatusOr<std::optional<PaymentRow>> FindPaymentById(relay::store::Tx& tx,
                                                          absl::string_view payment_id);
// Inserts a payment (ALREADY_EXISTS when the order or the id has one).
absl::Status InsertPayment(relay::store::Tx& tx, const PaymentRow& payment);
// Sets status, reason and updated_us of payment `payment_id` (NOT_FOUND
// when there is none).
absl::Status UpdatePaymentStatus(relay::store::Tx& tx, absl::string_view payment_id,
                                 relay::payment::v1::PaymentStatus status, absl::string_view reason,
                                 int64_t updated_us);

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_STORE_H_
