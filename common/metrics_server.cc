#include "common/metrics_server.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http_listen.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The fields of /proc/self/stat after the command name (which may hold
// spaces and parentheses): fields[0] is field 3, `state`.
std::vector<std::string> StatFields() {
  const std::string stat = ReadSmallFile("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ', absl::SkipEmpty());
}

double StatField(const std::vector<std::string>& fields, size_t field_number) {
  double v = 0;
  if (field_number >= 3 && field_number - 3 < fields.size()) {
    (void)absl::SimpleAtod(fields[field_number - 3], &v);
  }
  return v;
}

double BootTimeSeconds() {
  std::istringstream in(ReadSmallFile("/proc/stat"));
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(absl::string_view listen,
                                                                    const Registry* registry) {
  return Start(listen, registry, Options());
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(absl::string_view listen,
                                                                    const Registry* registry,
                                                                    const Options& options) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(listen, "metrics", &host, &port); !s.ok()) return s;
  std::unique_ptr<MetricsServer> server(new MetricsServer(registry, options));
  const absl::Status cannot_listen =
      absl::UnavailableError(absl::StrCat("metrics server cannot listen on ", Excerpt(listen)));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return cannot_listen;
  }
  for (addrinfo* a = found; a != nullptr && server->listen_fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    // SO_REUSEADDR only: SO_REUSEPORT would let a second process share the
    // port silently.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      server->listen_fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (server->listen_fd_ < 0) return cannot_listen;
  sockaddr_storage bound{};
  socklen_t bound_size = sizeof bound;
  if (getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_size) != 0) {
    return cannot_listen;
  }
  server->port_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  server->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (server->wake_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("metrics server: eventfd: ", strerror(errno)));
  }
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

namespace {

// One connection: reading its request head, then writing the answer, then
// (its write side shut) reading what else the client sent until it closes,
// so that the kernel does not answer unread bytes with a reset that could
// cost the client the answer.
struct Connection {
  enum class State { kReading, kWriting, kDraining };
  int fd = -1;
  State state = State::kReading;
  absl::Time accepted;
  absl::Time deadline;
  std::string in;
  std::string out;
  size_t sent = 0;  // of `out`; while draining, the bytes read and dropped
};

// How long, and for how many bytes, a connection whose answer is sent waits
// for the client's close.
constexpr absl::Duration kDrainTimeout = absl::Seconds(1);
constexpr size_t kMaxDrainBytes = 64 << 10;

std::string Response(int status, absl::string_view reason, absl::string_view content_type,
                     const std::string& body, bool head_only, absl::string_view extra = "") {
  std::string out =
      absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ", content_type,
                   "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n", extra, "\r\n");
  if (!head_only) out += body;
  return out;
}

std::string PlainResponse(int status, absl::string_view reason, const std::string& body,
                          absl::string_view extra = "") {
  return Response(status, reason, "text/plain; charset=utf-8", body, false, extra);
}

// The answer to a request whose head is `head` (its line ends LF or CRLF).
// `exposition` gives the registry's text: called at most once per pass of
// the loop, however many scrapes are ready in it.
std::string Answer(absl::string_view head, const std::function<const std::string&()>& exposition) {
  const absl::string_view line = head.substr(0, head.find('\n'));
  std::vector<absl::string_view> parts = absl::StrSplit(absl::StripSuffix(line, "\r"), ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.") || parts[1].empty()) {
    return PlainResponse(400, "Bad Request",
                         absl::StrCat("malformed request line ", Excerpt(line), "\n"));
  }
  const absl::string_view method = parts[0];
  if (method != "GET" && method != "HEAD") {
    return PlainResponse(405, "Method Not Allowed", "only GET /metrics\n", "Allow: GET, HEAD\r\n");
  }
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    std::string body = absl::StrCat("not found: ", Excerpt(path), " (try /metrics)\n");
    return Response(404, "Not Found", "text/plain; charset=utf-8", body, method == "HEAD");
  }
  return Response(200, "OK", kContentType, exposition(), method == "HEAD");
}

// Where a request's head ends (after its empty line; each line may end LF
// or CRLF), or npos.
size_t HeadEnd(absl::string_view in) {
  for (size_t i = in.find('\n'); i != absl::string_view::npos; i = in.find('\n', i + 1)) {
    if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
    if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
  }
  return absl::string_view::npos;
}

// After an accept fails for want of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM) the pending connection keeps the socket readable: the
// loop leaves it alone this long instead of waking for it at once, again
// and again.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);

}  // namespace

void MetricsServer::Loop() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  auto close_at = [&conns](size_t i) {
    close(conns[i].fd);
    conns.erase(conns.begin() + static_cast<ptrdiff_t>(i));
  };
  // Writes what it can of the answer; false once the connection is closed.
  auto send_some = [&](size_t i, absl::Time now) {
    Connection& c = conns[i];
    while (c.sent < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
      } else {
        close_at(i);
        return false;
      }
    }
    shutdown(c.fd, SHUT_WR);
    std::string().swap(c.out);
    c.sent = 0;
    c.state = Connection::State::kDraining;
    c.deadline = std::min(c.deadline, now + kDrainTimeout);
    return true;
  };
  auto answer = [&](size_t i, std::string response, absl::Time now) {
    Connection& c = conns[i];
    std::string().swap(c.in);
    c.out = std::move(response);
    c.state = Connection::State::kWriting;
    c.deadline = now + options_.response_timeout;
    return send_some(i, now);
  };
  absl::Time accept_paused_until = absl::InfinitePast();
  for (;;) {
    absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    fds.clear();
    fds.push_back(pollfd{wake_fd_, POLLIN, 0});
    // fd -1: poll ignores the entry (and sets no revents).
    const bool accepting = accept_paused_until <= now;
    fds.push_back(pollfd{accepting ? listen_fd_ : -1, POLLIN, 0});
    if (!accepting) next = accept_paused_until;
    for (const Connection& c : conns) {
      const short events = c.state == Connection::State::kWriting ? POLLOUT : POLLIN;
      fds.push_back(pollfd{c.fd, events, 0});
      next = std::min(next, c.deadline);
    }
    int timeout_ms = -1;
    if (next != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(next - now, absl::Milliseconds(1))), 0, 60'000));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      RELAY_LOG(Error, "metrics server: poll failed; serving stops", {{"error", strerror(errno)}});
      break;
    }
    if (fds[0].revents != 0) break;  // Stop()
    now = absl::Now();
    // The registry's text, made at most once this pass: a slow Expose()
    // (its collectors ask the log and the groups) is paid once for all the
    // scrapes that are ready.
    std::optional<std::string> exposition;
    auto expose = [&]() -> const std::string& {
      if (!exposition.has_value()) exposition = registry_->Expose();
      return *exposition;
    };
    // Connections first, from the last so that closing one (an erase) keeps
    // the indices of those still to do; a new one is accepted after.
    for (size_t i = conns.size(); i-- > 0;) {
      const short revents = fds[i + 2].revents;
      Connection& c = conns[i];
      // The deadline first, whatever the connection has to do: one that is
      // ready at the pass after its deadline gains no more time.
      if (c.deadline <= now) {
        if (c.state == Connection::State::kReading) {
          // Best effort: a connection that sent too little in time.
          const std::string timeout =
              PlainResponse(408, "Request Timeout", "request not received in time\n");
          (void)send(c.fd, timeout.data(), timeout.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        close_at(i);
        continue;
      }
      if (revents == 0) continue;
      if (c.state == Connection::State::kWriting) {
        send_some(i, now);
        continue;
      }
      char buf[4096];
      // Never more than one byte past the bound: a head that reaches it is
      // refused, however much more the client has sent.
      const size_t room =
          c.state == Connection::State::kReading
              ? std::min(sizeof buf, options_.max_request_head_bytes + 1 - c.in.size())
              : sizeof buf;
      const ssize_t n = recv(c.fd, buf, room, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) {
        close_at(i);
        continue;
      }
      if (c.state == Connection::State::kDraining) {
        c.sent += static_cast<size_t>(n);  // counts what was read and dropped
        if (c.sent > kMaxDrainBytes) close_at(i);
        continue;
      }
      c.in.append(buf, static_cast<size_t>(n));
      const size_t end = HeadEnd(c.in);
      if (end != absl::string_view::npos && end <= options_.max_request_head_bytes) {
        answer(i, Answer(absl::string_view(c.in).substr(0, end), expose), now);
      } else if (c.in.size() > options_.max_request_head_bytes) {
        answer(i,
               PlainResponse(431, "Request Header Fields Too Large",
                             absl::StrCat("request line and headers over ",
                                          options_.max_request_head_bytes, " bytes\n")),
               now);
      }
    }
    if (fds[1].revents != 0) {
      // At most max_connections a pass: a flood of connects cannot keep the
      // loop from its connections, its deadlines and Stop().
      for (size_t n = 0; n < options_.max_connections; ++n) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            accept_paused_until = now + kAcceptBackoff;
          }
          break;  // EAGAIN: none left; EINTR, ECONNABORTED, ...: next pass
        }
        if (conns.size() >= options_.max_connections) {
          // Make room by the oldest connection accepted before this pass
          // (each had a pass to send its request, and a scraper sends it at
          // once): the oldest still sending its request, else the oldest
          // still taking its answer (or its close). Idle, trickling and
          // non-reading clients lose their slots to whoever comes next.
          size_t oldest = conns.size();
          for (int want_reading = 1; want_reading >= 0 && oldest == conns.size(); --want_reading) {
            for (size_t i = 0; i < conns.size(); ++i) {
              const bool reading = conns[i].state == Connection::State::kReading;
              if (reading == (want_reading == 1) && conns[i].accepted < now &&
                  (oldest == conns.size() || conns[i].accepted < conns[oldest].accepted)) {
                oldest = i;
              }
            }
          }
          if (oldest == conns.size()) {
            close(fd);  // every slot was taken in this very pass
            continue;
          }
          close_at(oldest);
        }
        conns.push_back(Connection{
            fd, Connection::State::kReading, now, now + options_.request_timeout, {}, {}, 0});
      }
    }
  }
  for (const Connection& c : conns) close(c.fd);
}

void RegisterProcessMetrics(Registry& registry, absl::string_view binary) {
  registry
      .AddGauge("relay_build_info", "The binary and its version; always 1", {"binary", "version"})
      .With({std::string(binary), RELAY_VERSION})
      .Set(1);
  registry.AddCollector([](Collection& c) {
    const std::vector<std::string> stat = StatFields();
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    // Fields 14 and 15: utime and stime in clock ticks; 22: start time in
    // ticks after boot; 23: vsize in bytes; 24: rss in pages.
    c.Counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds", {},
              (StatField(stat, 14) + StatField(stat, 15)) / ticks);
    c.Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch", {},
            BootTimeSeconds() + StatField(stat, 22) / ticks);
    c.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", {},
            StatField(stat, 23));
    c.Gauge("process_resident_memory_bytes", "Resident memory size in bytes", {},
            StatField(stat, 24) * page);
    c.Gauge("process_open_fds", "Open file descriptors", {}, OpenFds());
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      c.Gauge("process_max_fds", "Limit on open file descriptors", {},
              static_cast<double>(limit.rlim_cur));
    }
  });
}

}  // namespace relay::metrics
