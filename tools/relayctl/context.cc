#include "tools/relayctl/context.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/grpc_channel.h"

namespace relay::ctl {

int ExitCodeFor(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    default:
      return kExitError;
  }
}

Context::Context(Io io, Endpoints endpoints, absl::Duration timeout, bool json)
    : io_(std::move(io)), endpoints_(std::move(endpoints)), timeout_(timeout), json_(json) {}

std::shared_ptr<grpc::Channel> Context::Channel(const std::string& address) {
  std::shared_ptr<ChannelSet> set;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<ChannelSet>& entry = channels_[address];
    if (entry == nullptr) {
      // Keepalive, and large messages: a Read answers with up to 10000
      // events. Run() checked the address list.
      absl::StatusOr<std::shared_ptr<ChannelSet>> parsed =
          ChannelSet::Parse(address, {}, endpoints_.tls);
      entry = parsed.ok()
                  ? *parsed
                  : std::make_shared<ChannelSet>(relay::MakeChannel(address, {}, endpoints_.tls));
    }
    set = entry;
  }
  // Of several addresses (an active broker and standbys), the one that
  // answers; a standby does not listen.
  return set->size() == 1 ? set->Pick() : set->WaitForReady(timeout_);
}

void Context::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
}

void Context::ArmInterrupt() const {
  if (io_.arm_interrupt) io_.arm_interrupt();
}

bool Context::Interrupted() const { return io_.interrupted && io_.interrupted(); }

int Context::UsageError(absl::string_view command, absl::string_view message) const {
  err() << "relayctl: " << command << ": " << message << " (see relayctl " << command
        << " --help)\n";
  return kExitUsage;
}

int Context::Fail(int code, absl::string_view what, absl::string_view message) const {
  err() << "relayctl: " << what << ": " << message << "\n";
  err().flush();
  return code;
}

int Context::RpcFailed(absl::string_view what, const std::string& address,
                       const grpc::Status& status) const {
  std::string message = status.error_message();
  if (message.empty()) message = absl::StrCat("gRPC code ", status.error_code());
  const int code = ExitCodeFor(status);
  if (code == kExitUnavailable) {
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      message = absl::StrCat("no answer from ", address, " within ", absl::FormatDuration(timeout_),
                             " (", message, ")");
    } else {
      message = absl::StrCat("cannot reach ", address, ": ", message);
    }
  }
  return Fail(code, what, message);
}

}  // namespace relay::ctl
