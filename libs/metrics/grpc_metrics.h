#pragma once

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/registry.h"

namespace switchboard::metrics {

// Per-RPC server metrics under the names, labels and help texts of
// go-grpc-prometheus (and java-grpc-prometheus), so that existing gRPC
// dashboards and alerts work unchanged:
//
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}  counter
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//                                                                   counter
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
//       histogram, buckets .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10
//   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
//
// Labels:
//   grpc_type     unary, client_stream, server_stream or bidi_stream.
//   grpc_service  the full service name,
//                 "switchboard.presence.v1.PresenceService".
//   grpc_method   the method name, "SetStatus".
//   grpc_code     the status code as grpc-go spells it (codes.Code.String(),
//                 what go-grpc-prometheus emits): OK, Canceled, Unknown,
//                 InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
//                 PermissionDenied, ResourceExhausted, FailedPrecondition,
//                 Aborted, OutOfRange, Unimplemented, Internal, Unavailable,
//                 DataLoss, Unauthenticated.
//
// What counts, for every call of any type on callback and sync servers (the
// async API is untested):
//   started   once, when the server accepts the call.
//   handled   once, when the call is over: with the status the server sent;
//             or, when the call ended without it (the client cancelled, the
//             deadline passed, the server called TryCancel), with
//             DeadlineExceeded if the deadline had passed, else Canceled. On
//             callback servers a status that was sent but overtaken by a
//             cancellation, or sent after it from OnCancel(), never reached
//             the client and counts as that cancellation; on sync servers
//             the handler's returned status counts, as in go-grpc-prometheus.
//             A client's own deadline can reach the server as the client's
//             cancellation just before the server's copy of the deadline
//             expires; it then counts as Canceled.
//   handling_seconds  once per handled call, from start to that end.
//   msg_received  each request message received (a unary call's request too).
//   msg_sent      each response message sent successfully (a unary call's
//                 response too, which only an OK call has).
// A scrape may see a call's client-visible end a moment before its handled
// count: the server counts it when gRPC reports the call closed.
//
// Calls to methods the server does not implement count too (they end with
// Unimplemented) under service "unknown", method "unknown", type
// bidi_stream: their paths are whatever clients send, so as label values
// they would let any client grow the series without bound. For the same
// reason a generic service's calls count there too.

// Returns a factory to hand to grpc::ServerBuilder's
// experimental().SetInterceptorCreators(). Metric families are registered in
// `registry` at once (merged with any of the same name already there, so two
// servers may share a registry). `registry` must outlive the server.
// Thread-safe; per call it does one lookup in a small cache and no label
// lookups in prometheus-cpp once a method and a code have been seen.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeGrpcServerMetricsInterceptorFactory(prometheus::Registry& registry);

// Creates, at zero, every series above for each method of the service named
// `service_full_name` ("switchboard.presence.v1.PresenceService"), handled
// for every code, as go-grpc-prometheus's InitializeMetrics does: dashboards
// and rate() then see a method before its first call. The service is looked
// up in the generated descriptor pool, so its generated .pb.cc must be linked
// in. Returns NOT_FOUND if it is not there. Thread-safe.
absl::Status InitializeGrpcServerMetrics(prometheus::Registry& registry,
                                         absl::string_view service_full_name);

// grpc-go's name of `code` ("NotFound"), as the grpc_code label writes it;
// "Unknown" for a code out of range.
absl::string_view GrpcCodeName(int code);

}  // namespace switchboard::metrics
