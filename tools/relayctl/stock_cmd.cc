// relayctl stock list|set: the inventory-service API.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/money.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

namespace iv1 = relay::inventory::v1;

std::unique_ptr<iv1::InventoryService::Stub> InventoryStub(Context& ctx) {
  return iv1::InventoryService::NewStub(ctx.Channel(ctx.endpoints().inventory));
}

void PrintProducts(Context& ctx, const std::vector<const iv1::Product*>& products) {
  Table table({{"SKU"},
               {"NAME"},
               {"PRICE", Table::kRight},
               {"ON HAND", Table::kRight},
               {"RESERVED", Table::kRight},
               {"AVAILABLE", Table::kRight}});
  for (const iv1::Product* p : products) {
    table.AddRow({p->sku(), p->name(), FormatMoney(p->price()), absl::StrCat(p->on_hand()),
                  absl::StrCat(p->reserved()), absl::StrCat(p->available())});
  }
  table.Render(ctx.out());
}

int List(Context& ctx, const Args&) {
  auto stub = InventoryStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  iv1::ListProductsResponse response;
  grpc::Status status = stub->ListProducts(&call, iv1::ListProductsRequest(), &response);
  if (!status.ok()) return ctx.RpcFailed("list products", ctx.endpoints().inventory, status);
  if (ctx.json()) {
    ctx.out() << ToJson(response, true) << "\n";
    return kExitOk;
  }
  std::vector<const iv1::Product*> products;
  for (const iv1::Product& p : response.products()) products.push_back(&p);
  PrintProducts(ctx, products);
  return kExitOk;
}

int Set(Context& ctx, const Args& args) {
  const char* kPath = "stock set";
  iv1::SetStockRequest request;
  request.set_sku(args.Positional(0));
  absl::StatusOr<int64_t> qty = ParseInt("QTY", args.Positional(1), 0, int64_t{1} << 40);
  if (!qty.ok()) return ctx.UsageError(kPath, qty.status());
  request.set_on_hand(*qty);
  request.set_name(args.Get("name"));
  if (args.Has("price")) {
    const std::string currency = args.Get("currency", "USD");
    absl::StatusOr<int64_t> price = ParseMinorUnits(args.Get("price"), currency);
    if (!price.ok()) return ctx.UsageError(kPath, price.status());
    if (*price < 0) return ctx.UsageError(kPath, "--price must not be negative");
    request.mutable_price()->set_amount_minor(*price);
    request.mutable_price()->set_currency(currency);
  } else if (args.Has("currency")) {
    return ctx.UsageError(kPath, "--currency needs --price");
  }

  auto stub = InventoryStub(ctx);
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  iv1::Product product;
  grpc::Status status = stub->SetStock(&call, request, &product);
  if (!status.ok()) {
    return ctx.RpcFailed(absl::StrCat("set stock of ", Excerpt(request.sku())),
                         ctx.endpoints().inventory, status);
  }
  if (ctx.json()) {
    ctx.out() << ToJson(product, true) << "\n";
  } else {
    PrintProducts(ctx, {&product});
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> StockCommands() {
  return {
      {{"stock list", "Lists products with their stock, sorted by sku.", {}, {}, ""}, List},
      {{"stock set",
        "Sets a product's on-hand quantity (creates the product with --name and --price).",
        {"SKU", "QTY"},
        {{"name", Flag::kValue, "NAME", "product name (to create or rename)"},
         {"price", Flag::kValue, "AMOUNT", "unit price such as 12.50 (to create or reprice)"},
         {"currency", Flag::kValue, "CODE", "currency of --price (default USD)"}},
        "QTY must be at least what is reserved now."},
       Set},
  };
}

}  // namespace relay::ctl
