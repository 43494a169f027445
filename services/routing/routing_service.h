#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/policy.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/limits/concurrency_limiter.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/open_streams.h"
#include "services/routing/router.h"
#include "services/routing/schedule_book.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"

namespace switchboard::routing {

// The gRPC adapter of routing: authenticates and authorizes each call,
// converts messages, runs the logic on the blocking pool (writes and calls to
// presence and sessions) and maps statuses. Who may call what is each RPC's
// (switchboard.auth.v1.access) option in routing_service.proto.
class RoutingService final : public v1::RoutingService::CallbackService {
 public:
  struct Options {
    // Messages a WatchOffers stream may lag behind before it is ended with
    // RESOURCE_EXHAUSTED (the client reconnects and gets the open offers).
    // An agent has a handful of open offers at a time, so a stream this far
    // behind is dead or stuck; the bound keeps each stream under ~1 MiB.
    size_t max_watch_backlog = 1'000;
    // WatchOffers streams one agent or supervisor may hold at once (one per
    // device; more get RESOURCE_EXHAUSTED with a retry-after).
    int max_watch_streams_per_agent = 8;
  };

  // None owned; all must outlive the service. `schedules` is the book the
  // router decides opening hours with.
  RoutingService(Router* router, ScheduleBook* schedules, const auth::TokenVerifier* tokens,
                 Clock* clock, server::BlockingPool* pool, Options options);
  RoutingService(Router* router, ScheduleBook* schedules, const auth::TokenVerifier* tokens,
                 Clock* clock, server::BlockingPool* pool)
      : RoutingService(router, schedules, tokens, clock, pool, Options()) {}

  grpc::ServerUnaryReactor* EnqueueSession(grpc::CallbackServerContext* context,
                                           const v1::EnqueueSessionRequest* request,
                                           v1::EnqueueSessionResponse* response) override;
  grpc::ServerUnaryReactor* CancelSession(grpc::CallbackServerContext* context,
                                          const v1::CancelSessionRequest* request,
                                          v1::CancelSessionResponse* response) override;
  grpc::ServerUnaryReactor* EnqueueComplaint(grpc::CallbackServerContext* context,
                                             const v1::EnqueueComplaintRequest* request,
                                             v1::EnqueueComplaintResponse* response) override;
  grpc::ServerUnaryReactor* CancelComplaint(grpc::CallbackServerContext* context,
                                            const v1::CancelComplaintRequest* request,
                                            v1::CancelComplaintResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchOffersResponse>* WatchOffers(
      grpc::CallbackServerContext* context, const v1::WatchOffersRequest* request) override;
  grpc::ServerUnaryReactor* AcceptOffer(grpc::CallbackServerContext* context,
                                        const v1::AcceptOfferRequest* request,
                                        v1::AcceptOfferResponse* response) override;
  grpc::ServerUnaryReactor* DeclineOffer(grpc::CallbackServerContext* context,
                                         const v1::DeclineOfferRequest* request,
                                         v1::DeclineOfferResponse* response) override;
  grpc::ServerUnaryReactor* GetQueueEntry(grpc::CallbackServerContext* context,
                                          const v1::GetQueueEntryRequest* request,
                                          v1::GetQueueEntryResponse* response) override;
  grpc::ServerUnaryReactor* ListQueueEntries(grpc::CallbackServerContext* context,
                                             const v1::ListQueueEntriesRequest* request,
                                             v1::ListQueueEntriesResponse* response) override;
  grpc::ServerUnaryReactor* GetQueueStats(grpc::CallbackServerContext* context,
                                          const v1::GetQueueStatsRequest* request,
                                          v1::GetQueueStatsResponse* response) override;
  grpc::ServerUnaryReactor* GetAgentSettings(grpc::CallbackServerContext* context,
                                             const v1::GetAgentSettingsRequest* request,
                                             v1::GetAgentSettingsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateAgentSettings(
      grpc::CallbackServerContext* context, const v1::UpdateAgentSettingsRequest* request,
      v1::UpdateAgentSettingsResponse* response) override;
  grpc::ServerUnaryReactor* SetSchedule(grpc::CallbackServerContext* context,
                                        const v1::SetScheduleRequest* request,
                                        v1::SetScheduleResponse* response) override;
  grpc::ServerUnaryReactor* GetSchedule(grpc::CallbackServerContext* context,
                                        const v1::GetScheduleRequest* request,
                                        v1::GetScheduleResponse* response) override;
  grpc::ServerUnaryReactor* ListSchedules(grpc::CallbackServerContext* context,
                                          const v1::ListSchedulesRequest* request,
                                          v1::ListSchedulesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSchedule(grpc::CallbackServerContext* context,
                                           const v1::DeleteScheduleRequest* request,
                                           v1::DeleteScheduleResponse* response) override;
  grpc::ServerUnaryReactor* GetQueueHours(grpc::CallbackServerContext* context,
                                          const v1::GetQueueHoursRequest* request,
                                          v1::GetQueueHoursResponse* response) override;

  // Ends every open WatchOffers stream with UNAVAILABLE (server draining).
  void EndStreams();

 private:
  class WatchReactor;

  absl::StatusOr<auth::Principal> Authenticate(grpc::CallbackServerContext* context,
                                               absl::string_view method);

  Router* const router_;
  ScheduleBook* const schedules_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
  const Options options_;

  server::OpenStreams<WatchReactor> watchers_;
  limits::ConcurrencyLimiter watch_streams_;
};

}  // namespace switchboard::routing
