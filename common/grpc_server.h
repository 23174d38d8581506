#ifndef RELAY_COMMON_GRPC_SERVER_H_
#define RELAY_COMMON_GRPC_SERVER_H_

#include <grpcpp/channel.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_channel.h"
#include "common/tls.h"

namespace relay {

// A started gRPC server with `services`, grpc.health.v1 (overall status
// SERVING) and server reflection, on `listen` (host:port, port 0 picks one),
// with the connection policy of common/grpc_channel.h (`keepalive`) and
// the process's TLS or `tls` (common/tls.h). The services must outlive the
// server.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen,
                                              const std::vector<grpc::Service*>& services,
                                              const Keepalive& keepalive = {},
                                              const TlsFiles& tls = ProcessTls());

// The port of `builder` on `listen` with `tls`: INVALID_ARGUMENT for TLS
// without a certificate (a server must present one); warns when `listen`
// is not loopback and `tls` is plaintext.
absl::Status AddListeningPort(grpc::ServerBuilder& builder, const std::string& listen,
                              const TlsFiles& tls, int* port);

}  // namespace relay

#endif  // RELAY_COMMON_GRPC_SERVER_H_
