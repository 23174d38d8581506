// inventory-service: products, stock and reservations. Reads flags (each
// with a RELAY_INVENTORY_<FLAG> environment equivalent) and starts an
// InventoryApp; SIGTERM/SIGINT shut it down and exit 0.

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "services/inventory/inventory_app.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7072", "host:port to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, broker, "localhost:7070",
          "relay-broker's host:port, or host:port,host:port... of an active broker and its "
          "standbys (the one that accepts connections is used)");
ABSL_FLAG(std::string, db, "./data/inventory/inventory.db",
          "the SQLite database (created with its directory when missing)");
ABSL_FLAG(bool, seed, true, "insert the demo catalog when there are no products");
ABSL_FLAG(absl::Duration, handler_delay, absl::ZeroDuration(),
          "fault knob: sleep this long in every event handler");
ABSL_FLAG(absl::Duration, debug_delay, absl::ZeroDuration(),
          "for benchmarks (bench/flow_compare): handle each order event no sooner than this "
          "after it was published, and start each ReserveStock/ReleaseStock/CommitStock call "
          "this late; adds latency to both flows alike without capping throughput");
ABSL_FLAG(int64_t, crash_after, 0,
          "fault knob: SIGKILL itself after this many committed events (0: never)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long to go on publishing the outbox and serving open RPCs");
ABSL_FLAG(std::string, log_format, "text", "text or json");
ABSL_FLAG(absl::Duration, inbox_retention, absl::Hours(14 * 24),
          "delete inbox rows (handled event ids) older than this, in batches; must exceed the "
          "broker's --retention_age; 0 keeps them forever");

int main(int argc, char** argv) {
  relay::Process process("inventory-service", "RELAY_INVENTORY_",
                         "products, stock and reservations (relay.inventory.v1).");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  relay::inventory::InventoryApp::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.broker_target = absl::GetFlag(FLAGS_broker);
  options.db_path = absl::GetFlag(FLAGS_db);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.handler_delay = absl::GetFlag(FLAGS_handler_delay);
  options.crash_after = absl::GetFlag(FLAGS_crash_after);
  options.debug_delay = absl::GetFlag(FLAGS_debug_delay);
  options.inbox_retention = absl::GetFlag(FLAGS_inbox_retention);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  absl::StatusOr<std::unique_ptr<relay::inventory::InventoryApp>> app =
      relay::inventory::InventoryApp::Start(options);
  if (!app.ok()) return process.Fail(app.status());
  return process.ServeUntilSignal({{"listen", options.listen},
                                   {"port", absl::StrCat((*app)->port())},
                                   {"broker", options.broker_target},
                                   {"db", options.db_path}},
                                  [&] { (*app)->Shutdown(); });
}
