// PaymentService over gRPC on an ephemeral port, on a seeded SQLite file.

#include "services/payment/payment_service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/payment/payment_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::payment {
namespace {

using relay::store::Database;
using relay::store::Tx;
using relay::testing::IsOk;
using relay::testing::StatusIs;
using ::testing::HasSubstr;

events::v1::Money Money(int64_t minor, const std::string& currency = "USD") {
  events::v1::Money m;
  m.set_amount_minor(minor);
  m.set_currency(currency);
  return m;
}

class PaymentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Database>> db = OpenPaymentDatabase(dir_.Join("payment.db"));
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(SeedAccountsIfEmpty(*db_), IsOk());
    service_ = std::make_unique<PaymentServiceImpl>(db_.get());
    absl::StatusOr<relay::RunningServer> server =
        relay::StartGrpcServer("127.0.0.1:0", {service_.get()});
    ASSERT_THAT(server, IsOk());
    server_ = std::move(server->server);
    stub_ =
        v1::PaymentService::NewStub(relay::MakeChannel(absl::StrCat("127.0.0.1:", server->port)));
    // A client with gRPC's defaults (8 KiB metadata limit), for bad input.
    default_stub_ = v1::PaymentService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server->port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  // Every call has a deadline.
  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  absl::StatusOr<v1::ListAccountsResponse> List() {
    v1::ListAccountsResponse response;
    grpc::Status s = stub_->ListAccounts(Context().get(), {}, &response);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return response;
  }

  absl::StatusOr<v1::Account> Deposit(const std::string& customer, events::v1::Money amount,
                                      const std::string& name = "") {
    v1::DepositRequest request;
    request.set_customer_id(customer);
    *request.mutable_amount() = amount;
    request.set_name(name);
    v1::Account account;
    grpc::Status s = stub_->Deposit(Context().get(), request, &account);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return account;
  }

  absl::StatusOr<v1::Account> Get(const std::string& customer) {
    v1::GetAccountRequest request;
    request.set_customer_id(customer);
    v1::Account account;
    grpc::Status s = stub_->GetAccount(Context().get(), request, &account);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return account;
  }

  absl::StatusOr<v1::Payment> GetPayment(const std::string& order_id,
                                         const std::string& payment_id) {
    v1::GetPaymentRequest request;
    request.set_order_id(order_id);
    request.set_payment_id(payment_id);
    v1::Payment payment;
    grpc::Status s = stub_->GetPayment(Context().get(), request, &payment);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return payment;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<PaymentServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::PaymentService::Stub> stub_;
  std::unique_ptr<v1::PaymentService::Stub> default_stub_;
};

TEST_F(PaymentServiceTest, ListAccountsShowsTheSeededCustomers) {
  absl::StatusOr<v1::ListAccountsResponse> list = List();
  ASSERT_THAT(list, IsOk());
  ASSERT_EQ(list->accounts_size(), 4);
  const char* ids[] = {"c-alice", "c-bob", "c-carol", "c-dave"};
  const char* names[] = {"Alice", "Bob", "Carol", "Dave"};
  const int64_t balances[] = {100000, 50000, 20000, 500};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(list->accounts(i).customer_id(), ids[i]);
    EXPECT_EQ(list->accounts(i).name(), names[i]);
    EXPECT_EQ(list->accounts(i).balance().amount_minor(), balances[i]);
    EXPECT_EQ(list->accounts(i).balance().currency(), "USD");
  }
}

TEST_F(PaymentServiceTest, GetAccountOfAnUnknownCustomerIsNotFound) {
  EXPECT_THAT(Get("c-nobody"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("c-nobody")));
  EXPECT_THAT(Get(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("customer_id")));
  absl::StatusOr<v1::Account> dave = Get("c-dave");
  ASSERT_THAT(dave, IsOk());
  EXPECT_EQ(dave->balance().amount_minor(), 500);
}

// An error quotes at most kMaxExcerptBytes (32) bytes of the caller's id.
TEST_F(PaymentServiceTest, ANotFoundQuotesAtMost32BytesOfTheId) {
  const std::string id = "c-" + std::string(98, 'x');  // 100 bytes, within the id bound
  absl::StatusOr<v1::Account> got = Get(id);
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kNotFound, HasSubstr(id.substr(0, 32))));
  EXPECT_THAT(got.status().message(), ::testing::Not(HasSubstr(id)));
  EXPECT_LT(got.status().message().size(), 80u) << got.status();
}

TEST_F(PaymentServiceTest, DepositAddsToTheBalance) {
  absl::StatusOr<v1::Account> dave = Deposit("c-dave", Money(1995));
  ASSERT_THAT(dave, IsOk());
  EXPECT_EQ(dave->name(), "Dave");
  EXPECT_EQ(dave->balance().amount_minor(), 2495);
  EXPECT_EQ(Get("c-dave")->balance().amount_minor(), 2495);
}

TEST_F(PaymentServiceTest, DepositWithANameOpensAnAccount) {
  absl::StatusOr<v1::Account> eve = Deposit("c-eve", Money(300, "EUR"), "Eve");
  ASSERT_THAT(eve, IsOk());
  EXPECT_EQ(eve->customer_id(), "c-eve");
  EXPECT_EQ(eve->name(), "Eve");
  EXPECT_EQ(eve->balance().amount_minor(), 300);
  EXPECT_EQ(eve->balance().currency(), "EUR");
  EXPECT_EQ(List()->accounts_size(), 5);
  // The account's currency is now EUR.
  EXPECT_THAT(Deposit("c-eve", Money(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds EUR")));
}

TEST_F(PaymentServiceTest, InvalidDepositsAreRefusedAndChangeNothing) {
  absl::StatusOr<v1::ListAccountsResponse> before = List();
  ASSERT_THAT(before, IsOk());

  EXPECT_THAT(Deposit("c-alice", Money(-100)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be positive")));
  EXPECT_THAT(Deposit("c-alice", Money(0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be positive")));
  EXPECT_THAT(Deposit("c-alice", Money(100, "EUR")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("account 'c-alice' holds USD, cannot deposit EUR")));
  EXPECT_THAT(Deposit("c-alice", Money(100, "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("currency")));
  EXPECT_THAT(Deposit("", Money(100), "Nobody"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("customer_id")));
  EXPECT_THAT(Deposit("c-zed", Money(100)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unknown customer 'c-zed'")));
  EXPECT_THAT(Deposit("c-zed", Money(-1), "Zed"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be positive")));

  absl::StatusOr<v1::ListAccountsResponse> after = List();
  ASSERT_THAT(after, IsOk());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*before, *after))
      << before->DebugString() << " vs " << after->DebugString();
}

TEST_F(PaymentServiceTest, GetPaymentOfAnOrderWithoutPaymentIsNotFound) {
  EXPECT_THAT(GetPayment("ord-404", ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("ord-404")));
  EXPECT_THAT(GetPayment("", "pay-404"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pay-404")));
}

TEST_F(PaymentServiceTest, GetPaymentNeedsExactlyOneKey) {
  EXPECT_THAT(GetPayment("", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id or payment_id")));
  EXPECT_THAT(GetPayment("ord-1", "pay-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not both")));
}

TEST_F(PaymentServiceTest, GetPaymentFindsItByOrderAndById) {
  PaymentRow row;
  row.payment_id = "pay-1";
  row.order_id = "ord-1";
  row.customer_id = "c-dave";
  row.amount_minor = 1250;
  row.currency = "USD";
  row.status = v1::PAYMENT_STATUS_DECLINED;
  row.reason = "insufficient funds: balance 5.00 USD, order 12.50 USD";
  row.created_us = 1800000000000000;
  row.updated_us = 1800000000000001;
  ASSERT_THAT(db_->Transaction([&](Tx& tx) { return InsertPayment(tx, row); }), IsOk());

  for (absl::StatusOr<v1::Payment> p : {GetPayment("ord-1", ""), GetPayment("", "pay-1")}) {
    ASSERT_THAT(p, IsOk());
    EXPECT_EQ(p->payment_id(), "pay-1");
    EXPECT_EQ(p->order_id(), "ord-1");
    EXPECT_EQ(p->customer_id(), "c-dave");
    EXPECT_EQ(p->amount().amount_minor(), 1250);
    EXPECT_EQ(p->amount().currency(), "USD");
    EXPECT_EQ(p->status(), v1::PAYMENT_STATUS_DECLINED);
    EXPECT_EQ(p->reason(), row.reason);
    EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToMicroseconds(p->created_at()),
              row.created_us);
    EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToMicroseconds(p->updated_at()),
              row.updated_us);
  }
}

// ------------------------------------------------------------- bad input

constexpr size_t kTwoMegabytes = 2 << 20;

// What a default client saw: INVALID_ARGUMENT naming the field and its
// bound, in a message short enough that it never echoed the input.
MATCHER_P2(RefusedFor, field, bound, "") {
  const grpc::Status& s = arg;
  *result_listener << "code " << s.error_code() << ", " << s.error_message().size()
                   << "-byte message: " << s.error_message().substr(0, 200);
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
         s.error_message().find(absl::StrCat(field, " is ")) != std::string::npos &&
         s.error_message().find(absl::StrCat("limit is ", bound)) != std::string::npos &&
         s.error_message().size() < 200;
}

TEST_F(PaymentServiceTest, OversizedDepositsAreRefusedAndOpenNoAccount) {
  absl::StatusOr<v1::ListAccountsResponse> before = List();
  ASSERT_THAT(before, IsOk());
  v1::Account account;
  v1::DepositRequest long_id;
  long_id.set_customer_id(std::string(kTwoMegabytes, 'c'));
  *long_id.mutable_amount() = Money(100);
  long_id.set_name("Mallory");
  EXPECT_THAT(default_stub_->Deposit(Context().get(), long_id, &account),
              RefusedFor("customer_id", 128));
  // One byte over order-service's bound: such an account could never order.
  long_id.set_customer_id(std::string(129, 'c'));
  EXPECT_THAT(default_stub_->Deposit(Context().get(), long_id, &account),
              RefusedFor("customer_id", 128));
  v1::DepositRequest long_name;
  long_name.set_customer_id("c-mallory");
  *long_name.mutable_amount() = Money(100);
  long_name.set_name(std::string(kTwoMegabytes, 'n'));
  EXPECT_THAT(default_stub_->Deposit(Context().get(), long_name, &account),
              RefusedFor("name", 200));
  v1::DepositRequest long_currency;
  long_currency.set_customer_id("c-mallory");
  *long_currency.mutable_amount() = Money(100, std::string(kTwoMegabytes, 'U'));
  long_currency.set_name("Mallory");
  grpc::Status s = default_stub_->Deposit(Context().get(), long_currency, &account);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().size();
  EXPECT_LT(s.error_message().size(), 200u);

  absl::StatusOr<v1::ListAccountsResponse> after = List();
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->accounts_size(), before->accounts_size());
  EXPECT_THAT(Get("c-mallory"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("c-mallory")));
}

TEST_F(PaymentServiceTest, TwoMegabyteIdsAreInvalidArgumentForADefaultClient) {
  const std::string huge(kTwoMegabytes, 'x');
  v1::GetAccountRequest get;
  get.set_customer_id(huge);
  v1::Account account;
  EXPECT_THAT(default_stub_->GetAccount(Context().get(), get, &account),
              RefusedFor("customer_id", 128));
  v1::GetPaymentRequest by_order;
  by_order.set_order_id(huge);
  v1::Payment payment;
  EXPECT_THAT(default_stub_->GetPayment(Context().get(), by_order, &payment),
              RefusedFor("order_id", 128));
  v1::GetPaymentRequest by_id;
  by_id.set_payment_id(huge);
  EXPECT_THAT(default_stub_->GetPayment(Context().get(), by_id, &payment),
              RefusedFor("payment_id", 128));
}

TEST_F(PaymentServiceTest, IdsAndNamesAtTheirBoundsAreAccepted) {
  EXPECT_THAT(Deposit(std::string(128, 'c'), Money(100), std::string(200, 'n')), IsOk());
}

// ---- Charge and Refund: the saga's payment steps as direct calls.

v1::ChargeRequest ChargeOf(const std::string& order, const std::string& customer, int64_t minor) {
  v1::ChargeRequest r;
  r.set_order_id(order);
  r.set_customer_id(customer);
  *r.mutable_amount() = Money(minor);
  return r;
}

class PaymentStepsRpcTest : public PaymentServiceTest {
 protected:
  absl::StatusOr<v1::ChargeResponse> Charge(const v1::ChargeRequest& request) {
    v1::ChargeResponse response;
    grpc::Status s = stub_->Charge(Context().get(), request, &response);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return response;
  }
  absl::StatusOr<v1::RefundResponse> Refund(const std::string& order) {
    v1::RefundRequest request;
    request.set_order_id(order);
    request.set_reason("test");
    v1::RefundResponse response;
    grpc::Status s = stub_->Refund(Context().get(), request, &response);
    if (!s.ok()) return relay::FromGrpcStatus(s);
    return response;
  }
  int64_t Balance(const std::string& customer) {
    absl::StatusOr<v1::Account> a = Get(customer);
    return a.ok() ? a->balance().amount_minor() : -1;
  }
};

TEST_F(PaymentStepsRpcTest, ChargeCapturesOnceAndARetryReplaysIt) {
  const int64_t before = Balance("c-alice");
  absl::StatusOr<v1::ChargeResponse> first = Charge(ChargeOf("ord-1", "c-alice", 8900));
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->payment().status(), v1::PAYMENT_STATUS_CAPTURED);
  EXPECT_FALSE(first->replayed());
  absl::StatusOr<v1::ChargeResponse> again = Charge(ChargeOf("ord-1", "c-alice", 8900));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->replayed());
  EXPECT_EQ(again->payment().payment_id(), first->payment().payment_id());
  EXPECT_EQ(Balance("c-alice"), before - 8900);
}

TEST_F(PaymentStepsRpcTest, InsufficientFundsIsADeclineNotAnError) {
  absl::StatusOr<v1::ChargeResponse> r = Charge(ChargeOf("ord-dave", "c-dave", 8900));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->payment().status(), v1::PAYMENT_STATUS_DECLINED);
  EXPECT_THAT(r->payment().reason(), HasSubstr("insufficient funds"));
  EXPECT_EQ(Balance("c-dave"), 500);
  // Nothing to give back.
  absl::StatusOr<v1::RefundResponse> refund = Refund("ord-dave");
  ASSERT_THAT(refund, IsOk());
  EXPECT_FALSE(refund->refunded());
  EXPECT_EQ(refund->payment().status(), v1::PAYMENT_STATUS_DECLINED);
}

TEST_F(PaymentStepsRpcTest, RefundGivesACaptureBackOnce) {
  const int64_t before = Balance("c-bob");
  ASSERT_THAT(Charge(ChargeOf("ord-2", "c-bob", 5900)), IsOk());
  absl::StatusOr<v1::RefundResponse> first = Refund("ord-2");
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->refunded());
  EXPECT_EQ(first->payment().status(), v1::PAYMENT_STATUS_REFUNDED);
  absl::StatusOr<v1::RefundResponse> again = Refund("ord-2");
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->refunded());
  EXPECT_EQ(Balance("c-bob"), before);
  // A charge after the refund answers the refunded payment, takes nothing.
  absl::StatusOr<v1::ChargeResponse> late = Charge(ChargeOf("ord-2", "c-bob", 5900));
  ASSERT_THAT(late, IsOk());
  EXPECT_EQ(late->payment().status(), v1::PAYMENT_STATUS_REFUNDED);
  EXPECT_EQ(Balance("c-bob"), before);
}

TEST_F(PaymentStepsRpcTest, RefundOfAnOrderWithoutPaymentIsANoOp) {
  absl::StatusOr<v1::RefundResponse> r = Refund("ord-never");
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->refunded());
  EXPECT_FALSE(r->has_payment());
}

TEST_F(PaymentStepsRpcTest, AChargeThatLandsAfterTheRefundThatUndidItTakesNothing) {
  // order-service --flow=sync: its Charge timed out, it refunded to undo
  // whatever the charge did, and then the charge arrived.
  const int64_t before = Balance("c-alice");
  ASSERT_THAT(Refund("ord-late"), IsOk());
  EXPECT_THAT(Charge(ChargeOf("ord-late", "c-alice", 8900)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("order 'ord-late' was refunded before it was charged")));
  EXPECT_EQ(Balance("c-alice"), before);
  EXPECT_THAT(Refund("ord-late"), IsOk());
  // Only that order is closed.
  ASSERT_THAT(Charge(ChargeOf("ord-next", "c-alice", 8900)), IsOk());
  EXPECT_EQ(Balance("c-alice"), before - 8900);
}

TEST_F(PaymentStepsRpcTest, AChargeOfTheSameOrderForAnotherAmountIsFailedPrecondition) {
  ASSERT_THAT(Charge(ChargeOf("ord-3", "c-alice", 100)), IsOk());
  const int64_t before = Balance("c-alice");
  EXPECT_THAT(Charge(ChargeOf("ord-3", "c-alice", 200)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("charged before")));
  EXPECT_EQ(Balance("c-alice"), before);
}

TEST_F(PaymentStepsRpcTest, BadChargesAreInvalidArgumentAndChangeNothing) {
  const int64_t before = Balance("c-alice");
  EXPECT_THAT(Charge(ChargeOf("", "c-alice", 100)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id is required")));
  EXPECT_THAT(Charge(ChargeOf("ord-4", "", 100)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("customer_id is required")));
  EXPECT_THAT(Charge(ChargeOf("ord-4", "c-alice", -5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amount must be >= 0")));
  v1::ChargeRequest no_amount = ChargeOf("ord-4", "c-alice", 1);
  no_amount.clear_amount();
  EXPECT_THAT(Charge(no_amount),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amount is required")));
  v1::ChargeRequest huge = ChargeOf(std::string(1 << 20, 'o'), "c-alice", 1);
  absl::StatusOr<v1::ChargeResponse> r = Charge(huge);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id")));
  EXPECT_LT(r.status().message().size(), 200u);
  EXPECT_EQ(Balance("c-alice"), before);
  EXPECT_THAT(GetPayment("ord-4", ""), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  v1::RefundRequest bad_refund;
  bad_refund.set_order_id("ord-4");
  bad_refund.set_reason(std::string(501, 'r'));
  v1::RefundResponse ignored;
  EXPECT_EQ(stub_->Refund(Context().get(), bad_refund, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace relay::payment
