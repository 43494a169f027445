#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/limits/retry_after.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/status.h"

namespace switchboard::server {

// Finishes a unary callback-API call by running `work` on `pool` (see the
// threading model in blocking_pool.h). `work` returns an absl::Status and
// fills the response it captured; the client gets ToGrpcStatus of it, with a
// `retry-after` trailer when the status carries one. A call whose client
// already gave up (deadline or cancel) is not run. When the pool's backlog
// is full the call ends at once with RESOURCE_EXHAUSTED and retry-after 1;
// when the pool is stopping, with UNAVAILABLE.
//
//   grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
//                                 const GetRequest* request,
//                                 GetResponse* response) override {
//     return RunUnary(context, pool_, [=] { return impl_->Get(...); });
//   }
template <typename Work>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                   BlockingPool& pool, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bool stopping = false;
  const bool queued = pool.TryRun(
      [context, reactor, work = std::move(work)]() mutable {
        if (context->IsCancelled()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                       "call cancelled or past its deadline"));
          return;
        }
        reactor->Finish(ToGrpcStatus(work(), *context));
      },
      &stopping);
  if (!queued) {
    reactor->Finish(
        stopping ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down")
                 : ToGrpcStatus(limits::Exhausted("server busy: too many calls waiting; "
                                                  "retry shortly",
                                                  absl::Seconds(1)),
                                *context));
  }
  return reactor;
}

// RunUnary for logic that returns the whole response: `work` returns an
// absl::StatusOr<Response>, whose value is moved into `response` when OK.
//
//   return RunUnary(context, pool_, response, [=] { return impl_->Get(...); });
template <typename Response, typename Work>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                   BlockingPool& pool, Response* response, Work work) {
  return RunUnary(context, pool, [response, work = std::move(work)]() mutable -> absl::Status {
    absl::StatusOr<Response> result = work();
    if (!result.ok()) return result.status();
    *response = *std::move(result);
    return absl::OkStatus();
  });
}

// Finishes a unary call at once with `status` (for input rejected on the
// callback thread, before any blocking work).
inline grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                           const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status, *context));
  return reactor;
}

}  // namespace switchboard::server
