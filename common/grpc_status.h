#ifndef RELAY_COMMON_GRPC_STATUS_H_
#define RELAY_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include <grpcpp/support/status.h>

namespace relay {

// The one place absl::Status meets grpc::Status (the codes share values).
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace relay

#endif  // RELAY_COMMON_GRPC_STATUS_H_
