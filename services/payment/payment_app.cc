#include "services/payment/payment_app.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "common/log.h"
#include "services/payment/payment_store.h"
#include "services/shared/consumer_hooks.h"

namespace relay::payment {
namespace {

using relay::store::TransactionalConsumer;

absl::Status ValidateOptions(const PaymentApp::Options& o) {
  if (o.broker_target.empty()) return absl::InvalidArgumentError("broker target is required");
  if (o.db_path.empty()) return absl::InvalidArgumentError("database path is required");
  if (!(o.decline_rate >= 0 && o.decline_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("decline_rate must be within 0..1, got ", o.decline_rate));
  }
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

}  // namespace

PaymentApp::PaymentApp(Options options)
    : options_(std::move(options)), faults_(options_.handler_delay, options_.crash_after) {}

PaymentApp::~PaymentApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<PaymentApp>> PaymentApp::Start(Options options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<PaymentApp> app(new PaymentApp(std::move(options)));
  // On an error, `app` goes away here and its destructor stops what started.
  if (absl::Status s = app->Init(); !s.ok()) return s;
  return app;
}

absl::Status PaymentApp::Init() {
  if (absl::Status s = CreateParentDir(options_.db_path); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<relay::store::Database>> db =
      OpenPaymentDatabase(options_.db_path);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  if (options_.seed) {
    absl::StatusOr<int> seeded = SeedAccountsIfEmpty(*db_);
    if (!seeded.ok()) return seeded.status();
    if (*seeded > 0) RELAY_LOG(Info, "seeded accounts", {{"accounts", absl::StrCat(*seeded)}});
  }

  // The broker may not be up yet: the channel connects lazily, and the
  // publisher and the subscriber retry until it answers.
  broker_channel_ = relay::MakeChannel(options_.broker_target);
  publisher_ = std::make_unique<relay::events::Publisher>(broker_channel_,
                                                          relay::events::Publisher::Options{});
  relay::store::OutboxRelay::Options relay_options;
  relay_options.stop_grace = options_.shutdown_grace;
  outbox_relay_ =
      std::make_unique<relay::store::OutboxRelay>(db_.get(), publisher_.get(), relay_options);
  outbox_relay_->Start();
  relay::store::InboxPruner::Options pruner_options;
  pruner_options.retention = options_.inbox_retention;
  inbox_pruner_ = std::make_unique<relay::store::InboxPruner>(db_.get(), pruner_options);
  inbox_pruner_->Start();

  PaymentHandlers::Options handler_options;
  handler_options.decline_rate = options_.decline_rate;
  handlers_ = std::make_unique<PaymentHandlers>(handler_options);
  TransactionalConsumer::Options consumer_options;
  consumer_options.subscriber = PaymentSubscription();
  consumer_options.subscriber.member_name = absl::StrCat(kServiceName, "-", getpid());
  services::FitInFlightToHandlerDelay(consumer_options.subscriber, options_.handler_delay);
  services::HookLogLinesAndFaults(consumer_options, *handlers_, faults_, stopping_);
  consumer_options.subscriber.on_refusal_change = health_.Watcher("orders");
  consumer_ = std::make_unique<TransactionalConsumer>(db_.get(), broker_channel_, consumer_options,
                                                      outbox_relay_.get());
  handlers_->Register(*consumer_);
  consumer_->Start();

  service_ = std::make_unique<PaymentServiceImpl>(db_.get());
  absl::StatusOr<relay::RunningServer> server =
      relay::StartGrpcServer(options_.listen, {service_.get()});
  if (!server.ok()) return server.status();
  server_ = std::move(server->server);
  port_ = server->port;
  health_.Attach(server_.get());
  return absl::OkStatus();
}

TransactionalConsumer::Stats PaymentApp::consumer_stats() const {
  return consumer_ != nullptr ? consumer_->stats() : TransactionalConsumer::Stats{};
}

void PaymentApp::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.store(true);
  health_.Attach(nullptr);
  if (server_ != nullptr) server_->GetHealthCheckService()->SetServingStatus(false);
  // Consuming first: deliveries not acked go back to the group, and nothing
  // new lands in the outbox while it drains.
  if (consumer_ != nullptr) consumer_->Stop();
  if (inbox_pruner_ != nullptr) inbox_pruner_->Stop();
  if (outbox_relay_ != nullptr) outbox_relay_->Stop();  // publishes for up to shutdown_grace
  if (publisher_ != nullptr) publisher_->Close();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  }
  // The database last: the server's RPCs and the relay use it until here.
  consumer_.reset();
  outbox_relay_.reset();
  db_.reset();
}

}  // namespace relay::payment
