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

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "services/shared/service_runtime.h"

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
  // the consumer and the gRPC server (services/shared/service_runtime.h).
  // INVALID_ARGUMENT for bad options; otherwise the error of the part that
  // failed (e.g. the listen address is taken), with everything started so
  // far stopped again.
  static absl::StatusOr<std::unique_ptr<PaymentApp>> Start(Options options);
  ~PaymentApp();  // Shutdown()

  PaymentApp(const PaymentApp&) = delete;
  PaymentApp& operator=(const PaymentApp&) = delete;

  // The gRPC port.
  int port() const { return runtime_->port(); }

  // The SIGTERM path, in the runtime's shutdown order
  // (services/shared/service_runtime.h): consuming stops (unacked
  // deliveries go back to the group), the server stops (open RPCs get up to
  // shutdown_grace), the outbox is published within shutdown_grace (what is
  // left stays for the next start), the database closes. Idempotent; a
  // second call waits for the first.
  void Shutdown() { runtime_->Shutdown(); }

  // For tests: the database and the consumer's counts. REQUIRES: not
  // concurrently with Shutdown(); db() is null after it.
  relay::store::Database* db() { return runtime_->db(); }
  relay::store::TransactionalConsumer::Stats consumer_stats() const {
    return runtime_->consumer_stats();
  }

 private:
  explicit PaymentApp(std::unique_ptr<services::ServiceRuntime> runtime)
      : runtime_(std::move(runtime)) {}

  std::unique_ptr<services::ServiceRuntime> runtime_;
};

}  // namespace relay::payment

#endif  // RELAY_SERVICES_PAYMENT_PAYMENT_APP_H_
