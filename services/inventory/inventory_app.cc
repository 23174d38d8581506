#include "services/inventory/inventory_app.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/log.h"
#include "services/inventory/inventory_store.h"
#include "services/shared/consumer_hooks.h"

namespace relay::inventory {
namespace {

using events::Subscriber;
using store::TransactionalConsumer;

absl::Status ValidateOptions(const InventoryApp::Options& o) {
  if (o.broker_target.empty()) return absl::InvalidArgumentError("broker target is required");
  if (o.db_path.empty()) return absl::InvalidArgumentError("database path is required");
  if (o.handler_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("handler_delay must not be negative");
  }
  if (o.crash_after < 0) return absl::InvalidArgumentError("crash_after must not be negative");
  return absl::OkStatus();
}

absl::Status CreateParentDir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create directory ", parent.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

Subscriber::Options OrdersSubscription() {
  Subscriber::Options o;
  o.topic = kOrdersTopic;
  o.group = kServiceName;
  return o;
}

}  // namespace

InventoryApp::InventoryApp(Options options)
    : options_(std::move(options)), faults_(options_.handler_delay, options_.crash_after) {}

InventoryApp::~InventoryApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<InventoryApp>> InventoryApp::Start(Options options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<InventoryApp> app(new InventoryApp(std::move(options)));
  // On an error, `app` goes away here and its destructor stops what started.
  if (absl::Status s = app->Init(); !s.ok()) return s;
  return app;
}

absl::Status InventoryApp::Init() {
  if (absl::Status s = CreateParentDir(options_.db_path); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<store::Database>> db = store::Database::Open(options_.db_path, {});
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  if (absl::Status s = db_->Migrate(InventoryStore::Migrations()); !s.ok()) return s;
  if (options_.seed) {
    int seeded = 0;
    absl::Status s = db_->Transaction([&](store::Tx& tx) -> absl::Status {
      absl::StatusOr<int> n = InventoryStore::SeedIfEmpty(tx, absl::Now());
      if (!n.ok()) return n.status();
      seeded = *n;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (seeded > 0) RELAY_LOG(Info, "catalog seeded", {{"products", absl::StrCat(seeded)}});
  }

  // The broker may not be up yet: the channel connects lazily, and the
  // publisher and the subscriber retry until it answers.
  std::shared_ptr<grpc::Channel> channel = MakeChannel(options_.broker_target);
  publisher_ = std::make_unique<events::Publisher>(channel, events::Publisher::Options{});
  store::OutboxRelay::Options relay_options;
  relay_options.stop_grace = options_.shutdown_grace;
  relay_ = std::make_unique<store::OutboxRelay>(db_.get(), publisher_.get(), relay_options);
  relay_->Start();
  store::InboxPruner::Options pruner_options;
  pruner_options.retention = options_.inbox_retention;
  inbox_pruner_ = std::make_unique<store::InboxPruner>(db_.get(), pruner_options);
  inbox_pruner_->Start();

  handlers_ = std::make_unique<InventoryHandlers>();
  TransactionalConsumer::Options consumer_options;
  consumer_options.subscriber = OrdersSubscription();
  consumer_options.subscriber.member_name = absl::StrCat(kServiceName, "-", getpid());
  services::FitInFlightToHandlerDelay(consumer_options.subscriber, options_.handler_delay);
  services::HookLogLinesAndFaults(consumer_options, *handlers_, faults_, stopping_);
  consumer_options.subscriber.on_refusal_change = health_.Watcher("orders");
  consumer_ =
      std::make_unique<TransactionalConsumer>(db_.get(), channel, consumer_options, relay_.get());
  handlers_->Register(*consumer_);
  consumer_->Start();

  service_ = std::make_unique<InventoryServiceImpl>(db_.get(), relay_.get());
  absl::StatusOr<RunningServer> server = StartGrpcServer(options_.listen, {service_.get()});
  if (!server.ok()) return server.status();
  server_ = std::move(server->server);
  port_ = server->port;
  health_.Attach(server_.get());
  return absl::OkStatus();
}

bool InventoryApp::WaitUntilConsuming(absl::Duration timeout) {
  return consumer_ != nullptr && consumer_->WaitUntilOpen(timeout);
}

TransactionalConsumer::Stats InventoryApp::consumer_stats() const {
  return consumer_ != nullptr ? consumer_->stats() : TransactionalConsumer::Stats{};
}

void InventoryApp::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.store(true);
  health_.Attach(nullptr);
  if (server_ != nullptr) server_->GetHealthCheckService()->SetServingStatus(false);
  // Consuming first: deliveries not acked go back to the group, and nothing
  // new lands in the outbox from events while it drains.
  if (consumer_ != nullptr) consumer_->Stop();
  if (inbox_pruner_ != nullptr) inbox_pruner_->Stop();
  if (relay_ != nullptr) relay_->Stop();  // publishes for up to shutdown_grace
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  }
  if (publisher_ != nullptr) publisher_->Close();
  // The database last: the server's RPCs and the relay use it until here.
  server_.reset();
  service_.reset();
  consumer_.reset();
  relay_.reset();
  publisher_.reset();
  db_.reset();
}

}  // namespace relay::inventory
