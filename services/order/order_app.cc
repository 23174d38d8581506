#include "services/order/order_app.h"

#include <utility>

#include "services/order/order_service.h"
#include "services/order/order_store.h"
#include "services/order/saga_timeout_sweeper.h"
#include "services/order/sync_saga.h"
#include "services/order/watch_hub.h"
#include "services/shared/pending_log_lines.h"

namespace relay::order {
namespace {

// Group and member name are both "order-service" (unlike payment's and
// inventory's `<service>-<pid>`), as they have always been.
events::Subscriber::Options Subscription(const std::string& topic,
                                         const std::string& group = "order-service") {
  events::Subscriber::Options o;
  o.topic = topic;
  o.group = group;
  o.member_name = group;
  return o;
}

}  // namespace

OrderApp::~OrderApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<OrderApp>> OrderApp::Start(Options options) {
  const bool sync = options.flow == Options::Flow::kSync;
  SyncSaga::Options sync_options;
  sync_options.inventory_target = options.inventory_target;
  sync_options.payment_target = options.payment_target;
  sync_options.call_timeout = options.call_timeout;
  sync_options.workers = options.sync_workers;
  // Negative would turn the sweeper off, as zero does: a typo must not
  // leave a PENDING order holding stock and money for good.
  if (options.saga_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("saga_timeout must not be negative (0: off)");
  }
  if (options.saga_sweep_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("saga_sweep_interval must not be negative (0: automatic)");
  }
  if (sync) {
    if (absl::Status s = SyncSaga::Validate(sync_options); !s.ok()) return s;
    // The saga timeout is sync mode's only way back for an order a crash or a
    // shutdown left PENDING (with stock held, money taken): it cannot be off.
    if (options.saga_timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "--flow=sync needs a --saga_timeout > 0: it is what compensates an order a crash left "
          "PENDING");
    }
  }
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
  // manager), the sync saga (it calls the manager and answers PlaceOrder),
  // the place thread (it notifies the hub), then the hub, which ends the
  // open WatchOrder streams so the server's stop need not wait.
  WatchHub* hub = rt.Own(std::make_unique<WatchHub>(rt.db()));
  rt.OnStop([hub] { hub->Stop(); });
  OrderManager* manager = rt.Own(std::make_unique<OrderManager>(
      rt.db(), rt.outbox_relay(), hub, options.clock, /*publish_events=*/!sync));
  rt.OnStop([manager] { manager->Stop(); });
  SyncSaga* saga = nullptr;
  if (sync) {
    saga = rt.Own(std::make_unique<SyncSaga>(manager, sync_options));
    rt.OnStop([saga] { saga->Stop(); });
    // No order.cancelled goes out in this flow: an order the timeout ends
    // (left PENDING by a crash) is compensated by direct calls.
    manager->SetTimedOutListener([saga](const v1::Order& order) { saga->CompensateAsync(order); });
  }
  SagaTimeoutSweeper* sweeper = rt.Own(std::make_unique<SagaTimeoutSweeper>(
      manager, SagaTimeoutSweeper::Options{options.saga_timeout, options.saga_sweep_interval}));
  rt.OnStop([sweeper] { sweeper->Stop(); });

  // One PendingLogLines per consumer: each holds the lines of its open
  // transaction.
  auto* inventory_lines = rt.Own(std::make_unique<services::PendingLogLines>());
  if (sync) {
    manager->RegisterCatalogHandler(
        rt.AddConsumer(Subscription("inventory", "order-service-sync"), *inventory_lines),
        inventory_lines);
  } else {
    manager->RegisterInventoryHandlers(rt.AddConsumer(Subscription("inventory"), *inventory_lines),
                                       inventory_lines);
    auto* payment_lines = rt.Own(std::make_unique<services::PendingLogLines>());
    manager->RegisterPaymentHandlers(rt.AddConsumer(Subscription("payments"), *payment_lines),
                                     payment_lines);
  }

  OrderServiceImpl* service = rt.Own(std::make_unique<OrderServiceImpl>(manager, hub, saga));
  if (absl::Status s = rt.Start({service}); !s.ok()) return s;
  sweeper->Start();
  app->manager_ = manager;
  return app;
}

}  // namespace relay::order
