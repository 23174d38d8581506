#include "common/http_listen.h"

#include <sys/socket.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/text.h"
#include "httplib.h"

namespace relay {

absl::Status SplitHostPort(absl::string_view listen, absl::string_view what, std::string* host,
                           int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " address ", Excerpt(listen), " is not host:port"));
  }
  absl::string_view h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = -1;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " address ", Excerpt(listen), " has no port in [0, 65535]"));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

absl::StatusOr<int> ListenInBackground(httplib::Server& http, absl::string_view listen,
                                       absl::string_view what, std::thread* thread) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(listen, what, &host, &port); !s.ok()) return s;
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port < 0) port = -1;
  } else if (!http.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(what, " server cannot listen on ", Excerpt(listen)));
  }
  *thread = std::thread([&http] { http.listen_after_bind(); });
  // httplib's stop() does nothing until the thread is inside its accept
  // loop (it has no readiness callback), so wait for that here: a stop()
  // right after the start must not miss it and hang.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http.is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  if (!http.is_running()) {
    return absl::UnavailableError(
        absl::StrCat(what, " server on ", Excerpt(listen), " did not start within 10 s"));
  }
  return port;
}

}  // namespace relay
