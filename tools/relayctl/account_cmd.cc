// relayctl account list|deposit: the payment-service API.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/money.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

namespace pv1 = relay::payment::v1;

std::unique_ptr<pv1::PaymentService::Stub> PaymentStub(Context& ctx) {
  return pv1::PaymentService::NewStub(ctx.Channel(ctx.endpoints().payment));
}

void PrintAccounts(Context& ctx, const std::vector<const pv1::Account*>& accounts) {
  Table table({{"CUSTOMER"}, {"NAME"}, {"BALANCE", Table::kRight}});
  for (const pv1::Account* a : accounts) {
    table.AddRow({a->customer_id(), a->name(), FormatMoney(a->balance())});
  }
  table.Render(ctx.out());
}

int List(Context& ctx, const Args&) {
  auto stub = PaymentStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  pv1::ListAccountsResponse response;
  grpc::Status status = stub->ListAccounts(&call, pv1::ListAccountsRequest(), &response);
  if (!status.ok()) return ctx.RpcFailed("list accounts", ctx.endpoints().payment, status);
  if (ctx.json()) {
    ctx.out() << ToJson(response, true) << "\n";
    return kExitOk;
  }
  std::vector<const pv1::Account*> accounts;
  for (const pv1::Account& a : response.accounts()) accounts.push_back(&a);
  PrintAccounts(ctx, accounts);
  return kExitOk;
}

int Deposit(Context& ctx, const Args& args) {
  const char* kPath = "account deposit";
  pv1::DepositRequest request;
  request.set_customer_id(args.Positional(0));
  const std::string currency = args.Get("currency", "USD");
  absl::StatusOr<int64_t> amount = ParseMinorUnits(args.Positional(1), currency);
  if (!amount.ok()) return ctx.UsageError(kPath, amount.status());
  if (*amount <= 0) return ctx.UsageError(kPath, "AMOUNT must be positive");
  request.mutable_amount()->set_amount_minor(*amount);
  request.mutable_amount()->set_currency(currency);
  request.set_name(args.Get("name"));

  auto stub = PaymentStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  pv1::Account account;
  grpc::Status status = stub->Deposit(&call, request, &account);
  if (!status.ok()) {
    return ctx.RpcFailed(absl::StrCat("deposit to ", Excerpt(request.customer_id())),
                         ctx.endpoints().payment, status);
  }
  if (ctx.json()) {
    ctx.out() << ToJson(account, true) << "\n";
  } else {
    PrintAccounts(ctx, {&account});
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> AccountCommands() {
  return {
      {{"account list", "Lists customer accounts with their balances.", {}, {}, ""}, List},
      {{"account deposit",
        "Adds money to an account (creates it with --name).",
        {"CUSTOMER", "AMOUNT"},
        {{"currency", Flag::kValue, "CODE", "currency of AMOUNT (default USD)"},
         {"name", Flag::kValue, "NAME", "account holder's name (to create the account)"}},
        "AMOUNT is a decimal such as 12.50, converted exactly to minor units."},
       Deposit},
  };
}

}  // namespace relay::ctl
