#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_

// The gRPC face of payment-service (relay.payment.v1.PaymentService): read
// accounts and payments, deposit money. Callback API; each RPC is one short
// SQLite transaction answered on the gRPC thread through DefaultReactor().
// Charge and Refund are the saga's payment steps as direct calls
// (payment_steps.h), for order-service --flow=sync.

#include "common/store/sqlite.h"
#include "relay/payment/v1/payment.grpc.pb.h"

namespace relay::payment {

// Thread-safe (the Database serializes access). REQUIRES: `db` outlives the
// service, and the server the service is registered on is shut down before
// the service is destroyed.
class PaymentServiceImpl final : public relay::payment::v1::PaymentService::CallbackService {
 public:
  // `decline_rate`: the fault knob of PaymentHandlers::Options, applied to
  // Charge too.
  explicit PaymentServiceImpl(relay::store::Database* db, double decline_rate = 0)
      : db_(db), decline_rate_(decline_rate) {}

  // Every account, sorted by customer id.
  grpc::ServerUnaryReactor* ListAccounts(grpc::CallbackServerContext* context,
                                         const v1::ListAccountsRequest* request,
                                         v1::ListAccountsResponse* response) override;
  // INVALID_ARGUMENT without customer_id, NOT_FOUND for an unknown one.
  grpc::ServerUnaryReactor* GetAccount(grpc::CallbackServerContext* context,
                                       const v1::GetAccountRequest* request,
                                       v1::Account* response) override;
  // See ValidateDeposit() for what is refused; answers the account after.
  grpc::ServerUnaryReactor* Deposit(grpc::CallbackServerContext* context,
                                    const v1::DepositRequest* request,
                                    v1::Account* response) override;
  // By order_id or payment_id (exactly one: else INVALID_ARGUMENT);
  // NOT_FOUND when there is no such payment.
  grpc::ServerUnaryReactor* GetPayment(grpc::CallbackServerContext* context,
                                       const v1::GetPaymentRequest* request,
                                       v1::Payment* response) override;
  // ChargeOrder() in one transaction; see the .proto for the answers.
  grpc::ServerUnaryReactor* Charge(grpc::CallbackServerContext* context,
                                   const v1::ChargeRequest* request,
                                   v1::ChargeResponse* response) override;
  // RefundOrder() in one transaction.
  grpc::ServerUnaryReactor* Refund(grpc::CallbackServerContext* context,
                                   const v1::RefundRequest* request,
                                   v1::RefundResponse* response) override;

  // The bodies of Charge and Refund, as absl::Status (converted at the edge).
  absl::Status DoCharge(const v1::ChargeRequest& request, v1::ChargeResponse* response);
  absl::Status DoRefund(const v1::RefundRequest& request, v1::RefundResponse* response);

 private:
  relay::store::Database* const db_;
  const double decline_rate_;
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_
