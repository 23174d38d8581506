// relay-console: the pipeline's live web page (docs/CONSOLE.md). Reads
// flags (each with a RELAY_CONSOLE_<FLAG> environment equivalent), serves
// the page and its API until SIGTERM/SIGINT.

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_channel.h"
#include "common/process.h"
#include "tools/console/console.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8080",
          "host:port to serve the web page on (port 0: any free)");
ABSL_FLAG(std::string, broker, "localhost:7070",
          "relay-broker's host:port, or a list of an active broker and its standbys");
ABSL_FLAG(std::string, order, "localhost:7071", "order-service's host:port");
ABSL_FLAG(std::string, inventory, "localhost:7072", "inventory-service's host:port");
ABSL_FLAG(std::string, payment, "localhost:7073", "payment-service's host:port");
ABSL_FLAG(absl::Duration, refresh, absl::Seconds(1),
          "how often the page's numbers are refreshed (100ms to 1h)");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(2), "deadline of each call to a peer");
ABSL_FLAG(std::vector<std::string>, allowed_hosts,
          std::vector<std::string>({"localhost", "127.0.0.1", "::1"}),
          "host names the page may be opened by (the Host header; others get 403: guards "
          "against DNS rebinding)");
ABSL_FLAG(int, max_streams, 16, "the most live streams (open pages and order views) at once");
ABSL_FLAG(std::string, log_format, "text", "text or json");

int main(int argc, char** argv) {
  relay::Process process("relay-console", "RELAY_CONSOLE_",
                         "the live web page of a Relay pipeline: topics, groups, orders.");
  if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);

  relay::console::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.endpoints.broker = absl::GetFlag(FLAGS_broker);
  options.endpoints.order = absl::GetFlag(FLAGS_order);
  options.endpoints.inventory = absl::GetFlag(FLAGS_inventory);
  options.endpoints.payment = absl::GetFlag(FLAGS_payment);
  options.endpoints.tls = relay::ProcessTls();
  options.refresh = absl::GetFlag(FLAGS_refresh);
  options.rpc_timeout = absl::GetFlag(FLAGS_rpc_timeout);
  options.max_streams = absl::GetFlag(FLAGS_max_streams);
  options.allowed_hosts = absl::GetFlag(FLAGS_allowed_hosts);
  auto console = relay::console::Console::Start(options);
  if (!console.ok()) return process.Fail(console.status());
  return process.ServeUntilSignal({{"listen", options.listen},
                                   {"port", absl::StrCat((*console)->port())},
                                   {"broker", options.endpoints.broker}},
                                  [&] { (*console)->Stop(); });
}
