#include "services/feedback/grpc_peers.h"

#include "absl/strings/str_cat.h"
#include "libs/protoutil/time.h"

namespace switchboard::feedback {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

SessionInfo ToSessionInfo(const sessions::v1::Session& session) {
  SessionInfo info;
  info.session_id = session.session_id();
  info.customer_id = session.customer_id();
  info.channel = session.channel();
  info.category = session.category();
  info.resolved = session.has_resolved_at() &&
                  (session.state() == sessions::v1::SESSION_STATE_RESOLVED ||
                   session.state() == sessions::v1::SESSION_STATE_CLOSED);
  info.open_resolved = session.state() == sessions::v1::SESSION_STATE_RESOLVED;
  if (session.has_resolved_at()) info.resolved_at = protoutil::FromTimestamp(session.resolved_at());
  info.agent_id = session.assigned_agent_id();
  if (info.agent_id.empty()) {
    for (int i = session.participants_size() - 1; i >= 0; --i) {
      const sessions::v1::Participant& p = session.participants(i);
      if (p.role() == common::v1::SENDER_ROLE_AGENT && !p.has_left_at()) {
        info.agent_id = p.id();
        break;
      }
    }
  }
  return info;
}

GrpcSessions::GrpcSessions(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
                           absl::Duration timeout)
    : stub_(sessions::v1::SessionsService::NewStub(channel)), token_(token), timeout_(timeout) {}

std::unique_ptr<grpc::ClientContext> GrpcSessions::Context(absl::Time deadline) {
  return client::PeerContext(token_->Get(), timeout_, deadline);
}

absl::StatusOr<SessionInfo> GrpcSessions::GetSession(const std::string& session_id,
                                                     absl::Time deadline) {
  sessions::v1::GetSessionRequest request;
  request.set_session_id(session_id);
  sessions::v1::GetSessionResponse response;
  auto context = Context(deadline);
  absl::Status status = FromGrpc(stub_->GetSession(context.get(), request, &response));
  if (absl::IsNotFound(status)) return status;
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("sessions.GetSession: ", status.ToString()));
  }
  return ToSessionInfo(response.session());
}

absl::Status GrpcSessions::CloseRated(const std::string& session_id, absl::Time deadline) {
  sessions::v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  request.set_reason(sessions::v1::CLOSE_REASON_RATED);
  sessions::v1::CloseSessionResponse response;
  auto context = Context(deadline);
  return FromGrpc(stub_->CloseSession(context.get(), request, &response));
}

GrpcRouting::GrpcRouting(std::shared_ptr<grpc::Channel> channel, client::ServiceToken* token,
                         absl::Duration timeout)
    : stub_(routing::v1::RoutingService::NewStub(channel)), token_(token), timeout_(timeout) {}

absl::Status GrpcRouting::EnqueueComplaint(const v1::Complaint& complaint) {
  routing::v1::EnqueueComplaintRequest request;
  request.set_complaint_id(complaint.complaint_id());
  request.set_customer_id(complaint.customer_id());
  request.set_category(complaint.category());
  request.set_session_id(complaint.session_id());
  request.set_priority(routing::v1::PRIORITY_HIGH);
  routing::v1::EnqueueComplaintResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->EnqueueComplaint(context.get(), request, &response));
}

absl::Status GrpcRouting::CancelComplaint(const std::string& complaint_id) {
  routing::v1::CancelComplaintRequest request;
  request.set_complaint_id(complaint_id);
  request.set_reason(routing::v1::CANCEL_REASON_COMPLAINT_HANDLED);
  routing::v1::CancelComplaintResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->CancelComplaint(context.get(), request, &response));
}

}  // namespace switchboard::feedback
