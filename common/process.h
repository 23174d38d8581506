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
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/log.h"

namespace relay {

class Process {
 public:
  // `name` is the service name on log lines and errors; every flag defined
  // in the binary's main.cc gets the environment equivalent
  // `env_prefix` + its name in upper case.
  Process(std::string name, std::string env_prefix, std::string description)
      : name_(std::move(name)),
        env_prefix_(std::move(env_prefix)),
        description_(std::move(description)) {}

  // Blocks SIGTERM/SIGINT/SIGPIPE (call before any thread starts), applies
  // the environment to the main.cc flags, parses the command line, and
  // starts logging per --log_format. INVALID_ARGUMENT for a bad value.
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
};

}  // namespace relay

#endif  // RELAY_COMMON_PROCESS_H_
