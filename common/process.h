#ifndef RELAY_COMMON_PROCESS_H_
#define RELAY_COMMON_PROCESS_H_

// The shape every Relay binary's main() shares:
//
//   relay::Process process("payment-service", "RELAY_PAYMENT_", "what it is");
//   if (absl::Status s = process.Init(argc, argv); !s.ok()) return process.Fail(s);
//   auto app = PaymentApp::Start(options);
//   if (!app.ok()) return process.Fail(app.status());
//   return process.ServeUntilSignal({{"port", ...}}, [&] { (*app)->Shutdown(); });

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/log.h"

namespace relay {
namespace metrics {
class MetricsServer;
}

class Process {
 public:
  // `name` is the service name on log lines and errors; every flag defined
  // in the binary's main.cc gets the environment equivalent
  // `env_prefix` + its name in upper case.
  Process(std::string name, std::string env_prefix, std::string description);
  ~Process();

  // Blocks SIGTERM/SIGINT/SIGPIPE (call before any thread starts), applies
  // the environment to the main.cc flags, parses the command line, starts
  // logging per --log_format, checks the --tls_* files, registers the
  // process metrics and, with --metrics_listen, serves /metrics (until the
  // Process goes). INVALID_ARGUMENT for a bad value, UNAVAILABLE when the
  // metrics address cannot be bound.
  absl::Status Init(int argc, char** argv);

  // Prints "<name>: <message>" on stderr; returns 1 (main's exit code).
  int Fail(const absl::Status& status) const;

  // Logs "serving" with `fields`, waits for SIGTERM or SIGINT, logs it,
  // runs `shutdown`, logs "stopped". Returns 0.
  int ServeUntilSignal(std::initializer_list<log::Field> fields,
                       const std::function<void()>& shutdown) const;

 private:
  const std::string name_;
  const std::string env_prefix_;
  const std::string description_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace relay

#endif  // RELAY_COMMON_PROCESS_H_
