#include "services/presence/presence_service.h"

#include <deque>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/grpc_auth.h"
#include "libs/protoutil/time.h"
#include "libs/server/queued_writer.h"
#include "libs/server/open_streams.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"

namespace switchboard::presence {
namespace {

using auth::Role;
using server::FinishNow;
using server::RunUnary;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;
constexpr char kPageTokenPrefix[] = "agents:";

std::string EncodePageToken(const std::string& last_agent_id) {
  if (last_agent_id.empty()) return "";
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, last_agent_id));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  if (token.empty()) return std::string();
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix)) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous ListAgents response");
  }
  return decoded.substr(sizeof(kPageTokenPrefix) - 1);
}

void ToProto(const ReservationRecord& r, v1::Reservation* out) {
  out->set_agent_id(r.agent_id);
  out->set_session_id(r.session_id);
  out->set_channel(r.channel);
  out->set_state(r.assigned ? v1::RESERVATION_STATE_ASSIGNED
                            : v1::RESERVATION_STATE_RESERVED);
  protoutil::ToTimestamp(r.created_at, out->mutable_created_at());
  if (!r.assigned) protoutil::ToTimestamp(r.expires_at, out->mutable_expires_at());
  out->set_holder_id(r.holder_id);
}

constexpr int kMaxReconcileItems = 10'000;

}  // namespace

void ToProto(const AgentRecord& agent, v1::Agent* out) {
  out->set_agent_id(agent.agent_id);
  out->set_status(agent.status);
  *out->mutable_profile() = agent.profile;
  if (agent.status != v1::AGENT_STATUS_OFFLINE) {
    protoutil::ToTimestamp(agent.lease_expires_at, out->mutable_lease_expires_at());
  }
  protoutil::ToTimestamp(agent.status_changed_at, out->mutable_status_changed_at());
  protoutil::ToTimestamp(agent.idle_since, out->mutable_idle_since());
  int total = 0;
  for (const auto& c : agent.profile.capacities()) total += c.load();
  out->set_total_load(total);
  out->set_revision(agent.revision);
  out->set_profile_set_by(agent.profile_set_by);
  if (agent.profile_set_at != absl::InfinitePast()) {
    protoutil::ToTimestamp(agent.profile_set_at, out->mutable_profile_set_at());
  }
}

// One WatchPresence stream: a snapshot, then committed changes in commit
// order. Deletes itself when done.
class PresenceService::WatchReactor
    : public server::QueuedWriter<v1::WatchPresenceResponse>,
      public PresenceListener {
 public:
  WatchReactor(PresenceService* service, size_t max_backlog)
      : QueuedWriter(max_backlog), service_(service) {}

  // The stream counts against `principal`'s cap until it ends.
  void Hold(std::string principal) { principal_ = std::move(principal); }

  // Subscribes, then puts the snapshot in front of any change that arrived
  // meanwhile (those have higher revisions), then starts writing.
  void Begin() {
    subscribed_ = true;
    Presence::Snapshot snapshot = service_->presence_->Subscribe(this);
    EditQueue([&](std::deque<v1::WatchPresenceResponse>& queue) {
      std::deque<v1::WatchPresenceResponse> ordered;
      for (const AgentRecord& agent : snapshot.agents) {
        ToProto(agent, ordered.emplace_back().mutable_snapshot_agent());
      }
      v1::SnapshotComplete* complete = ordered.emplace_back().mutable_snapshot_complete();
      complete->set_agent_count(static_cast<int32_t>(snapshot.agents.size()));
      complete->set_revision(snapshot.revision);
      for (auto& change : queue) ordered.push_back(std::move(change));
      queue.swap(ordered);
    });
    Release();
  }

  void OnChange(const AgentChange& change) override {
    v1::WatchPresenceResponse message;
    v1::AgentChange* out = message.mutable_change();
    ToProto(change.agent, out->mutable_agent());
    out->set_previous_status(change.previous_status);
    out->set_reason(change.reason);
    Send(std::move(message));
  }

 private:
  void OnStreamDone() override {
    service_->watchers_.Remove(this);
    if (subscribed_) service_->presence_->Unsubscribe(this);
    if (!principal_.empty()) service_->watch_streams_.Release(principal_);
  }

  PresenceService* const service_;
  // Set before any other thread can see the reactor, read in OnStreamDone.
  std::string principal_;
  // Set before any other thread can see the reactor, read in OnStreamDone.
  bool subscribed_ = false;
};

PresenceService::PresenceService(Presence* presence, const auth::TokenVerifier* tokens,
                                 Clock* clock, server::BlockingPool* pool,
                                 Options options)
    : presence_(presence),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::PresenceService::service_full_name())),
      clock_(clock),
      pool_(pool),
      options_(options),
      watch_streams_(options.max_watch_streams_per_principal, "WatchPresence streams") {}

absl::StatusOr<auth::Principal> PresenceService::Authenticate(
    grpc::CallbackServerContext* context, absl::string_view method) {
  return auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
}

absl::StatusOr<std::string> PresenceService::TargetAgent(
    grpc::CallbackServerContext* context, const std::string& requested,
    absl::string_view method, Role* role) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, method);
  if (!principal.ok()) return principal.status();
  if (role != nullptr) *role = principal->role;
  if (principal->role == Role::kAgent) {
    if (!requested.empty() && requested != principal->subject) {
      return absl::PermissionDeniedError(
          absl::StrCat(method, ": an agent may act on their own presence only"));
    }
    return principal->subject;
  }
  if (requested.empty()) {
    return absl::InvalidArgumentError("agent_id: must not be empty");
  }
  return requested;
}

grpc::ServerUnaryReactor* PresenceService::SetStatus(
    grpc::CallbackServerContext* context, const v1::SetStatusRequest* request,
    v1::SetStatusResponse* response) {
  Role role = Role::kAgent;
  absl::StatusOr<std::string> agent_id =
      TargetAgent(context, request->agent_id(), "SetStatus", &role);
  if (!agent_id.ok()) return FinishNow(context, agent_id.status());
  if (request->has_profile()) {
    return FinishNow(context,
                     role == Role::kAgent
                         ? absl::PermissionDeniedError(
                               "profile: an agent's skills and capacity limits are set by "
                               "supervisors (SetAgentProfile); agents may lower their "
                               "capacity with `capacities`")
                         : absl::InvalidArgumentError(
                               "profile: set an agent's profile with SetAgentProfile"));
  }
  return RunUnary(context, *pool_, [this, request, response, agent_id = *agent_id] {
    Presence::SetStatusCommand command;
    command.agent_id = agent_id;
    command.status = request->status();
    command.capacities.assign(request->capacities().begin(), request->capacities().end());
    command.device_id = request->device_id();
    absl::StatusOr<AgentRecord> agent = presence_->SetStatus(command);
    if (!agent.ok()) return agent.status();
    ToProto(*agent, response->mutable_agent());
    protoutil::ToDuration(presence_->heartbeat_interval(),
                          response->mutable_heartbeat_interval());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PresenceService::SetAgentProfile(
    grpc::CallbackServerContext* context, const v1::SetAgentProfileRequest* request,
    v1::SetAgentProfileResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "SetAgentProfile");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (!request->has_profile()) {
    return FinishNow(context, absl::InvalidArgumentError("profile: required"));
  }
  return RunUnary(context, *pool_,
                  [this, request, response, supervisor = principal->subject] {
                    absl::StatusOr<AgentRecord> agent = presence_->SetProfile(
                        request->agent_id(), request->profile(), supervisor);
                    if (!agent.ok()) return agent.status();
                    ToProto(*agent, response->mutable_agent());
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* PresenceService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  absl::StatusOr<std::string> agent_id =
      TargetAgent(context, request->agent_id(), "Heartbeat");
  if (!agent_id.ok()) return FinishNow(context, agent_id.status());
  // A heartbeat only touches memory: answer on the callback thread.
  absl::StatusOr<AgentRecord> agent =
      presence_->Heartbeat(*agent_id, request->device_id());
  if (agent.ok()) {
    protoutil::ToTimestamp(agent->lease_expires_at, response->mutable_lease_expires_at());
    response->set_status(agent->status);
    protoutil::ToDuration(presence_->heartbeat_interval(),
                          response->mutable_heartbeat_interval());
  }
  return FinishNow(context, agent.status());
}

grpc::ServerUnaryReactor* PresenceService::GetAgent(
    grpc::CallbackServerContext* context, const v1::GetAgentRequest* request,
    v1::GetAgentResponse* response) {
  absl::StatusOr<std::string> agent_id = TargetAgent(context, request->agent_id(), "GetAgent");
  if (!agent_id.ok()) return FinishNow(context, agent_id.status());
  absl::StatusOr<AgentRecord> agent = presence_->GetAgent(*agent_id);
  if (agent.ok()) ToProto(*agent, response->mutable_agent());
  return FinishNow(context, agent.status());
}

grpc::ServerUnaryReactor* PresenceService::ListAgents(
    grpc::CallbackServerContext* context, const v1::ListAgentsRequest* request,
    v1::ListAgentsResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ListAgents");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (!v1::AgentStatus_IsValid(request->status())) {
    return FinishNow(context, absl::InvalidArgumentError("status: unknown status"));
  }
  if (!common::v1::Category_IsValid(request->category())) {
    return FinishNow(context, absl::InvalidArgumentError("category: unknown category"));
  }
  if (!common::v1::Channel_IsValid(request->channel())) {
    return FinishNow(context, absl::InvalidArgumentError("channel: unknown channel"));
  }
  if (request->language().size() > 35) {
    return FinishNow(context, absl::InvalidArgumentError("language: too long"));
  }
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "page_size: must be 0 to ", kMaxPageSize)));
  }
  absl::StatusOr<std::string> after = DecodePageToken(request->page_token());
  if (!after.ok()) return FinishNow(context, after.status());

  Presence::ListFilter filter;
  filter.status = request->status();
  filter.category = request->category();
  filter.language = PrimaryLanguage(request->language());
  filter.channel = request->channel();
  const int page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  Presence::ListPage page = presence_->ListAgents(filter, page_size, *after);
  for (const AgentRecord& agent : page.agents) ToProto(agent, response->add_agents());
  response->set_next_page_token(EncodePageToken(page.last_agent_id));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerWriteReactor<v1::WatchPresenceResponse>* PresenceService::WatchPresence(
    grpc::CallbackServerContext* context, const v1::WatchPresenceRequest* request) {
  auto* reactor = new WatchReactor(this, options_.max_watch_backlog);
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "WatchPresence");
  if (!principal.ok()) {
    reactor->End(server::ToGrpcStatus(principal.status()));
    return reactor;
  }
  if (absl::Status s = watch_streams_.Acquire(principal->subject); !s.ok()) {
    reactor->End(server::ToGrpcStatus(s, *context));
    return reactor;
  }
  reactor->Hold(principal->subject);
  if (!watchers_.Add(reactor, [&] { reactor->Begin(); })) {
    reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  return reactor;
}

void PresenceService::EndStreams() { watchers_.EndAll("reconnect to another instance"); }


grpc::ServerUnaryReactor* PresenceService::ReserveCapacity(
    grpc::CallbackServerContext* context, const v1::ReserveCapacityRequest* request,
    v1::ReserveCapacityResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ReserveCapacity");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response] {
    std::optional<absl::Duration> hold;
    if (request->has_hold()) hold = protoutil::FromDuration(request->hold());
    absl::StatusOr<Presence::Reservation> reserved =
        presence_->Reserve(request->agent_id(), request->session_id(), request->channel(),
                           hold, request->holder_id());
    if (!reserved.ok()) return reserved.status();
    ToProto(reserved->reservation, response->mutable_reservation());
    ToProto(reserved->agent, response->mutable_agent());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PresenceService::ConfirmReservation(
    grpc::CallbackServerContext* context, const v1::ConfirmReservationRequest* request,
    v1::ConfirmReservationResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ConfirmReservation");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response] {
    absl::StatusOr<ReservationRecord> confirmed =
        presence_->Confirm(request->agent_id(), request->session_id());
    if (!confirmed.ok()) return confirmed.status();
    ToProto(*confirmed, response->mutable_reservation());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PresenceService::ReleaseCapacity(
    grpc::CallbackServerContext* context, const v1::ReleaseCapacityRequest* request,
    v1::ReleaseCapacityResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ReleaseCapacity");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response] {
    absl::StatusOr<Presence::Release> released = presence_->ReleaseCapacity(
        request->agent_id(), request->session_id(), request->holder_id());
    if (!released.ok()) return released.status();
    response->set_released(released->released);
    ToProto(released->agent, response->mutable_agent());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PresenceService::ReconcileReservations(
    grpc::CallbackServerContext* context, const v1::ReconcileReservationsRequest* request,
    v1::ReconcileReservationsResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ReconcileReservations");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (request->live_size() > kMaxReconcileItems) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "live: at most ", kMaxReconcileItems,
                                  " per call; split the agents into ranges")));
  }
  return RunUnary(context, *pool_, [this, request, response] {
    Presence::ReconcileCommand command;
    command.fence = request->fence();
    command.agent_id_from = request->agent_id_from();
    command.agent_id_to = request->agent_id_to();
    for (const v1::HeldCapacity& held : request->live()) {
      command.live.push_back(Presence::HeldCapacity{held.agent_id(), held.session_id(),
                                                    held.channel(), held.holder_id(),
                                                    held.assigned()});
    }
    absl::StatusOr<Presence::ReconcileResult> result = presence_->Reconcile(command);
    if (!result.ok()) return result.status();
    for (const ReservationRecord& r : result->released) ToProto(r, response->add_released());
    for (const ReservationRecord& r : result->restored) ToProto(r, response->add_restored());
    response->set_confirmed(result->confirmed);
    for (const Presence::HeldCapacity& held : result->missing) {
      v1::HeldCapacity* out = response->add_missing();
      out->set_agent_id(held.agent_id);
      out->set_session_id(held.session_id);
      out->set_channel(held.channel);
      out->set_holder_id(held.holder_id);
      out->set_assigned(held.assigned);
    }
    return absl::OkStatus();
  });
}

}  // namespace switchboard::presence
