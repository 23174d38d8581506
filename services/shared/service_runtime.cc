#include "services/shared/service_runtime.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/grpc_channel.h"
#include "common/grpc_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "services/shared/consumer_hooks.h"

namespace relay::services {
namespace {

absl::Status ValidateOptions(const ServiceRuntime::Options& o) {
  if (o.broker_target.empty()) return absl::InvalidArgumentError("broker target is required");
  if (absl::StatusOr<std::shared_ptr<ChannelSet>> brokers = ChannelSet::Parse(o.broker_target);
      !brokers.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("broker target: ", brokers.status().message()));
  }
  if (o.db_path.empty()) return absl::InvalidArgumentError("database path is required");
  if (o.handler_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("handler_delay must not be negative");
  }
  if (o.debug_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("debug_delay must not be negative");
  }
  if (o.crash_after < 0) return absl::InvalidArgumentError("crash_after must not be negative");
  if (o.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown_grace must not be negative");
  }
  if (o.inbox_retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("inbox_retention must not be negative");
  }
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

ServiceRuntime::ServiceRuntime(Options options) : options_(std::move(options)) {}

ServiceRuntime::~ServiceRuntime() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ServiceRuntime>> ServiceRuntime::Open(Options options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<ServiceRuntime> runtime(new ServiceRuntime(std::move(options)));
  // On an error, `runtime` goes away here and its destructor closes what opened.
  if (absl::Status s = runtime->Init(); !s.ok()) return s;
  return runtime;
}

absl::Status ServiceRuntime::Init() {
  if (absl::Status s = CreateParentDir(options_.db_path); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<store::Database>> db =
      store::Database::Open(options_.db_path, options_.database);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  if (absl::Status s = db_->Migrate(options_.migrations); !s.ok()) return s;
  store::Database* database = db_.get();
  db_collector_ = metrics::Registry::Default().AddCollector([database](metrics::Collection& c) {
    const store::Database::Stats stats = database->stats();
    c.Counter("relay_db_transactions_total",
              "Write transactions run (committed or rolled back) on the service's database", {},
              static_cast<double>(stats.transactions));
    c.Counter("relay_db_commits_total",
              "COMMITs those transactions took in groups (an fsync each with synchronous=FULL): "
              "transactions / commits is about the mean group size",
              {}, static_cast<double>(stats.commits));
  });

  faults_ =
      std::make_unique<Faults>(options_.handler_delay, options_.crash_after, options_.debug_delay);
  // The broker may not be up yet: the channels connect lazily, and the
  // publisher and the subscribers retry until it (or, of several, the
  // active one) answers.
  absl::StatusOr<std::shared_ptr<ChannelSet>> brokers = ChannelSet::Parse(options_.broker_target);
  if (!brokers.ok()) return brokers.status();
  brokers_ = std::move(*brokers);
  for (absl::string_view target : absl::StrSplit(options_.broker_target, ',')) {
    WarnIfPlaintext("connecting to", absl::StripAsciiWhitespace(target), ProcessTls());
  }
  publisher_ = std::make_unique<events::Publisher>(brokers_, events::Publisher::Options{});
  store::OutboxRelay::Options relay_options;
  relay_options.stop_grace = options_.shutdown_grace;
  relay_ = std::make_unique<store::OutboxRelay>(db_.get(), publisher_.get(), relay_options);
  store::InboxPruner::Options pruner_options;
  pruner_options.retention = options_.inbox_retention;
  inbox_pruner_ = std::make_unique<store::InboxPruner>(db_.get(), pruner_options);
  return absl::OkStatus();
}

store::TransactionalConsumer& ServiceRuntime::AddConsumer(events::Subscriber::Options subscription,
                                                          LogLineHooks hooks) {
  hooks_.push_back(std::make_unique<LogLineHooks>(std::move(hooks)));
  store::TransactionalConsumer::Options o;
  o.subscriber = std::move(subscription);
  // Fault knobs: the delay outside the database lock; the crash after the
  // commit and before the ack, so a restart sees a redelivery.
  FitInFlightToHandlerDelay(o.subscriber, options_.handler_delay);
  HookLogLinesAndFaults(o, *hooks_.back(), *faults_, stopping_);
  o.subscriber.on_refusal_change = health_.Watcher(o.subscriber.topic);
  consumers_.push_back(
      std::make_unique<store::TransactionalConsumer>(db_.get(), brokers_, o, relay_.get()));
  return *consumers_.back();
}

void ServiceRuntime::OnStop(std::function<void()> hook) { stop_hooks_.push_back(std::move(hook)); }

absl::Status ServiceRuntime::Start(const std::vector<grpc::Service*>& services) {
  // The server first: it is what fails most (the address is taken), and
  // then nothing else has started. RPCs served before the relay runs leave
  // their events in the outbox, which the relay reads when it starts.
  absl::StatusOr<RunningServer> server = StartGrpcServer(options_.listen, services);
  if (!server.ok()) {
    Shutdown();
    return server.status();
  }
  server_ = std::move(server->server);
  port_ = server->port;
  relay_->Start();
  inbox_pruner_->Start();
  for (std::unique_ptr<store::TransactionalConsumer>& consumer : consumers_) consumer->Start();
  health_.Attach(server_.get());
  return absl::OkStatus();
}

bool ServiceRuntime::WaitUntilConsuming(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  return std::all_of(consumers_.begin(), consumers_.end(), [&](const auto& consumer) {
    return consumer->WaitUntilOpen(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  });
}

store::TransactionalConsumer::Stats ServiceRuntime::consumer_stats() const {
  store::TransactionalConsumer::Stats sum;
  for (const std::unique_ptr<store::TransactionalConsumer>& consumer : consumers_) {
    store::TransactionalConsumer::Stats s = consumer->stats();
    sum.handled += s.handled;
    sum.duplicates += s.duplicates;
    sum.failed += s.failed;
    sum.commits += s.commits;
  }
  return sum;
}

// The steps are those of the header's list; keep the two in step.
void ServiceRuntime::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // 1. Stopping flag and health.
  stopping_.store(true);
  health_.Attach(nullptr);
  if (server_ != nullptr) server_->GetHealthCheckService()->SetServingStatus(false);
  // 2. Consumers: the batch in hand is finished and acked, the rest goes
  // back to the group.
  for (std::unique_ptr<store::TransactionalConsumer>& consumer : consumers_) consumer->Stop();
  // 3. The service's own threads, last registered first.
  for (auto hook = stop_hooks_.rbegin(); hook != stop_hooks_.rend(); ++hook) (*hook)();
  // 4. Housekeeping.
  if (inbox_pruner_ != nullptr) inbox_pruner_->Stop();
  // 5. The server: in-flight unary RPCs finish; what is open at the
  // deadline is cancelled.
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  }
  // 6. The outbox, published for up to shutdown_grace.
  if (relay_ != nullptr) relay_->Stop();
  // 7. The publisher's stream.
  if (publisher_ != nullptr) publisher_->Close();
  // 8. Reverse order of creation, the database last.
  server_.reset();
  consumers_.clear();
  hooks_.clear();
  while (!owned_.empty()) owned_.pop_back();
  stop_hooks_.clear();
  inbox_pruner_.reset();
  relay_.reset();
  publisher_.reset();
  brokers_.reset();
  faults_.reset();
  if (db_collector_ >= 0) {
    metrics::Registry::Default().RemoveCollector(db_collector_);
    db_collector_ = -1;
  }
  db_.reset();
}

}  // namespace relay::services
