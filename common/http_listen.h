#ifndef RELAY_COMMON_HTTP_LISTEN_H_
#define RELAY_COMMON_HTTP_LISTEN_H_

// Starting one of Debian's cpp-httplib servers the way relay-console does
// (every binary's /metrics has a server of its own, common/metrics_server.h,
// which shares SplitHostPort only): bound to host:port with
// SO_REUSEADDR only (httplib's default SO_REUSEPORT would let a second
// process share the port silently), serving on a thread of its own, and
// running before the call returns, so that an immediate stop() is not lost.
//
//   httplib::Server http;
//   std::thread thread;
//   absl::StatusOr<int> port = ListenInBackground(http, "127.0.0.1:0", "console", &thread);
//   ...
//   http.stop();
//   thread.join();

#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace httplib {
class Server;
}

namespace relay {

// "host:port" or "[v6]:port" into its parts; port in [0, 65535].
// INVALID_ARGUMENT naming `what` and quoting at most 64 bytes otherwise.
absl::Status SplitHostPort(absl::string_view listen, absl::string_view what, std::string* host,
                           int* port);

// Binds `http` to `listen` (port 0 picks a free one), starts
// listen_after_bind() on `*thread` and waits until it accepts. Returns the
// port. INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot
// bind or start. The errors name `what`: "metrics address ... is not
// host:port", "metrics server cannot listen on ...".
absl::StatusOr<int> ListenInBackground(httplib::Server& http, absl::string_view listen,
                                       absl::string_view what, std::thread* thread);

}  // namespace relay

#endif  // RELAY_COMMON_HTTP_LISTEN_H_
