#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>

namespace switchboard::server {

// gRPC 1.51's callback API answers a request it cannot parse with
// UNIMPLEMENTED and no message (server_callback_handlers.h), which tells a
// client nothing and breaks "never a server code for a client's mistake".
// The usual cause is a proto3 string field holding invalid UTF-8, which C++
// clients send with only a logged warning.
//
// This interceptor turns that status, for methods that do exist, into
// INVALID_ARGUMENT naming the request type. Unknown methods keep
// UNIMPLEMENTED. Install it before the metrics interceptor so that metrics
// count the corrected code.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeParseFailureInterceptorFactory();

}  // namespace switchboard::server
