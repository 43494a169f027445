#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/client/peer.h"
#include "services/routing/peers.h"
#include "services/routing/router.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::routing {

// PresencePort over gRPC: each call carries routing's service token and a
// deadline of `timeout` from now, or the caller's `deadline` if sooner (a
// call whose deadline already passed is not made: DEADLINE_EXCEEDED).
// Presence refusing a call because it is overloaded (RESOURCE_EXHAUSTED
// with a `retry-after` trailer) comes back as UNAVAILABLE, so that it is not
// mistaken for an agent at capacity. Thread-safe.
class GrpcPresence : public PresencePort {
 public:
  GrpcPresence(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
               absl::Duration timeout);
  absl::Status Reserve(const std::string& agent_id, const std::string& session_id,
                       common::v1::Channel channel, absl::Duration hold, int64_t holder_id,
                       absl::Time deadline) override;
  absl::Status Confirm(const std::string& agent_id, const std::string& session_id,
                       absl::Time deadline) override;
  absl::Status Release(const std::string& agent_id, const std::string& session_id,
                       int64_t holder_id, absl::Time deadline) override;
  absl::StatusOr<ReconcileReply> Reconcile(int64_t fence, const std::string& from,
                                           const std::string& to,
                                           const std::vector<HeldCapacity>& live,
                                           absl::Time deadline) override;

 private:
  std::unique_ptr<presence::v1::PresenceService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// SessionsPort over gRPC, with the same deadlines and the same reading of
// an overloaded peer as GrpcPresence.
class GrpcSessions : public SessionsPort {
 public:
  GrpcSessions(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
               absl::Duration timeout);
  absl::Status RecordOffer(const std::string& session_id, const std::string& agent_id,
                           const std::string& offer_id, absl::Time expires_at,
                           absl::Time deadline) override;
  absl::Status AssignAgent(const std::string& session_id, const std::string& agent_id,
                           const std::string& agent_display_name, const std::string& offer_id,
                           absl::Time deadline) override;
  absl::Status RequeueSession(const std::string& session_id, const std::string& agent_id,
                              absl::Time deadline) override;
  absl::StatusOr<SessionView> GetSession(const std::string& session_id,
                                         absl::Time deadline) override;

 private:
  std::unique_ptr<sessions::v1::SessionsService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// Keeps the router's view of presence current: holds one WatchPresence
// stream on its own thread, hands the snapshot to Router::ResetPresence and
// each change to Router::OnAgentChange. When the stream fails (presence down
// or restarting), or the router could not commit what a change implied, it
// reconnects after an exponential backoff (from `min_backoff`, doubling, up
// to `max_backoff`, reset once a snapshot completes) and starts again from
// a fresh snapshot. No polling: presence pushes every change.
class PresenceWatcher {
 public:
  PresenceWatcher(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
                  Router* router, absl::Duration min_backoff = absl::Milliseconds(100),
                  absl::Duration max_backoff = absl::Seconds(10));
  ~PresenceWatcher();  // Stop()
  void Start();
  // Cancels the stream and joins the thread. Idempotent.
  void Stop();
  // Streams opened so far (for tests and logs).
  int connections() const { return connections_; }
  // Snapshots handed to the router so far.
  int snapshots() const { return snapshots_; }

 private:
  void Run();

  std::unique_ptr<presence::v1::PresenceService::Stub> stub_;
  client::ServiceToken* const token_;
  Router* const router_;
  const absl::Duration min_backoff_;
  const absl::Duration max_backoff_;
  std::atomic<int> connections_{0};
  std::atomic<int> snapshots_{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace switchboard::routing
