#include "services/order/order_app.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "services/order/order_store.h"
#include "services/shared/consumer_hooks.h"

namespace relay::order {

absl::StatusOr<std::unique_ptr<OrderApp>> OrderApp::Start(Options options) {
  std::unique_ptr<OrderApp> app(new OrderApp());
  std::filesystem::path parent = std::filesystem::path(options.db_path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec)
      return absl::InternalError(
          absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  }
  store::Database::Options db_options;
  db_options.synchronous = options.synchronous;
  absl::StatusOr<std::unique_ptr<store::Database>> db =
      store::Database::Open(options.db_path, db_options);
  if (!db.ok()) return db.status();
  app->db_ = std::move(*db);
  if (absl::Status s = app->db_->Migrate(OrderStore::Migrations()); !s.ok()) return s;

  app->faults_ = std::make_unique<Faults>(options.handler_delay, options.crash_after);
  std::shared_ptr<grpc::Channel> broker = MakeChannel(options.broker_target);
  app->publisher_ = std::make_unique<events::Publisher>(broker, events::Publisher::Options{});
  app->relay_ = std::make_unique<store::OutboxRelay>(app->db_.get(), app->publisher_.get(),
                                                     store::OutboxRelay::Options{});
  app->hub_ = std::make_unique<WatchHub>(app->db_.get());
  app->manager_ = std::make_unique<OrderManager>(app->db_.get(), app->relay_.get(),
                                                 app->hub_.get(), options.clock);
  app->sweeper_ = std::make_unique<SagaTimeoutSweeper>(
      app->manager_.get(),
      SagaTimeoutSweeper::Options{options.saga_timeout, options.saga_sweep_interval});

  auto consumer = [&](const std::string& topic, services::PendingLogLines& lines) {
    store::TransactionalConsumer::Options o;
    o.subscriber.topic = topic;
    o.subscriber.group = "order-service";
    o.subscriber.member_name = "order-service";
    // Fault knobs: the delay outside the database lock; the crash after the
    // commit and before the ack, so a restart sees a redelivery.
    services::FitInFlightToHandlerDelay(o.subscriber, options.handler_delay);
    services::HookLogLinesAndFaults(o, lines, *app->faults_, app->stopping_);
    o.subscriber.on_refusal_change = app->health_.Watcher(topic);
    return std::make_unique<store::TransactionalConsumer>(app->db_.get(), broker, o,
                                                          app->relay_.get());
  };
  app->inventory_consumer_ = consumer("inventory", app->inventory_lines_);
  app->manager_->RegisterInventoryHandlers(*app->inventory_consumer_, &app->inventory_lines_);
  app->payment_consumer_ = consumer("payments", app->payment_lines_);
  app->manager_->RegisterPaymentHandlers(*app->payment_consumer_, &app->payment_lines_);

  app->service_ = std::make_unique<OrderServiceImpl>(app->manager_.get(), app->hub_.get());
  absl::StatusOr<RunningServer> server = StartGrpcServer(options.listen, {app->service_.get()});
  if (!server.ok()) return server.status();
  app->server_ = std::move(server->server);
  app->port_ = server->port;
  app->health_.Attach(app->server_.get());

  app->relay_->Start();
  app->inventory_consumer_->Start();
  app->payment_consumer_->Start();
  app->sweeper_->Start();
  store::InboxPruner::Options pruner_options;
  pruner_options.retention = options.inbox_retention;
  app->inbox_pruner_ = std::make_unique<store::InboxPruner>(app->db_.get(), pruner_options);
  app->inbox_pruner_->Start();
  return app;
}

OrderApp::~OrderApp() { Shutdown(); }

void OrderApp::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  health_.Attach(nullptr);
  if (inventory_consumer_) inventory_consumer_->Stop();
  if (payment_consumer_) payment_consumer_->Stop();
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (sweeper_) sweeper_->Stop();
  if (inbox_pruner_) inbox_pruner_->Stop();
  if (manager_) manager_->Stop();
  if (hub_) hub_->Stop();
  if (relay_) relay_->Stop();
  if (publisher_) publisher_->Close();
}

}  // namespace relay::order
