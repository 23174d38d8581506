#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_

// The gRPC face of payment-service (relay.payment.v1.PaymentService): read
// accounts and payments, deposit money. Callback API; each RPC is one short
// SQLite transaction answered on the gRPC thread through DefaultReactor().

#include "common/store/sqlite.h"
#include "relay/payment/v1/payment.grpc.pb.h"

namespace relay::payment {

// Thread-safe (the Database serializes access). REQUIRES: `db` outlives the
// service, and the server the service is registered on is shut down before
// the service is destroyed.
class PaymentServiceImpl final : public relay::payment::v1::PaymentService::CallbackService {
 public:
  explicit PaymentServiceImpl(relay::store::Database* db) : db_(db) {}

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

 private:
  relay::store::Database* const db_;
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_SERVICE_H_
