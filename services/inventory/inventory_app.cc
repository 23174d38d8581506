#include "services/inventory/inventory_app.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "services/inventory/inventory_handlers.h"
#include "services/inventory/inventory_service.h"
#include "services/inventory/inventory_store.h"

namespace relay::inventory {
namespace {

events::Subscriber::Options OrdersSubscription() {
  events::Subscriber::Options o;
  o.topic = kOrdersTopic;
  o.group = kServiceName;
  o.member_name = absl::StrCat(kServiceName, "-", getpid());
  return o;
}

// Inserts the seed catalog when there are no products.
absl::Status Seed(store::Database& db) {
  int seeded = 0;
  absl::Status s = db.Transaction([&](store::Tx& tx) -> absl::Status {
    absl::StatusOr<int> n = InventoryStore::SeedIfEmpty(tx, absl::Now());
    if (!n.ok()) return n.status();
    seeded = *n;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (seeded > 0) RELAY_LOG(Info, "catalog seeded", {{"products", absl::StrCat(seeded)}});
  return absl::OkStatus();
}

}  // namespace

InventoryApp::~InventoryApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<InventoryApp>> InventoryApp::Start(Options options) {
  services::ServiceRuntime::Options ro = services::ServiceRuntime::CommonOptions(options);
  ro.migrations = InventoryStore::Migrations();
  ro.debug_delay = options.debug_delay;
  absl::StatusOr<std::unique_ptr<services::ServiceRuntime>> runtime =
      services::ServiceRuntime::Open(std::move(ro));
  if (!runtime.ok()) return runtime.status();
  // From here on, an error destroys `app`, whose runtime stops what started.
  std::unique_ptr<InventoryApp> app(new InventoryApp(std::move(*runtime)));
  services::ServiceRuntime& rt = *app->runtime_;

  if (options.seed) {
    if (absl::Status s = Seed(*rt.db()); !s.ok()) return s;
  }
  InventoryHandlers* handlers = rt.Own(std::make_unique<InventoryHandlers>());
  handlers->Register(rt.AddConsumer(OrdersSubscription(), *handlers));
  InventoryServiceImpl* service = rt.Own(
      std::make_unique<InventoryServiceImpl>(rt.db(), rt.outbox_relay(), options.debug_delay));
  if (absl::Status s = rt.Start({service}); !s.ok()) return s;
  return app;
}

}  // namespace relay::inventory
