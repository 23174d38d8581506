#ifndef RELAY_COMMON_GRPC_SERVER_H_
#define RELAY_COMMON_GRPC_SERVER_H_

#include <grpcpp/channel.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_channel.h"

namespace relay {

// A started gRPC server with `services`, grpc.health.v1 (overall status
// SERVING) and server reflection, on `listen` (host:port, port 0 picks one),
// with the connection policy of common/grpc_channel.h (`keepalive`).
// The services must outlive the server.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen,
                                              const std::vector<grpc::Service*>& services,
                                              const Keepalive& keepalive = {});

}  // namespace relay

#endif  // RELAY_COMMON_GRPC_SERVER_H_
