#include "common/metrics_server.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http_listen.h"
#include "common/text.h"
#include "httplib.h"

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
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->http_;
  // Prometheus scrapes one request at a time; two threads keep a slow
  // scrape from holding up a quick look with curl.
  http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // One request per connection, and an idle one waits 2 s at most: a
  // connection left open after a refused request would have its unread body
  // read as the next request line, which the library reads without bound.
  http.set_keep_alive_max_count(1);
  http.set_keep_alive_timeout(2);
  // Before the library reads a body: it reads a POST's (or PUT's, ...)
  // whole, inflating a compressed one, before any handler could refuse it.
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD")
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("only GET /metrics\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Expose(), kContentType);
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404) {
      res.set_content(absl::StrCat("not found: ", Excerpt(req.path), " (try /metrics)\n"),
                      "text/plain");
    }
  });
  absl::StatusOr<int> port = ListenInBackground(http, listen, "metrics", &server->thread_);
  if (!port.ok()) return port.status();
  server->port_ = *port;
  return server;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
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
