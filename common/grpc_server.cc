#include "common/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"

namespace relay {

absl::Status AddListeningPort(grpc::ServerBuilder& builder, const std::string& listen,
                              const TlsFiles& tls, int* port) {
  if (tls.enabled() && tls.cert.empty()) {
    return absl::InvalidArgumentError(
        "a TLS server needs its certificate and key (--tls_cert and --tls_key), not only a CA");
  }
  WarnIfPlaintext("listening on", listen, tls);
  builder.AddListeningPort(listen, MakeServerCredentials(tls), port);
  return absl::OkStatus();
}

absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen,
                                              const std::vector<grpc::Service*>& services,
                                              const Keepalive& keepalive, const TlsFiles& tls) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  RunningServer running;
  if (absl::Status s = AddListeningPort(builder, listen, tls, &running.port); !s.ok()) return s;
  for (grpc::Service* s : services) builder.RegisterService(s);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // gRPC sets SO_REUSEPORT by default: a second server on a port in use would
  // start and silently share the traffic. Fail to start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  ApplyServerConnectionArgs(builder, keepalive);
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  running.server->GetHealthCheckService()->SetServingStatus(true);
  return running;
}

}  // namespace relay
