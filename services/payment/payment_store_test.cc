#include "services/payment/payment_store.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::payment {
namespace {

using relay::store::Database;
using relay::store::Tx;
using relay::testing::IsOk;
using relay::testing::IsOkAndHolds;
using relay::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

std::unique_ptr<Database> Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Database>> db = OpenPaymentDatabase(path);
  EXPECT_THAT(db, IsOk());
  return db.ok() ? std::move(*db) : nullptr;
}

std::vector<AccountRow> Accounts(Database& db) {
  std::vector<AccountRow> accounts;
  EXPECT_THAT(db.Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::vector<AccountRow>> rows = ListAccounts(tx);
    if (!rows.ok()) return rows.status();
    accounts = std::move(*rows);
    return absl::OkStatus();
  }),
              IsOk());
  return accounts;
}

PaymentRow APayment(const std::string& id, const std::string& order) {
  PaymentRow p;
  p.payment_id = id;
  p.order_id = order;
  p.customer_id = "c-alice";
  p.amount_minor = 1250;
  p.currency = "USD";
  p.status = v1::PAYMENT_STATUS_CAPTURED;
  p.created_us = 1;
  p.updated_us = 1;
  return p;
}

TEST(PaymentStore, SeedsTheFourCustomersOnce) {
  relay::testing::TempDir dir;
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  ASSERT_NE(db, nullptr);
  EXPECT_THAT(SeedAccountsIfEmpty(*db), IsOkAndHolds(4));
  EXPECT_THAT(SeedAccountsIfEmpty(*db), IsOkAndHolds(0));
  EXPECT_THAT(Accounts(*db), ElementsAre(Field(&AccountRow::balance_minor, 100000),
                                         Field(&AccountRow::balance_minor, 50000),
                                         Field(&AccountRow::balance_minor, 20000),
                                         Field(&AccountRow::balance_minor, 500)));
  EXPECT_THAT(Accounts(*db), ElementsAre(Field(&AccountRow::customer_id, "c-alice"),
                                         Field(&AccountRow::customer_id, "c-bob"),
                                         Field(&AccountRow::customer_id, "c-carol"),
                                         Field(&AccountRow::customer_id, "c-dave")));
}

TEST(PaymentStore, ReopeningKeepsDataAndDoesNotSeedAgain) {
  relay::testing::TempDir dir;
  {
    std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
    ASSERT_THAT(SeedAccountsIfEmpty(*db), IsOkAndHolds(4));
    ASSERT_THAT(db->Transaction([](Tx& tx) { return SetBalance(tx, "c-bob", 7); }), IsOk());
  }
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  ASSERT_NE(db, nullptr);
  EXPECT_THAT(db->UserVersion(), IsOkAndHolds(static_cast<int64_t>(PaymentMigrations().size())));
  EXPECT_THAT(SeedAccountsIfEmpty(*db), IsOkAndHolds(0));
  EXPECT_EQ(Accounts(*db)[1].balance_minor, 7);
}

TEST(PaymentStore, AnOrderHasAtMostOnePayment) {
  relay::testing::TempDir dir;
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  ASSERT_THAT(db->Transaction([](Tx& tx) { return InsertPayment(tx, APayment("pay-1", "ord-1")); }),
              IsOk());
  EXPECT_THAT(db->Transaction([](Tx& tx) { return InsertPayment(tx, APayment("pay-2", "ord-1")); }),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("payments")));
}

TEST(PaymentStore, FindsAPaymentByOrderAndById) {
  relay::testing::TempDir dir;
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  PaymentRow p = APayment("pay-1", "ord-1");
  p.status = v1::PAYMENT_STATUS_DECLINED;
  p.reason = "unknown account c-9";
  ASSERT_THAT(db->Transaction([&](Tx& tx) { return InsertPayment(tx, p); }), IsOk());
  ASSERT_THAT(db->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<PaymentRow>> by_order = FindPaymentByOrder(tx, "ord-1");
    EXPECT_THAT(by_order, IsOk());
    EXPECT_TRUE(by_order->has_value());
    EXPECT_EQ((*by_order)->payment_id, "pay-1");
    EXPECT_EQ((*by_order)->status, v1::PAYMENT_STATUS_DECLINED);
    EXPECT_EQ((*by_order)->reason, "unknown account c-9");
    absl::StatusOr<std::optional<PaymentRow>> by_id = FindPaymentById(tx, "pay-1");
    EXPECT_THAT(by_id, IsOk());
    EXPECT_EQ((*by_id)->order_id, "ord-1");
    EXPECT_FALSE(FindPaymentById(tx, "pay-2")->has_value());
    EXPECT_FALSE(FindPaymentByOrder(tx, "ord-2")->has_value());
    return absl::OkStatus();
  }),
              IsOk());
}

TEST(PaymentStore, UpdatesOfMissingRowsAreNotFound) {
  relay::testing::TempDir dir;
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  EXPECT_THAT(db->Transaction([](Tx& tx) { return SetBalance(tx, "c-nobody", 1); }),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("c-nobody")));
  EXPECT_THAT(db->Transaction([](Tx& tx) {
    return UpdatePaymentStatus(tx, "pay-x", v1::PAYMENT_STATUS_REFUNDED, "", 2);
  }),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pay-x")));
}

TEST(PaymentStore, AnUnknownStatusInTheTableIsDataLoss) {
  relay::testing::TempDir dir;
  std::unique_ptr<Database> db = Open(dir.Join("payment.db"));
  ASSERT_THAT(db->Transaction([](Tx& tx) { return InsertPayment(tx, APayment("pay-1", "ord-1")); }),
              IsOk());
  ASSERT_THAT(db->Exec("UPDATE payments SET status = 'PAID'"), IsOk());
  EXPECT_THAT(db->Read([](Tx& tx) { return FindPaymentByOrder(tx, "ord-1").status(); }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("PAID")));
}

}  // namespace
}  // namespace relay::payment
