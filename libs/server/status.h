#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace switchboard::server {

// Converts a domain status to the gRPC status a client sees. Codes map one to
// one. Internal, Unknown and DataLoss errors come from storage or bugs, not
// from the caller: their detail goes to the log and the client gets a generic
// message with a reference to find the log line.
grpc::Status ToGrpcStatus(const absl::Status& status);

// ToGrpcStatus, and a retry-after the status carries (see
// libs/limits/retry_after.h) becomes the call's `retry-after` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase& context);

}  // namespace switchboard::server
