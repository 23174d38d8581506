#include "services/payment/payment_service.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/text.h"
#include "google/protobuf/util/time_util.h"
#include "services/payment/payment_ledger.h"
#include "services/payment/payment_steps.h"
#include "services/payment/payment_store.h"
#include "services/payment/payment_validation.h"

namespace relay::payment {
namespace {

using google::protobuf::util::TimeUtil;
using relay::store::Tx;

void ToProto(const AccountRow& row, v1::Account* account) {
  account->set_customer_id(row.customer_id);
  account->set_name(row.name);
  account->mutable_balance()->set_amount_minor(row.balance_minor);
  account->mutable_balance()->set_currency(row.currency);
}

void ToProto(const PaymentRow& row, v1::Payment* payment) {
  payment->set_payment_id(row.payment_id);
  payment->set_order_id(row.order_id);
  payment->set_customer_id(row.customer_id);
  payment->mutable_amount()->set_amount_minor(row.amount_minor);
  payment->mutable_amount()->set_currency(row.currency);
  payment->set_status(row.status);
  payment->set_reason(row.reason);
  *payment->mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(row.created_us);
  *payment->mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(row.updated_us);
}

// Finishes the call with `status`. The reactor is owned by the context;
// gRPC releases it once the call is done.
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(relay::ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* PaymentServiceImpl::ListAccounts(grpc::CallbackServerContext* context,
                                                           const v1::ListAccountsRequest*,
                                                           v1::ListAccountsResponse* response) {
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::vector<AccountRow>> rows = relay::payment::ListAccounts(tx);
    if (!rows.ok()) return rows.status();
    for (const AccountRow& row : *rows) ToProto(row, response->add_accounts());
    return absl::OkStatus();
  });
  return Finish(context, s);
}

grpc::ServerUnaryReactor* PaymentServiceImpl::GetAccount(grpc::CallbackServerContext* context,
                                                         const v1::GetAccountRequest* request,
                                                         v1::Account* response) {
  if (absl::Status v = ValidateGetAccount(*request); !v.ok()) return Finish(context, v);
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<AccountRow>> row = FindAccount(tx, request->customer_id());
    if (!row.ok()) return row.status();
    if (!row->has_value()) {
      return absl::NotFoundError(
          absl::StrCat("unknown customer ", Excerpt(request->customer_id())));
    }
    ToProto(**row, response);
    return absl::OkStatus();
  });
  return Finish(context, s);
}

grpc::ServerUnaryReactor* PaymentServiceImpl::Deposit(grpc::CallbackServerContext* context,
                                                      const v1::DepositRequest* request,
                                                      v1::Account* response) {
  // Before the transaction: a refused request opens no account.
  if (absl::Status v = ValidateDeposit(*request); !v.ok()) return Finish(context, v);
  bool opened = false;
  AccountRow after;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<AccountRow>> row = FindAccount(tx, request->customer_id());
    if (!row.ok()) return row.status();
    std::optional<AccountBalance> balance;
    if (row->has_value()) balance = AccountBalance{(*row)->balance_minor, (*row)->currency};
    if (absl::Status v =
            ValidateDeposit(balance, request->customer_id(), request->amount(), request->name());
        !v.ok()) {
      return v;
    }
    if (!row->has_value()) {
      opened = true;
      after = AccountRow{request->customer_id(), request->name(), request->amount().amount_minor(),
                         request->amount().currency()};
      return InsertAccount(tx, after);
    }
    after = **row;
    after.balance_minor += request->amount().amount_minor();
    return SetBalance(tx, after.customer_id, after.balance_minor);
  });
  if (s.ok()) {
    ToProto(after, response);
    RELAY_LOG(Info, opened ? "account opened" : "deposit",
              {{"customer", after.customer_id},
               {"amount", FormatMoney(request->amount())},
               {"balance", FormatMoney(after.balance_minor, after.currency)}});
  }
  return Finish(context, s);
}

grpc::ServerUnaryReactor* PaymentServiceImpl::GetPayment(grpc::CallbackServerContext* context,
                                                         const v1::GetPaymentRequest* request,
                                                         v1::Payment* response) {
  if (absl::Status v = ValidateGetPayment(*request); !v.ok()) return Finish(context, v);
  const bool by_order = !request->order_id().empty();
  absl::Status s = db_->Read([&](Tx& tx) -> absl::Status {
    absl::StatusOr<std::optional<PaymentRow>> row =
        by_order ? FindPaymentByOrder(tx, request->order_id())
                 : FindPaymentById(tx, request->payment_id());
    if (!row.ok()) return row.status();
    if (!row->has_value()) {
      return absl::NotFoundError(
          by_order ? absl::StrCat("order ", Excerpt(request->order_id()), " has no payment (yet)")
                   : absl::StrCat("unknown payment ", Excerpt(request->payment_id())));
    }
    ToProto(**row, response);
    return absl::OkStatus();
  });
  return Finish(context, s);
}

grpc::ServerUnaryReactor* PaymentServiceImpl::Charge(grpc::CallbackServerContext* context,
                                                     const v1::ChargeRequest* request,
                                                     v1::ChargeResponse* response) {
  return Finish(context, DoCharge(*request, response));
}

grpc::ServerUnaryReactor* PaymentServiceImpl::Refund(grpc::CallbackServerContext* context,
                                                     const v1::RefundRequest* request,
                                                     v1::RefundResponse* response) {
  return Finish(context, DoRefund(*request, response));
}

absl::Status PaymentServiceImpl::DoCharge(const v1::ChargeRequest& request,
                                          v1::ChargeResponse* response) {
  if (absl::Status v = ValidateCharge(request); !v.ok()) return v;
  ChargeResult charged;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<ChargeResult> r =
        ChargeOrder(tx, {request.order_id(), request.customer_id(), request.amount()},
                    decline_rate_, absl::ToUnixMicros(absl::Now()));
    if (!r.ok()) return r.status();
    if (r->closed) {
      return absl::FailedPreconditionError(absl::StrCat("order ", Excerpt(request.order_id()),
                                                        " was refunded before it was charged: "
                                                        "nothing charged"));
    }
    charged = std::move(*r);
    const PaymentRow& p = charged.payment;
    if (charged.replayed && (p.customer_id != request.customer_id() ||
                             p.amount_minor != request.amount().amount_minor() ||
                             p.currency != request.amount().currency())) {
      // A silent replay would answer a charge that was never made.
      return absl::FailedPreconditionError(absl::StrCat(
          "order ", Excerpt(request.order_id()), " was charged before for ", Excerpt(p.customer_id),
          " ", FormatMoney(p.amount_minor, p.currency), ", not for this customer and amount"));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  const PaymentRow& p = charged.payment;
  ToProto(p, response->mutable_payment());
  response->set_replayed(charged.replayed);
  if (charged.replayed) {
    RELAY_LOG(Info, "charge replayed",
              {{"order", p.order_id},
               {"payment", p.payment_id},
               {"status", PaymentStatusName(p.status)},
               {"via", "Charge"},
               {"corr", p.order_id}});
  } else if (p.status == v1::PAYMENT_STATUS_CAPTURED) {
    RELAY_LOG(Info, "payment captured",
              {{"order", p.order_id},
               {"customer", p.customer_id},
               {"amount", FormatMoney(p.amount_minor, p.currency)},
               {"balance", FormatMoney(charged.balance_minor, p.currency)},
               {"payment", p.payment_id},
               {"via", "Charge"},
               {"corr", p.order_id}});
  } else {
    RELAY_LOG(Info, "payment declined",
              {{"order", p.order_id},
               {"customer", p.customer_id},
               {"amount", FormatMoney(p.amount_minor, p.currency)},
               {"reason", p.reason},
               {"via", "Charge"},
               {"corr", p.order_id}});
  }
  return absl::OkStatus();
}

absl::Status PaymentServiceImpl::DoRefund(const v1::RefundRequest& request,
                                          v1::RefundResponse* response) {
  if (absl::Status v = ValidateRefund(request); !v.ok()) return v;
  const std::string reason = request.reason().empty() ? "order cancelled" : request.reason();
  RefundResult refund;
  absl::Status s = db_->Transaction([&](Tx& tx) -> absl::Status {
    absl::StatusOr<RefundResult> r =
        RefundOrder(tx, request.order_id(), reason, absl::ToUnixMicros(absl::Now()));
    if (!r.ok()) return r.status();
    refund = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  response->set_refunded(refund.refunded);
  if (refund.payment.has_value()) ToProto(*refund.payment, response->mutable_payment());
  if (refund.refunded) {
    const PaymentRow& p = *refund.payment;
    RELAY_LOG(Info, "payment refunded",
              {{"order", p.order_id},
               {"customer", p.customer_id},
               {"amount", FormatMoney(p.amount_minor, p.currency)},
               {"balance", FormatMoney(refund.balance_minor, p.currency)},
               {"payment", p.payment_id},
               {"reason", reason},
               {"via", "Refund"},
               {"corr", p.order_id}});
  } else {
    RELAY_LOG(Info, "no refund needed",
              {{"order", request.order_id()},
               {"payment",
                refund.payment.has_value() ? PaymentStatusName(refund.payment->status) : "none"},
               {"via", "Refund"},
               {"corr", request.order_id()}});
  }
  return absl::OkStatus();
}

}  // namespace relay::payment
