// payment-service: customer accounts and the payments of orders. Reads flags
// (each with a RELAY_PAYMENT_<FLAG> environment equivalent) and wires
// PaymentApp; SIGTERM/SIGINT drain and exit 0.

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "services/payment/payment_app.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7073", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, broker, "localhost:7070",
          "relay-broker's host:port, or host:port,host:port... of an active broker and its "
          "standbys (the one that accepts connections is used)");
ABSL_FLAG(std::string, db, "./data/payment/payment.db",
          "the SQLite database (its directory is created when missing)");
ABSL_FLAG(bool, seed, true, "open the demo accounts when the database has none");
ABSL_FLAG(double, decline_rate, 0,
          "fault injection: decline this share (0..1) of orders, the same ones on redelivery");
ABSL_FLAG(absl::Duration, handler_delay, absl::ZeroDuration(),
          "fault injection: sleep this long before handling each event");
ABSL_FLAG(int64_t, crash_after, 0,
          "fault injection: kill -9 itself after handling this many events (0: never)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long to go on publishing the outbox and finishing RPCs");
ABSL_FLAG(std::string, log_format, "text", "text or json");
ABSL_FLAG(absl::Duration, inbox_retention, absl::Hours(14 * 24),
          "delete inbox rows (handled event ids) older than this, in batches; must exceed the "
          "broker's --retention_age; 0 keeps them forever");

int main(int argc, char** argv) {
  relay::Process process(
      "payment-service", "RELAY_PAYMENT_",
      "accounts and payments of Relay orders (relay.payment.v1.PaymentService).");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  relay::payment::PaymentApp::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.broker_target = absl::GetFlag(FLAGS_broker);
  options.db_path = absl::GetFlag(FLAGS_db);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.decline_rate = absl::GetFlag(FLAGS_decline_rate);
  options.handler_delay = absl::GetFlag(FLAGS_handler_delay);
  options.crash_after = absl::GetFlag(FLAGS_crash_after);
  options.inbox_retention = absl::GetFlag(FLAGS_inbox_retention);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  absl::StatusOr<std::unique_ptr<relay::payment::PaymentApp>> app =
      relay::payment::PaymentApp::Start(options);
  if (!app.ok()) return process.Fail(app.status());
  return process.ServeUntilSignal({{"listen", options.listen},
                                   {"port", absl::StrCat((*app)->port())},
                                   {"broker", options.broker_target},
                                   {"db", options.db_path}},
                                  [&] { (*app)->Shutdown(); });
}
