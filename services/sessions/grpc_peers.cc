#include "services/sessions/grpc_peers.h"

namespace switchboard::sessions {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

GrpcBotClient::GrpcBotClient(const std::string& address,
                             const client::ChannelSecurity& security,
                             client::ServiceToken* token, absl::Duration timeout)
    : stub_(bot::v1::BotService::NewStub(client::PeerChannel(address, security))),
      token_(token),
      timeout_(timeout) {}

absl::StatusOr<bot::v1::AnswerResponse> GrpcBotClient::Answer(
    const bot::v1::AnswerRequest& request) {
  bot::v1::AnswerResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  if (absl::Status s = FromGrpc(stub_->Answer(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

absl::Status GrpcBotClient::ResetDialogue(const std::string& session_id) {
  bot::v1::ResetDialogueRequest request;
  request.set_session_id(session_id);
  bot::v1::ResetDialogueResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->ResetDialogue(context.get(), request, &response));
}

GrpcRoutingClient::GrpcRoutingClient(const std::string& address,
                                     const client::ChannelSecurity& security,
                                     client::ServiceToken* token, absl::Duration timeout)
    : stub_(routing::v1::RoutingService::NewStub(client::PeerChannel(address, security))),
      token_(token),
      timeout_(timeout) {}

absl::StatusOr<routing::v1::EnqueueSessionResponse> GrpcRoutingClient::Enqueue(
    const routing::v1::EnqueueSessionRequest& request) {
  routing::v1::EnqueueSessionResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  if (absl::Status s = FromGrpc(stub_->EnqueueSession(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

absl::StatusOr<routing::v1::GetQueueHoursResponse> GrpcRoutingClient::QueueHours(
    const routing::v1::GetQueueHoursRequest& request) {
  routing::v1::GetQueueHoursResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  if (absl::Status s = FromGrpc(stub_->GetQueueHours(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

absl::Status GrpcRoutingClient::Cancel(const std::string& session_id,
                                       routing::v1::CancelReason reason) {
  routing::v1::CancelSessionRequest request;
  request.set_session_id(session_id);
  request.set_reason(reason);
  routing::v1::CancelSessionResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->CancelSession(context.get(), request, &response));
}

}  // namespace switchboard::sessions
