// order-service: places orders and runs the order saga. Flags have
// RELAY_ORDER_<FLAG> environment equivalents; SIGTERM/SIGINT drain and exit 0.

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "services/order/order_app.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7071", "host:port to serve relay.order.v1 on");
ABSL_FLAG(std::string, broker, "localhost:7070",
          "relay-broker's host:port, or host:port,host:port... of an active broker and its "
          "standbys (the one that accepts connections is used)");
ABSL_FLAG(std::string, db, "./data/order/orders.db", "the SQLite database (created if missing)");
ABSL_FLAG(absl::Duration, handler_delay, absl::ZeroDuration(),
          "fault knob: sleep this long in every event handler");
ABSL_FLAG(int64_t, crash_after, 0, "fault knob: SIGKILL itself after N handled events (0: never)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long to give open RPCs and then to go on publishing the outbox");
ABSL_FLAG(std::string, log_format, "text", "text or json");
ABSL_FLAG(absl::Duration, inbox_retention, absl::Hours(14 * 24),
          "delete inbox rows (handled event ids) older than this, in batches; must exceed the "
          "broker's --retention_age; 0 keeps them forever");
ABSL_FLAG(absl::Duration, saga_timeout, absl::Minutes(5),
          "cancel (cause timeout, with compensation) an order still PENDING this long after it "
          "was placed, e.g. when inventory or payment is down; 0 never does");

ABSL_FLAG(std::string, flow, "events",
          "events: the saga runs on events through the broker; sync: PlaceOrder calls "
          "inventory-service and payment-service directly and answers the ended order "
          "(docs/EVENT-DRIVEN.md)");
ABSL_FLAG(std::string, inventory, "",
          "--flow=sync: inventory-service's host:port (e.g. localhost:7072)");
ABSL_FLAG(std::string, payment, "",
          "--flow=sync: payment-service's host:port (e.g. localhost:7073)");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(2),
          "--flow=sync: deadline of each call to inventory or payment; a call that fails or "
          "times out cancels the order (dependency_unavailable) and PlaceOrder fails");
ABSL_FLAG(int, sync_workers, 64, "--flow=sync: orders whose calls run at the same time, at most");

int main(int argc, char** argv) {
  relay::Process process("order-service", "RELAY_ORDER_", "places orders and runs the order saga.");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  relay::order::OrderApp::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.broker_target = absl::GetFlag(FLAGS_broker);
  options.db_path = absl::GetFlag(FLAGS_db);
  options.handler_delay = absl::GetFlag(FLAGS_handler_delay);
  options.crash_after = absl::GetFlag(FLAGS_crash_after);
  options.inbox_retention = absl::GetFlag(FLAGS_inbox_retention);
  options.saga_timeout = absl::GetFlag(FLAGS_saga_timeout);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  const std::string flow = absl::GetFlag(FLAGS_flow);
  if (flow == "sync") {
    options.flow = relay::order::OrderApp::Options::Flow::kSync;
  } else if (flow != "events") {
    return process.Fail(absl::InvalidArgumentError(
        absl::StrCat("--flow must be events or sync, got '", flow.substr(0, 32), "'")));
  }
  options.inventory_target = absl::GetFlag(FLAGS_inventory);
  options.payment_target = absl::GetFlag(FLAGS_payment);
  options.call_timeout = absl::GetFlag(FLAGS_call_timeout);
  options.sync_workers = absl::GetFlag(FLAGS_sync_workers);
  absl::StatusOr<std::unique_ptr<relay::order::OrderApp>> app =
      relay::order::OrderApp::Start(options);
  if (!app.ok()) return process.Fail(app.status());
  return process.ServeUntilSignal({{"listen", options.listen},
                                   {"port", absl::StrCat((*app)->port())},
                                   {"broker", options.broker_target},
                                   {"db", options.db_path},
                                   {"flow", flow},
                                   {"saga_timeout", absl::FormatDuration(options.saga_timeout)}},
                                  [&] { (*app)->Shutdown(); });
}
