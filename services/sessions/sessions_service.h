#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/policy.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/limits/concurrency_limiter.h"
#include "libs/limits/rate_limiter.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/open_streams.h"
#include "libs/server/stream_queues.h"
#include "services/sessions/attachments.h"
#include "services/sessions/sessions.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::sessions {

// The gRPC adapter of sessions: authenticates each call, checks the caller
// against the RPC's (switchboard.auth.v1.access) option in
// sessions_service.proto, converts messages, runs the logic on
// the blocking pool and maps statuses. The writes of every conversation
// (CreateSession, SendMessage, RecordOffer, AssignAgent, ResolveSession,
// CloseSession) end from their group commit's callback (the logic's ...Async
// forms), so a worker is free as soon as the write is decided, not parked
// for the disk; the rarer writes wait on their worker. Per-session access (a
// customer's own sessions, an agent's assigned or offered ones) is the
// logic's.
//
// GetSession and UpdateTyping are answered on gRPC's callback thread when
// the session is in memory (open work and recently read CLOSED sessions)
// and its latest change is durable; else the pool reads the store, or
// GetSession ends from the commit of the change it waits for.
//
// Fairness under load, per principal (the token's subject and role):
// unary calls queued or running at once, open streams, and the rate of
// expensive reads (ListSessions, ListMessages) are capped; over a cap the
// call ends at once with RESOURCE_EXHAUSTED and a `retry-after` trailer, so
// one client flooding the server cannot take the pool from the others.
// Customers and agents share one set of caps, supervisors and services
// (a desk's worth of traffic behind one identity) have higher ones.
//
// StreamSessionEvents is a StreamWriter per stream (no thread; see
// StreamQueues): it subscribes first, then replays committed events from
// the store up to the subscription point in pages (on the pool), then sends
// CaughtUp and the live events, dropping any at or below the last one sent,
// so a resumed stream misses nothing and repeats nothing.
//
// Every RPC runs on gRPC's callback API but StreamSessionEvents, which the
// server's StreamQueues serve (ServeStreams): a stream held open for hours
// must not cost every other call a share of its completion queue. A new
// RPC must be added to SessionsServiceBase's chain.
using SessionsServiceBase =
    v1::SessionsService::WithCallbackMethod_CreateSession<
    v1::SessionsService::WithCallbackMethod_GetSession<
    v1::SessionsService::WithCallbackMethod_ListSessions<
    v1::SessionsService::WithCallbackMethod_SendMessage<
    v1::SessionsService::WithCallbackMethod_ListMessages<
    v1::SessionsService::WithCallbackMethod_UpdateTyping<
    v1::SessionsService::WithCallbackMethod_AttachVerification<
    v1::SessionsService::WithCallbackMethod_EscalateSession<
    v1::SessionsService::WithCallbackMethod_RecordOffer<
    v1::SessionsService::WithCallbackMethod_AssignAgent<
    v1::SessionsService::WithCallbackMethod_TransferSession<
    v1::SessionsService::WithCallbackMethod_RequeueSession<
    v1::SessionsService::WithCallbackMethod_ResolveSession<
    v1::SessionsService::WithCallbackMethod_ReopenSession<
    v1::SessionsService::WithCallbackMethod_CloseSession<
    v1::SessionsService::WithCallbackMethod_RequestCallback<
    v1::SessionsService::WithCallbackMethod_ContinueByEmail<
    v1::SessionsService::WithCallbackMethod_UploadAttachment<
    v1::SessionsService::WithCallbackMethod_DownloadAttachment<
    v1::SessionsService::WithAsyncMethod_StreamSessionEvents<
    v1::SessionsService::Service>>>>>>>>>>>>>>>>>>>>;

class SessionsService final : public SessionsServiceBase, public server::QueuedStreamsService {
 public:
  struct Options {
    // Events a stream may hold unsent (a slow reader, or live events
    // arriving during its replay) before it is ended with
    // RESOURCE_EXHAUSTED; the client resumes from its last sequence. One
    // session produces at most about 20 events a second (10 messages per
    // second per sender, replies, state changes), so 256 covers more than
    // ten seconds of a stalled reader at that peak, while a stream's memory
    // stays bounded (256 events of at most ~16 KiB).
    size_t max_stream_backlog = 256;
    // Events read from the store per replay page.
    int replay_page = 256;
    // Open StreamSessionEvents per customer or agent, and per supervisor
    // or service. Staff default to what one server is built to hold (a
    // gateway may carry its users' streams under one service identity).
    int max_streams_per_user = 32;
    int max_streams_per_staff = 100'000;
    // Unary calls one principal may have queued or running at once.
    int max_calls_per_user = 16;
    int max_calls_per_staff = 512;
    // ListSessions and ListMessages per principal: sustained rate per
    // second and burst.
    double reads_per_second = 5;
    double reads_burst = 20;
    double staff_reads_per_second = 100;
    double staff_reads_burst = 200;
    // From an upload's first request to its last chunk.
    absl::Duration upload_time_limit = absl::Minutes(5);
  };

  // None owned; all must outlive the service.
  SessionsService(Sessions* sessions, Attachments* attachments,
                  const auth::TokenVerifier* tokens, Clock* clock, server::BlockingPool* pool,
                  Options options);
  SessionsService(Sessions* sessions, Attachments* attachments,
                  const auth::TokenVerifier* tokens, Clock* clock, server::BlockingPool* pool)
      : SessionsService(sessions, attachments, tokens, clock, pool, Options()) {}

  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* context,
                                          const v1::CreateSessionRequest* request,
                                          v1::CreateSessionResponse* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::GetSessionResponse* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* context,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* SendMessage(grpc::CallbackServerContext* context,
                                        const v1::SendMessageRequest* request,
                                        v1::SendMessageResponse* response) override;
  grpc::ServerUnaryReactor* ListMessages(grpc::CallbackServerContext* context,
                                         const v1::ListMessagesRequest* request,
                                         v1::ListMessagesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateTyping(grpc::CallbackServerContext* context,
                                         const v1::UpdateTypingRequest* request,
                                         v1::UpdateTypingResponse* response) override;
  grpc::ServerUnaryReactor* AttachVerification(
      grpc::CallbackServerContext* context, const v1::AttachVerificationRequest* request,
      v1::AttachVerificationResponse* response) override;
  grpc::ServerUnaryReactor* EscalateSession(grpc::CallbackServerContext* context,
                                            const v1::EscalateSessionRequest* request,
                                            v1::EscalateSessionResponse* response) override;
  grpc::ServerUnaryReactor* RecordOffer(grpc::CallbackServerContext* context,
                                        const v1::RecordOfferRequest* request,
                                        v1::RecordOfferResponse* response) override;
  grpc::ServerUnaryReactor* AssignAgent(grpc::CallbackServerContext* context,
                                        const v1::AssignAgentRequest* request,
                                        v1::AssignAgentResponse* response) override;
  grpc::ServerUnaryReactor* TransferSession(grpc::CallbackServerContext* context,
                                            const v1::TransferSessionRequest* request,
                                            v1::TransferSessionResponse* response) override;
  grpc::ServerUnaryReactor* RequeueSession(grpc::CallbackServerContext* context,
                                           const v1::RequeueSessionRequest* request,
                                           v1::RequeueSessionResponse* response) override;
  grpc::ServerUnaryReactor* ResolveSession(grpc::CallbackServerContext* context,
                                           const v1::ResolveSessionRequest* request,
                                           v1::ResolveSessionResponse* response) override;
  grpc::ServerUnaryReactor* ReopenSession(grpc::CallbackServerContext* context,
                                          const v1::ReopenSessionRequest* request,
                                          v1::ReopenSessionResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const v1::CloseSessionRequest* request,
                                         v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* RequestCallback(grpc::CallbackServerContext* context,
                                            const v1::RequestCallbackRequest* request,
                                            v1::RequestCallbackResponse* response) override;
  grpc::ServerReadReactor<v1::UploadAttachmentRequest>* UploadAttachment(
      grpc::CallbackServerContext* context, v1::UploadAttachmentResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* DownloadAttachment(
      grpc::CallbackServerContext* context,
      const v1::DownloadAttachmentRequest* request) override;
  grpc::ServerUnaryReactor* ContinueByEmail(grpc::CallbackServerContext* context,
                                            const v1::ContinueByEmailRequest* request,
                                            v1::ContinueByEmailResponse* response) override;

  // Serves StreamSessionEvents on `queues`.
  void ServeStreams(server::StreamQueues& queues) override;

  // Ends every open stream with UNAVAILABLE (server draining).
  void EndStreams();

 private:
  class StreamReactor;

  absl::StatusOr<Caller> Authenticate(grpc::ServerContextBase* context,
                                      absl::string_view method);
  // A StreamSessionEvents call that arrived: its writer.
  server::StreamWriter<v1::StreamSessionEventsResponse>* OpenEventStream(
      server::StreamCall<v1::StreamSessionEventsResponse>* call, grpc::ServerContext* context,
      const v1::StreamSessionEventsRequest& request);
  // RunUnary under the caller's cap of calls in flight.
  template <typename Work>
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context, const Caller& caller,
                                Work work);
  // RunUnaryAsync under the same cap, held until the call ends.
  template <typename Work>
  grpc::ServerUnaryReactor* RunAsync(grpc::CallbackServerContext* context,
                                     const Caller& caller, Work work);
  // A unit of the caller's calls in flight, held by a streaming call until
  // it ends; RESOURCE_EXHAUSTED over the cap.
  absl::StatusOr<std::shared_ptr<void>> AcquireCall(const Caller& caller);
  // One token of the caller's expensive-read budget: OK or RESOURCE_EXHAUSTED.
  absl::Status SpendRead(const Caller& caller);

  Sessions* const sessions_;
  Attachments* const attachments_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
  const Options options_;

  server::OpenStreams<StreamReactor> streams_;
  limits::ConcurrencyLimiter user_streams_;
  limits::ConcurrencyLimiter staff_streams_;
  limits::ConcurrencyLimiter user_calls_;
  limits::ConcurrencyLimiter staff_calls_;
  limits::RateLimiter user_reads_;
  limits::RateLimiter staff_reads_;
};

}  // namespace switchboard::sessions
