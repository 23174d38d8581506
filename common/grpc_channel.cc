#include "common/grpc_channel.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/text.h"

namespace relay {
namespace {

int Ms(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

grpc::ChannelArguments MakeChannelArguments(const Keepalive& keepalive) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // Reconnect attempts start 100 ms apart and back off to 1 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Despite its name, gRPC core uses this as the minimum time a connection
  // attempt (TCP connect + HTTP/2 handshake) may take before it is
  // abandoned. It was 100 ms: on a loaded machine a handshake took longer,
  // the attempt was cut ("tcp handshaker shutdown") and fail-fast RPCs got
  // UNAVAILABLE from a healthy peer. A refused connection still fails at
  // once, so this does not slow finding a restarted peer.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, Ms(kMinConnectTimeout));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Ms(keepalive.time));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Ms(keepalive.timeout));
  // A subscriber waiting for events has a call open but sends no data for
  // long stretches; by default gRPC stops pinging after two pings without
  // data, which would leave exactly that stream unwatched.
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const Keepalive& keepalive,
                                           const TlsFiles& tls) {
  return grpc::CreateCustomChannel(target, MakeChannelCredentials(tls),
                                   MakeChannelArguments(keepalive));
}

absl::StatusOr<std::shared_ptr<ChannelSet>> ChannelSet::Parse(const std::string& targets,
                                                              const Keepalive& keepalive,
                                                              const TlsFiles& tls) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::string> names;
  for (absl::string_view entry : absl::StrSplit(targets, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected host:port[,host:port...] with no empty entry, got ", Excerpt(targets)));
    }
    // A host name is at most 253 bytes; the address also shows in every
    // "cannot reach" error.
    if (entry.size() > kMaxTargetBytes ||
        std::any_of(entry.begin(), entry.end(), [](char c) { return c == ' ' || IsControl(c); })) {
      return absl::InvalidArgumentError(absl::StrCat("address ", Excerpt(entry),
                                                     " is not host:port (at most ", kMaxTargetBytes,
                                                     " bytes, no spaces or control characters)"));
    }
    names.emplace_back(entry);
    channels.push_back(MakeChannel(std::string(entry), keepalive, tls));
  }
  return std::shared_ptr<ChannelSet>(
      new ChannelSet(std::move(channels), absl::StrJoin(names, ",")));
}

ChannelSet::ChannelSet(std::shared_ptr<grpc::Channel> channel)
    : channels_{std::move(channel)}, targets_("(one channel)") {}

ChannelSet::ChannelSet(std::vector<std::shared_ptr<grpc::Channel>> channels, std::string targets)
    : channels_(std::move(channels)), targets_(std::move(targets)) {}

std::shared_ptr<grpc::Channel> ChannelSet::Pick() {
  const size_t n = channels_.size();
  if (n == 1) return channels_[0];
  std::vector<grpc_connectivity_state> states(n);
  for (size_t i = 0; i < n; ++i) states[i] = channels_[i]->GetState(/*try_to_connect=*/true);
  absl::MutexLock lock(&mu_);
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (current_ + k) % n;
    if (states[i] == GRPC_CHANNEL_READY) {
      current_ = i;
      return channels_[i];
    }
  }
  if (states[current_] != GRPC_CHANNEL_TRANSIENT_FAILURE) return channels_[current_];
  for (size_t k = 1; k < n; ++k) {
    const size_t i = (current_ + k) % n;
    if (states[i] != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      current_ = i;
      return channels_[i];
    }
  }
  current_ = (current_ + 1) % n;
  return channels_[current_];
}

std::shared_ptr<grpc::Channel> ChannelSet::WaitForReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::shared_ptr<grpc::Channel> channel = Pick();
    if (channel->GetState(false) == GRPC_CHANNEL_READY) return channel;
    const absl::Time now = absl::Now();
    if (now >= deadline) return channel;
    // Wakes on the picked channel's next state change, or soon anyway to
    // look at the others.
    channel->WaitForStateChange(
        channel->GetState(false),
        absl::ToChronoTime(std::min(deadline, now + absl::Milliseconds(100))));
  }
}

void ApplyServerConnectionArgs(grpc::ServerBuilder& builder, const Keepalive& keepalive) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Ms(keepalive.time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Ms(keepalive.timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Enforcement: the clients ping every Keepalive::time (also without
  // calls); anything at least min_client_ping_interval apart is welcome.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Ms(keepalive.min_client_ping_interval));
}

}  // namespace relay
