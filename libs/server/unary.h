#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/limits/retry_after.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/status.h"

namespace switchboard::server {

// Ends an asynchronous unary call (RunUnaryAsync) with its outcome, the
// response already filled. Call it exactly once, from any thread; it never
// blocks.
using FinishUnary = std::function<void(absl::Status)>;

// Finishes a unary callback-API call by running `work` on `pool` (see the
// threading model in blocking_pool.h): `work(finish)` decides, and the call
// ends when `finish` is called, on whichever thread learns the outcome (a
// group commit's callback, say), so no pool thread waits for it. The client
// gets ToGrpcStatus of the status, with a `retry-after` trailer when the
// status carries one. A call whose client already gave up (deadline or
// cancel) is not run. When the pool's backlog is full the call ends at once
// with RESOURCE_EXHAUSTED and retry-after 1; when the pool is stopping, with
// UNAVAILABLE.
//
//   return RunUnaryAsync(context, pool_, [=](FinishUnary finish) {
//     impl_->Send(..., [response, finish](absl::StatusOr<Sent> sent) {
//       if (sent.ok()) *response = ...;
//       finish(sent.status());
//     });
//   });
template <typename Work>
grpc::ServerUnaryReactor* RunUnaryAsync(grpc::CallbackServerContext* context,
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
        work(FinishUnary([context, reactor](const absl::Status& status) {
          reactor->Finish(ToGrpcStatus(status, *context));
        }));
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

// RunUnaryAsync for work that ends on the pool thread: `work` returns an
// absl::Status and fills the response it captured.
//
//   grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
//                                 const GetRequest* request,
//                                 GetResponse* response) override {
//     return RunUnary(context, pool_, [=] { return impl_->Get(...); });
//   }
template <typename Work>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                   BlockingPool& pool, Work work) {
  return RunUnaryAsync(context, pool,
                       [work = std::move(work)](const FinishUnary& finish) mutable {
                         finish(work());
                       });
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
