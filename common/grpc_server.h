#ifndef RELAY_COMMON_GRPC_SERVER_H_
#define RELAY_COMMON_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <grpcpp/channel.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

namespace relay {

// A started gRPC server with `services`, grpc.health.v1 (overall status
// SERVING) and server reflection, on `listen` (host:port, port 0 picks one).
// The services must outlive the server.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen,
                                              const std::vector<grpc::Service*>& services);

// The one channel per peer a binary uses: insecure, large messages allowed,
// quick reconnects (a restarted peer is found again within about a second).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

}  // namespace relay

#endif  // RELAY_COMMON_GRPC_SERVER_H_
