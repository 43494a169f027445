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
// deadline of `timeout`. Thread-safe.
class GrpcPresence : public PresencePort {
 public:
  GrpcPresence(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
               absl::Duration timeout);
  absl::Status Reserve(const std::string& agent_id, const std::string& session_id,
                       common::v1::Channel channel, absl::Duration hold) override;
  absl::Status Confirm(const std::string& agent_id, const std::string& session_id) override;
  absl::Status Release(const std::string& agent_id, const std::string& session_id) override;

 private:
  std::unique_ptr<presence::v1::PresenceService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// SessionsPort over gRPC, like GrpcPresence.
class GrpcSessions : public SessionsPort {
 public:
  GrpcSessions(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
               absl::Duration timeout);
  absl::Status RecordOffer(const std::string& session_id, const std::string& agent_id,
                           const std::string& offer_id, absl::Time expires_at) override;
  absl::Status AssignAgent(const std::string& session_id, const std::string& agent_id,
                           const std::string& agent_display_name,
                           const std::string& offer_id) override;
  absl::Status RequeueSession(const std::string& session_id,
                              const std::string& agent_id) override;

 private:
  std::unique_ptr<sessions::v1::SessionsService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// Keeps the router's view of presence current: holds one WatchPresence
// stream on its own thread, hands the snapshot to Router::ResetPresence and
// each change to Router::OnAgentChange. When the stream fails (presence down
// or restarting) it reconnects after an exponential backoff (from
// `min_backoff`, doubling, up to `max_backoff`, reset once a snapshot
// completes). No polling: presence pushes every change.
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

 private:
  void Run();

  std::unique_ptr<presence::v1::PresenceService::Stub> stub_;
  client::ServiceToken* const token_;
  Router* const router_;
  const absl::Duration min_backoff_;
  const absl::Duration max_backoff_;
  std::atomic<int> connections_{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace switchboard::routing
