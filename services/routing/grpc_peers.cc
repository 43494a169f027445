#include "services/routing/grpc_peers.h"

#include "libs/log/log.h"
#include "libs/protoutil/time.h"

namespace switchboard::routing {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

GrpcPresence::GrpcPresence(std::shared_ptr<grpc::Channel> channel,
                           client::ServiceToken* token, absl::Duration timeout)
    : stub_(presence::v1::PresenceService::NewStub(channel)), token_(token), timeout_(timeout) {}

absl::Status GrpcPresence::Reserve(const std::string& agent_id, const std::string& session_id,
                                   common::v1::Channel channel, absl::Duration hold) {
  presence::v1::ReserveCapacityRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  request.set_channel(channel);
  protoutil::ToDuration(hold, request.mutable_hold());
  presence::v1::ReserveCapacityResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->ReserveCapacity(context.get(), request, &response));
}

absl::Status GrpcPresence::Confirm(const std::string& agent_id, const std::string& session_id) {
  presence::v1::ConfirmReservationRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  presence::v1::ConfirmReservationResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->ConfirmReservation(context.get(), request, &response));
}

absl::Status GrpcPresence::Release(const std::string& agent_id, const std::string& session_id) {
  presence::v1::ReleaseCapacityRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  presence::v1::ReleaseCapacityResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->ReleaseCapacity(context.get(), request, &response));
}

GrpcSessions::GrpcSessions(std::shared_ptr<grpc::Channel> channel,
                           client::ServiceToken* token, absl::Duration timeout)
    : stub_(sessions::v1::SessionsService::NewStub(channel)), token_(token), timeout_(timeout) {}

absl::Status GrpcSessions::RecordOffer(const std::string& session_id,
                                       const std::string& agent_id,
                                       const std::string& offer_id, absl::Time expires_at) {
  sessions::v1::RecordOfferRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  request.set_offer_id(offer_id);
  protoutil::ToTimestamp(expires_at, request.mutable_expires_at());
  sessions::v1::RecordOfferResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->RecordOffer(context.get(), request, &response));
}

absl::Status GrpcSessions::AssignAgent(const std::string& session_id,
                                       const std::string& agent_id,
                                       const std::string& agent_display_name,
                                       const std::string& offer_id) {
  sessions::v1::AssignAgentRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  request.set_agent_display_name(agent_display_name);
  request.set_offer_id(offer_id);
  sessions::v1::AssignAgentResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->AssignAgent(context.get(), request, &response));
}

absl::Status GrpcSessions::RequeueSession(const std::string& session_id,
                                          const std::string& agent_id) {
  sessions::v1::RequeueSessionRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  sessions::v1::RequeueSessionResponse response;
  auto context = client::PeerContext(token_->Get(), timeout_);
  return FromGrpc(stub_->RequeueSession(context.get(), request, &response));
}

PresenceWatcher::PresenceWatcher(std::shared_ptr<grpc::Channel> channel,
                                 client::ServiceToken* token, Router* router,
                                 absl::Duration min_backoff, absl::Duration max_backoff)
    : stub_(presence::v1::PresenceService::NewStub(channel)),
      token_(token),
      router_(router),
      min_backoff_(min_backoff),
      max_backoff_(max_backoff) {}

PresenceWatcher::~PresenceWatcher() { Stop(); }

void PresenceWatcher::Start() { thread_ = std::thread([this] { Run(); }); }

void PresenceWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void PresenceWatcher::Run() {
  absl::Duration backoff = min_backoff_;
  while (true) {
    // A long-lived stream: a day-long deadline (keepalive notices a dead peer sooner); it is then simply reopened.
    auto context = client::PeerContext(token_->Get(), absl::Hours(24));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = context.get();
    }
    ++connections_;
    auto reader = stub_->WatchPresence(context.get(), presence::v1::WatchPresenceRequest());
    std::vector<presence::v1::Agent> snapshot;
    bool live = false;
    presence::v1::WatchPresenceResponse message;
    while (reader->Read(&message)) {
      switch (message.kind_case()) {
        case presence::v1::WatchPresenceResponse::kSnapshotAgent:
          snapshot.push_back(message.snapshot_agent());
          break;
        case presence::v1::WatchPresenceResponse::kSnapshotComplete:
          router_->ResetPresence(snapshot);
          snapshot.clear();
          live = true;
          backoff = min_backoff_;
          log::Info("presence_watch_live",
                    {{"agents", message.snapshot_complete().agent_count()}});
          break;
        case presence::v1::WatchPresenceResponse::kChange:
          if (live) router_->OnAgentChange(message.change().agent());
          break;
        default:
          break;
      }
    }
    const grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_) return;
      log::Warning("presence_watch_ended", {{"code", static_cast<int>(status.error_code())},
                                            {"detail", status.error_message()},
                                            {"retry_in_ms", absl::ToInt64Milliseconds(backoff)}});
      // Sleep the backoff unless stopped meanwhile.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      if (stopping_) return;
    }
    backoff = std::min(max_backoff_, backoff * 2);
  }
}

}  // namespace switchboard::routing
