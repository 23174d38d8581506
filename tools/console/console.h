#ifndef RELAY_TOOLS_CONSOLE_CONSOLE_H_
#define RELAY_TOOLS_CONSOLE_CONSOLE_H_

// relay-console: a web page that shows the pipeline live
// (docs/CONSOLE.md). An HTTP server (Debian's cpp-httplib) serves the
// static page compiled into the binary (tools/console/web) and a JSON API
// the page reads:
//
//   GET  /api/overview             the latest snapshot (below), as JSON
//   GET  /api/stream               the snapshots as Server-Sent Events, one
//                                  `overview` event per refresh
//   GET  /api/orders?status=S&limit=N   recent orders (S: pending,
//                                  confirmed, cancelled or empty; N <= 200)
//   POST /api/orders               place an order: a PlaceOrderRequest as
//                                  JSON, through order-service's PlaceOrder
//   GET  /api/orders/ID            the order and its timeline (relayctl
//                                  trace --json's document)
//   GET  /api/orders/ID/stream     the same as `order` events, sent as they
//                                  change, then `end` once the order is
//                                  terminal and its last event is on the
//                                  timeline (or after two minutes)
//
// Every answer forbids framing and sniffing (X-Frame-Options,
// X-Content-Type-Options, a Content-Security-Policy of 'self'); a request
// whose Host is not in `allowed_hosts` gets 403.
//
// A snapshot, refreshed every `refresh` by one thread: each peer's
// reachability; topics with events/s and the producers seen on their tail;
// consumer groups with members, lag, in flight, redeliveries and acks/s;
// stock and balances; the newest dead-lettered events. A peer that does not
// answer is reported as unreachable in the snapshot; the console itself
// keeps serving.
//
// It only reads: the broker's read RPCs (ListTopics, DescribeGroups, Read:
// the policy's `admin` rule), the services' list and get RPCs, and it
// places orders through order-service's public API. It never publishes.
//
//   auto console = Console::Start(options);
//   if (!console.ok()) return console.status();
//   ... (*console)->port() ...
//   (*console)->Stop();  // or let it go out of scope

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/relayctl/context.h"

namespace relay::console {

struct Options {
  // host:port of the web page and API (port 0 picks a free one).
  std::string listen = "127.0.0.1:8080";
  // The broker (a list: active and standbys) and the three services; `tls`
  // for every connection (plaintext when empty).
  ctl::Endpoints endpoints;
  // How often the snapshot is rebuilt and pushed to the open pages.
  absl::Duration refresh = absl::Seconds(1);
  // The deadline of each RPC to a peer (1ms to 1h).
  absl::Duration rpc_timeout = absl::Seconds(2);
  // The most event streams served at once (each holds one HTTP thread; 1 to
  // 1,024); one more is refused with 503.
  int max_streams = 16;
  // The host names (the Host header without its port; an entry's port or
  // brackets are ignored) the console answers to; any other gets 403. Guards against DNS rebinding: a page of another
  // site whose name resolves to 127.0.0.1 reaches the console with its own
  // name. Add the names you open the page by when it listens elsewhere.
  std::vector<std::string> allowed_hosts = {"localhost", "127.0.0.1", "::1"};
  // How long an order's stream lasts at most.
  absl::Duration order_stream_limit = absl::Minutes(2);
};

class Console {
 public:
  // Listens and starts the refresh thread. INVALID_ARGUMENT for a bad
  // option, UNAVAILABLE when the address cannot be bound. The peers need
  // not be up.
  static absl::StatusOr<std::unique_ptr<Console>> Start(const Options& options);

  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;
  // Stop()s.
  ~Console();

  int port() const;

  // Ends every open stream, stops listening and the refresh thread.
  // Idempotent.
  void Stop();

 private:
  class Impl;
  explicit Console(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay::console

#endif  // RELAY_TOOLS_CONSOLE_CONSOLE_H_
