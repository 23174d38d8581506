#include "services/order/order_app.h"

#include <utility>

#include "services/order/order_service.h"
#include "services/order/order_store.h"
#include "services/order/saga_timeout_sweeper.h"
#include "services/order/watch_hub.h"
#include "services/shared/pending_log_lines.h"

namespace relay::order {
namespace {

// Group and member name are both "order-service" (unlike payment's and
// inventory's `<service>-<pid>`), as they have always been.
events::Subscriber::Options Subscription(const std::string& topic) {
  events::Subscriber::Options o;
  o.topic = topic;
  o.group = "order-service";
  o.member_name = "order-service";
  return o;
}

}  // namespace

OrderApp::~OrderApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<OrderApp>> OrderApp::Start(Options options) {
  services::ServiceRuntime::Options ro = services::ServiceRuntime::CommonOptions(options);
  ro.database.synchronous = options.synchronous;
  ro.migrations = OrderStore::Migrations();
  absl::StatusOr<std::unique_ptr<services::ServiceRuntime>> runtime =
      services::ServiceRuntime::Open(std::move(ro));
  if (!runtime.ok()) return runtime.status();
  // From here on, an error destroys `app`, whose runtime stops what started.
  std::unique_ptr<OrderApp> app(new OrderApp(std::move(*runtime)));
  services::ServiceRuntime& rt = *app->runtime_;

  // Stop hooks run last registered first: the sweeper (it calls the
  // manager), the place thread (it notifies the hub), then the hub, which
  // ends the open WatchOrder streams so the server's stop need not wait.
  WatchHub* hub = rt.Own(std::make_unique<WatchHub>(rt.db()));
  rt.OnStop([hub] { hub->Stop(); });
  OrderManager* manager =
      rt.Own(std::make_unique<OrderManager>(rt.db(), rt.outbox_relay(), hub, options.clock));
  rt.OnStop([manager] { manager->Stop(); });
  SagaTimeoutSweeper* sweeper = rt.Own(std::make_unique<SagaTimeoutSweeper>(
      manager, SagaTimeoutSweeper::Options{options.saga_timeout, options.saga_sweep_interval}));
  rt.OnStop([sweeper] { sweeper->Stop(); });

  // One PendingLogLines per consumer: each holds the lines of its open
  // transaction.
  auto* inventory_lines = rt.Own(std::make_unique<services::PendingLogLines>());
  manager->RegisterInventoryHandlers(rt.AddConsumer(Subscription("inventory"), *inventory_lines),
                                     inventory_lines);
  auto* payment_lines = rt.Own(std::make_unique<services::PendingLogLines>());
  manager->RegisterPaymentHandlers(rt.AddConsumer(Subscription("payments"), *payment_lines),
                                   payment_lines);

  OrderServiceImpl* service = rt.Own(std::make_unique<OrderServiceImpl>(manager, hub));
  if (absl::Status s = rt.Start({service}); !s.ok()) return s;
  sweeper->Start();
  app->manager_ = manager;
  return app;
}

}  // namespace relay::order
