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
#include "services/presence/presence.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard::presence {

// The gRPC adapter of presence: authenticates and authorizes each call,
// converts messages, runs the logic on the blocking pool and maps statuses.
// Who may call what is each RPC's (switchboard.auth.v1.access) option in
// presence_service.proto.
class PresenceService final : public v1::PresenceService::CallbackService {
 public:
  struct Options {
    // Changes a WatchPresence subscriber may lag behind (beyond its
    // snapshot) before its stream is ended with RESOURCE_EXHAUSTED. A change
    // is one agent (a few hundred bytes), so the default bounds a stream's
    // buffer to a few MiB while letting a watcher absorb a whole desk going
    // offline at once.
    size_t max_watch_backlog = 10'000;
    // WatchPresence streams one principal may hold at once (routing holds
    // one per replica; a supervisor one per dashboard).
    int max_watch_streams_per_principal = 16;
  };

  // None owned; all must outlive the service.
  PresenceService(Presence* presence, const auth::TokenVerifier* tokens,
                  Clock* clock, server::BlockingPool* pool, Options options);
  PresenceService(Presence* presence, const auth::TokenVerifier* tokens,
                  Clock* clock, server::BlockingPool* pool)
      : PresenceService(presence, tokens, clock, pool, Options()) {}

  grpc::ServerUnaryReactor* SetStatus(grpc::CallbackServerContext* context,
                                      const v1::SetStatusRequest* request,
                                      v1::SetStatusResponse* response) override;
  grpc::ServerUnaryReactor* SetAgentProfile(grpc::CallbackServerContext* context,
                                            const v1::SetAgentProfileRequest* request,
                                            v1::SetAgentProfileResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::GetAgentResponse* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchPresenceResponse>* WatchPresence(
      grpc::CallbackServerContext* context,
      const v1::WatchPresenceRequest* request) override;
  grpc::ServerUnaryReactor* ReserveCapacity(
      grpc::CallbackServerContext* context,
      const v1::ReserveCapacityRequest* request,
      v1::ReserveCapacityResponse* response) override;
  grpc::ServerUnaryReactor* ConfirmReservation(
      grpc::CallbackServerContext* context,
      const v1::ConfirmReservationRequest* request,
      v1::ConfirmReservationResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseCapacity(
      grpc::CallbackServerContext* context,
      const v1::ReleaseCapacityRequest* request,
      v1::ReleaseCapacityResponse* response) override;
  grpc::ServerUnaryReactor* ReconcileReservations(
      grpc::CallbackServerContext* context,
      const v1::ReconcileReservationsRequest* request,
      v1::ReconcileReservationsResponse* response) override;

  // Ends every open WatchPresence stream with UNAVAILABLE (server draining).
  void EndStreams();

 private:
  class WatchReactor;

  // The agent a call acts on, once the caller may make the call: the caller
  // for an agent (who may name only themselves), the named agent for
  // others. `role`, if given, receives the caller's role.
  absl::StatusOr<std::string> TargetAgent(grpc::CallbackServerContext* context,
                                          const std::string& requested,
                                          absl::string_view method,
                                          auth::Role* role = nullptr);
  absl::StatusOr<auth::Principal> Authenticate(grpc::CallbackServerContext* context,
                                               absl::string_view method);

  Presence* const presence_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
  const Options options_;

  server::OpenStreams<WatchReactor> watchers_;
  limits::ConcurrencyLimiter watch_streams_;
};

// Fills the API's Agent from the logic's record.
void ToProto(const AgentRecord& agent, v1::Agent* out);

}  // namespace switchboard::presence
