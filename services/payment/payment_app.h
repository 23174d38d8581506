#ifndef RELAY_SERVICES_PAYMENT_PAYMENT_APP_H_
#define RELAY_SERVICES_PAYMENT_PAYMENT_APP_H_

// payment-service wired together, for main.cc and for tests: payment.db,
// the outbox relay publishing to topic "payments", the consumer of topic
// "orders" (group "payment-service") and the gRPC server (PaymentService,
// health, reflection).
//
//   auto app = PaymentApp::Start({.broker_target = "localhost:7070",
//                                 .db_path = "data/payment/payment.db"});
//   if (!app.ok()) return Fail(app.status());
//   WaitForTerminationSignal();
//   (*app)->Shutdown();

#include <grpcpp/channel.h>
#include <grpcpp/server.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/events/publisher.h"
#include "common/faults.h"
#include "common/store/inbox_pruner.h"
#include "common/store/outbox.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/payment/payment_handlers.h"
#include "services/payment/payment_service.h"
#include "services/shared/consumer_health.h"

namespace relay::payment {

// A running payment-service. It needs no broker to start: until one
// answers, events wait in the outbox and the subscriber keeps reconnecting.
//
// Thread-safe.
class PaymentApp {
 public:
  struct Options {
    // host:port of the gRPC API; port 0 picks a free one (see port()).
    std::string listen = "127.0.0.1:0";
    // host:port of the broker. Required.
    std::string broker_target;
    // The SQLite file; its directory is created when missing. Required.
    std::string db_path;
    // Open the seed accounts when the database has none.
    bool seed = true;
    // Fault knobs (see PaymentHandlers::Options and relay::Faults).
    double decline_rate = 0;
    absl::Duration handler_delay;
    int64_t crash_after = 0;
    // How long Shutdown() goes on publishing the outbox, and waits for open
    // RPCs.
    absl::Duration shutdown_grace = absl::Seconds(5);
    // Inbox rows older than this are deleted (common/store/inbox_pruner.h:
    // it must exceed the broker's log retention); zero: never.
    absl::Duration inbox_retention = absl::Hours(14 * 24);
  };

  // Opens and migrates the database, seeds it, and starts the outbox relay,
  // the consumer and the gRPC server. INVALID_ARGUMENT for bad options;
  // otherwise the error of the part that failed (e.g. the listen address is
  // taken), with everything started so far stopped again.
  static absl::StatusOr<std::unique_ptr<PaymentApp>> Start(Options options);
  ~PaymentApp();  // Shutdown()

  PaymentApp(const PaymentApp&) = delete;
  PaymentApp& operator=(const PaymentApp&) = delete;

  // The gRPC port.
  int port() const { return port_; }

  // The SIGTERM path: stops consuming (unacked deliveries go back to the
  // group), publishes the outbox within shutdown_grace (what is left stays
  // for the next start), stops the server and closes the database.
  // Idempotent.
  void Shutdown();

  // For tests: the database and the consumer's counts. REQUIRES: not
  // concurrently with Shutdown(); db() is null after it.
  relay::store::Database* db() { return db_.get(); }
  relay::store::TransactionalConsumer::Stats consumer_stats() const;

 private:
  explicit PaymentApp(Options options);
  absl::Status Init();

  const Options options_;
  relay::Faults faults_;
  std::unique_ptr<relay::store::Database> db_;
  std::shared_ptr<grpc::Channel> broker_channel_;
  std::unique_ptr<relay::events::Publisher> publisher_;
  std::unique_ptr<relay::store::OutboxRelay> outbox_relay_;
  std::unique_ptr<relay::store::InboxPruner> inbox_pruner_;
  std::unique_ptr<PaymentHandlers> handlers_;
  // Handles events in transactions; its hooks run the fault knobs and write
  // the log lines (see Init()).
  std::unique_ptr<relay::store::TransactionalConsumer> consumer_;
  std::unique_ptr<PaymentServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  // NOT_SERVING while the broker refuses the subscription.
  relay::services::ConsumerHealth health_;
  int port_ = 0;

  // Set when Shutdown() begins: the handler_delay fault stops sleeping.
  std::atomic<bool> stopping_{false};
  // Held for the whole of Shutdown(), so a second call waits for the first.
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_APP_H_
