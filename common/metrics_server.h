#ifndef RELAY_COMMON_METRICS_SERVER_H_
#define RELAY_COMMON_METRICS_SERVER_H_

// Serves a Registry over HTTP for Prometheus (docs/OBSERVABILITY.md):
// `GET /metrics` answers the text exposition format; every other path is
// 404, every other method 405 before any body is read. One request per
// connection. (The library, cpp-httplib 0.11 from Debian 12, reads a request
// line and its headers without a bound and a request at a time per worker:
// serve it only where those who can reach it are trusted; see
// docs/OBSERVABILITY.md.)
//
//   auto server = MetricsServer::Start("127.0.0.1:9100", &Registry::Default());
//   if (!server.ok()) return server.status();
//   ... (*server)->port() ...
//   (*server)->Stop();  // or let it go out of scope

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace relay::metrics {

class MetricsServer {
 public:
  // Listens on `listen` (host:port; port 0 picks a free one) and serves on a
  // thread of its own. INVALID_ARGUMENT for a malformed address, UNAVAILABLE
  // when it cannot bind. `registry` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen,
                                                              const Registry* registry);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stop()s.
  ~MetricsServer();

  // The port it listens on.
  int port() const { return port_; }

  // Stops listening and waits for the scrapes in progress. Idempotent.
  void Stop();

 private:
  MetricsServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

// Registers the standard process metrics (process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, read from
// /proc at scrape time) and relay_build_info{binary, version}.
void RegisterProcessMetrics(Registry& registry, absl::string_view binary);

}  // namespace relay::metrics

#endif  // RELAY_COMMON_METRICS_SERVER_H_
