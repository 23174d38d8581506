#ifndef RELAY_COMMON_METRICS_SERVER_H_
#define RELAY_COMMON_METRICS_SERVER_H_

// Serves a Registry over HTTP for Prometheus (docs/OBSERVABILITY.md):
// `GET /metrics` answers the text exposition format; every other path is
// 404, every other method 405, and a body is never read. One request per
// connection. Every connection is bounded: its request line and headers to
// 8 KiB (else 431), their arrival to 5 s after the connect (else 408), the
// answer's sending to 10 s, and at most 16 connections at once (a new one
// closes the oldest still sending its request, else the oldest still taking
// its answer). One thread, a poll loop, serves them all, so no client can
// grow the process's memory or hold a thread.
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
#include "absl/time/time.h"
#include "common/metrics.h"

namespace relay::metrics {

class MetricsServer {
 public:
  // The bounds above (tests make them small).
  struct Options {
    size_t max_connections = 16;
    // Request line and headers, with their CRLFs.
    size_t max_request_head_bytes = 8192;
    // From the connect to the end of the request's headers.
    absl::Duration request_timeout = absl::Seconds(5);
    // From the end of the request's headers to the last byte of the answer
    // taken by the kernel.
    absl::Duration response_timeout = absl::Seconds(10);
  };

  // Listens on `listen` (host:port; port 0 picks a free one) and serves on a
  // thread of its own. INVALID_ARGUMENT for a malformed address, UNAVAILABLE
  // when it cannot bind. `registry` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen,
                                                              const Registry* registry);
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen,
                                                              const Registry* registry,
                                                              const Options& options);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stop()s.
  ~MetricsServer();

  // The port it listens on.
  int port() const { return port_; }

  // Stops listening, closes every connection (a scrape being answered ends
  // with it) and joins the thread. Idempotent.
  void Stop();

 private:
  MetricsServer(const Registry* registry, const Options& options)
      : registry_(registry), options_(options) {}
  void Loop();

  const Registry* const registry_;
  const Options options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop() writes it, Loop() returns
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
