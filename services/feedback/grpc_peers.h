#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "libs/client/peer.h"
#include "services/feedback/peers.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::feedback {

// SessionsPort over gRPC: each call carries feedback's service token and a
// deadline of `timeout`, or the caller's deadline if sooner. Every failure
// but NOT_FOUND becomes UNAVAILABLE (feedback never accepts what sessions
// did not confirm). Thread-safe.
class GrpcSessions : public SessionsPort {
 public:
  GrpcSessions(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
               absl::Duration timeout);
  absl::StatusOr<SessionInfo> GetSession(const std::string& session_id,
                                         absl::Time deadline) override;
  absl::Status CloseRated(const std::string& session_id, absl::Time deadline) override;

 private:
  std::unique_ptr<grpc::ClientContext> Context(absl::Time deadline);

  std::unique_ptr<sessions::v1::SessionsService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// RoutingPort over gRPC, with feedback's service token and a deadline of
// `timeout`. Thread-safe.
class GrpcRouting : public RoutingPort {
 public:
  GrpcRouting(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
              absl::Duration timeout);
  absl::Status EnqueueComplaint(const v1::Complaint& complaint) override;
  absl::Status CancelComplaint(const std::string& complaint_id) override;

 private:
  std::unique_ptr<routing::v1::RoutingService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// The session as feedback sees it: the agent is the assigned one, or once
// resolved, the agent who resolved it (the last agent to join who has not
// left: resolving does not end an agent's participation, transfers and
// re-queues do).
SessionInfo ToSessionInfo(const sessions::v1::Session& session);

}  // namespace switchboard::feedback
