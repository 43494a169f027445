#include "services/routing/grpc_peers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"

namespace switchboard::routing {
namespace {

constexpr absl::Duration kNoTime = absl::ZeroDuration();

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// A context for one call: the token, and a deadline of `timeout` from now or
// `deadline` if sooner; null (with DEADLINE_EXCEEDED) if `deadline` passed.
absl::StatusOr<std::unique_ptr<grpc::ClientContext>> ContextFor(client::ServiceToken* token,
                                                                 absl::Duration timeout,
                                                                 absl::Time deadline) {
  const absl::Duration left = std::min(timeout, deadline - absl::Now());
  if (left <= kNoTime) {
    return absl::DeadlineExceededError("the caller's deadline passed before the call");
  }
  return client::PeerContext(token->Get(), left);
}

// A peer answers RESOURCE_EXHAUSTED about the request (presence: the agent
// is at capacity) and also, with a retry-after trailer, when it is
// overloaded: the latter is a failure to get an answer, not a decision.
absl::Status FromPeer(const grpc::Status& status, const grpc::ClientContext& context) {
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    const auto& trailers = context.GetServerTrailingMetadata();
    if (trailers.find("retry-after") != trailers.end()) {
      return absl::UnavailableError(absl::StrCat("peer busy: ", status.error_message()));
    }
  }
  return FromGrpc(status);
}

}  // namespace

GrpcPresence::GrpcPresence(std::shared_ptr<grpc::Channel> channel,
                           client::ServiceToken* token, absl::Duration timeout)
    : stub_(presence::v1::PresenceService::NewStub(channel)), token_(token), timeout_(timeout) {}

absl::Status GrpcPresence::Reserve(const std::string& agent_id, const std::string& session_id,
                                   common::v1::Channel channel, absl::Duration hold,
                                   int64_t holder_id, absl::Time deadline) {
  presence::v1::ReserveCapacityRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  request.set_channel(channel);
  protoutil::ToDuration(hold, request.mutable_hold());
  request.set_holder_id(holder_id);
  presence::v1::ReserveCapacityResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->ReserveCapacity(context->get(), request, &response), **context);
}

absl::Status GrpcPresence::Confirm(const std::string& agent_id, const std::string& session_id,
                                   absl::Time deadline) {
  presence::v1::ConfirmReservationRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  presence::v1::ConfirmReservationResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->ConfirmReservation(context->get(), request, &response), **context);
}

absl::Status GrpcPresence::Release(const std::string& agent_id, const std::string& session_id,
                                   int64_t holder_id, absl::Time deadline) {
  presence::v1::ReleaseCapacityRequest request;
  request.set_agent_id(agent_id);
  request.set_session_id(session_id);
  request.set_holder_id(holder_id);
  presence::v1::ReleaseCapacityResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->ReleaseCapacity(context->get(), request, &response), **context);
}

absl::StatusOr<ReconcileReply> GrpcPresence::Reconcile(int64_t fence, const std::string& from,
                                                       const std::string& to,
                                                       const std::vector<HeldCapacity>& live,
                                                       absl::Time deadline) {
  presence::v1::ReconcileReservationsRequest request;
  request.set_fence(fence);
  request.set_agent_id_from(from);
  request.set_agent_id_to(to);
  for (const HeldCapacity& held : live) {
    presence::v1::HeldCapacity* out = request.add_live();
    out->set_agent_id(held.agent_id);
    out->set_session_id(held.session_id);
    out->set_channel(held.channel);
    out->set_holder_id(held.holder_id);
    out->set_assigned(held.assigned);
  }
  presence::v1::ReconcileReservationsResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  absl::Status status =
      FromPeer(stub_->ReconcileReservations(context->get(), request, &response), **context);
  if (!status.ok()) return status;
  ReconcileReply reply;
  reply.released = response.released_size();
  reply.restored = response.restored_size();
  for (const presence::v1::HeldCapacity& missing : response.missing()) {
    reply.missing.push_back(HeldCapacity{missing.agent_id(), missing.session_id(),
                                         missing.channel(), missing.holder_id(),
                                         missing.assigned()});
  }
  return reply;
}

GrpcSessions::GrpcSessions(std::shared_ptr<grpc::Channel> channel,
                           client::ServiceToken* token, absl::Duration timeout)
    : stub_(sessions::v1::SessionsService::NewStub(channel)), token_(token), timeout_(timeout) {}

absl::Status GrpcSessions::RecordOffer(const std::string& session_id,
                                       const std::string& agent_id, const std::string& offer_id,
                                       absl::Time expires_at, absl::Time deadline) {
  sessions::v1::RecordOfferRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  request.set_offer_id(offer_id);
  protoutil::ToTimestamp(expires_at, request.mutable_expires_at());
  sessions::v1::RecordOfferResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->RecordOffer(context->get(), request, &response), **context);
}

absl::Status GrpcSessions::AssignAgent(const std::string& session_id,
                                       const std::string& agent_id,
                                       const std::string& agent_display_name,
                                       const std::string& offer_id, absl::Time deadline) {
  sessions::v1::AssignAgentRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  request.set_agent_display_name(agent_display_name);
  request.set_offer_id(offer_id);
  sessions::v1::AssignAgentResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->AssignAgent(context->get(), request, &response), **context);
}

absl::Status GrpcSessions::RequeueSession(const std::string& session_id,
                                          const std::string& agent_id, absl::Time deadline) {
  sessions::v1::RequeueSessionRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  sessions::v1::RequeueSessionResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  return FromPeer(stub_->RequeueSession(context->get(), request, &response), **context);
}

absl::StatusOr<SessionView> GrpcSessions::GetSession(const std::string& session_id,
                                                     absl::Time deadline) {
  sessions::v1::GetSessionRequest request;
  request.set_session_id(session_id);
  sessions::v1::GetSessionResponse response;
  auto context = ContextFor(token_, timeout_, deadline);
  if (!context.ok()) return context.status();
  absl::Status status =
      FromPeer(stub_->GetSession(context->get(), request, &response), **context);
  if (!status.ok()) return status;
  SessionView view;
  switch (response.session().state()) {
    case sessions::v1::SESSION_STATE_QUEUED:
      view.state = SessionView::State::kQueued;
      break;
    case sessions::v1::SESSION_STATE_ASSIGNED:
      view.state = SessionView::State::kAssigned;
      view.assigned_agent_id = response.session().assigned_agent_id();
      break;
    default:
      view.state = SessionView::State::kOther;
      break;
  }
  return view;
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
    absl::Status applied;
    presence::v1::WatchPresenceResponse message;
    while (reader->Read(&message)) {
      switch (message.kind_case()) {
        case presence::v1::WatchPresenceResponse::kSnapshotAgent:
          snapshot.push_back(message.snapshot_agent());
          break;
        case presence::v1::WatchPresenceResponse::kSnapshotComplete:
          applied = router_->ResetPresence(snapshot);
          snapshot.clear();
          if (applied.ok()) {
            live = true;
            ++snapshots_;
            backoff = min_backoff_;
            log::Info("presence_watch_live",
                      {{"agents", message.snapshot_complete().agent_count()}});
          }
          break;
        case presence::v1::WatchPresenceResponse::kChange:
          if (live) applied = router_->OnAgentChange(message.change().agent());
          break;
        default:
          break;
      }
      if (!applied.ok()) {
        // The router could not commit what presence reported (its storage
        // failed): start again from a fresh snapshot rather than carry on
        // with a view that missed a change.
        log::Error("presence_change_not_applied", {{"detail", applied.message()}});
        context->TryCancel();
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
