#include "common/grpc_channel.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

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

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const Keepalive& keepalive) {
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   MakeChannelArguments(keepalive));
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
