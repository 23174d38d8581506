#ifndef RELAY_TOOLS_RELAYCTL_CONTEXT_H_
#define RELAY_TOOLS_RELAYCTL_CONTEXT_H_

// What every relayctl command runs with: where the services are, the call
// deadline, the output format and streams, and the channels to the peers.
// Commands are plain functions of a Context, so tests run them in-process
// and read what they printed.

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_channel.h"
#include "common/tls.h"

namespace relay::ctl {

// relayctl's exit codes.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // Anything else (the service said no, bad data, ...).
  kExitUsage = 2,        // The command line is wrong.
  kExitNotFound = 3,     // The order, product, account or topic does not exist.
  kExitUnavailable = 4,  // The service could not be reached or did not answer in time.
  kExitCancelled = 5,    // With --wait (and `order watch`): the order ended CANCELLED.
};

// The exit code for an RPC that failed with `status`.
int ExitCodeFor(const grpc::Status& status);

// The process around a command: streams, environment and Ctrl-C.
struct Io {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Environment lookup (nullptr when unset); std::getenv in the binary.
  std::function<const char*(const char*)> getenv;
  // Called by commands that run until Ctrl-C (events tail -f, load) before
  // they start, so that SIGINT ends them cleanly instead of killing the
  // process. May be empty.
  std::function<void()> arm_interrupt;
  // Whether Ctrl-C was pressed since arm_interrupt(). May be empty (never).
  std::function<bool()> interrupted;
};

struct Endpoints {
  std::string broker = "localhost:7070";
  std::string order = "localhost:7071";
  std::string inventory = "localhost:7072";
  std::string payment = "localhost:7073";
  // An order-service started with --flow=sync, for `compare`: compose's
  // order-service-sync publishes it there (7073-7076 are payment's).
  std::string sync_order = "localhost:7077";
  // --tls-cert/--tls-key/--tls-ca: TLS to every address (common/tls.h).
  TlsFiles tls;
};

// Not thread-safe, except Channel() and SetDeadline(), which may be called
// from any thread once the command runs.
class Context {
 public:
  Context(Io io, Endpoints endpoints, absl::Duration timeout, bool json);

  std::ostream& out() const { return *io_.out; }
  std::ostream& err() const { return *io_.err; }
  bool json() const { return json_; }
  absl::Duration timeout() const { return timeout_; }
  const Endpoints& endpoints() const { return endpoints_; }

  // The one channel to `address`, created on first use. For a list
  // "a:7070,b:7070" (an active broker and its standbys): the address that
  // accepts a connection within the timeout.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);

  // Sets the per-call deadline (--timeout from now) on `context`.
  void SetDeadline(grpc::ClientContext* context) const;

  void ArmInterrupt() const;
  bool Interrupted() const;

  // Prints "relayctl: <command>: <message> (see relayctl <command> --help)"
  // and returns kExitUsage.
  int UsageError(absl::string_view command, absl::string_view message) const;
  int UsageError(absl::string_view command, const absl::Status& status) const {
    return UsageError(command, status.message());
  }

  // Prints "relayctl: <what>: <message>" to err() and returns `code`.
  int Fail(int code, absl::string_view what, absl::string_view message) const;
  // Fail() for an RPC to the service at `address`: the code from the status,
  // the address named when it could not be reached.
  int RpcFailed(absl::string_view what, const std::string& address,
                const grpc::Status& status) const;

 private:
  Io io_;
  Endpoints endpoints_;
  absl::Duration timeout_;
  bool json_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ChannelSet>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_CONTEXT_H_
