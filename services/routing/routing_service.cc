#include "services/routing/routing_service.h"

#include <deque>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/grpc_auth.h"
#include "libs/protoutil/time.h"
#include "libs/server/queued_writer.h"
#include "libs/server/open_streams.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"
#include "libs/validation/validation.h"

namespace switchboard::routing {
namespace {

using auth::Role;
using server::FinishNow;
using server::RunUnary;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 500;
constexpr char kPageTokenPrefix[] = "entries:";
constexpr int kMaxSchedulesPage = 100;
constexpr char kSchedulePageTokenPrefix[] = "schedules:";

std::string EncodePageToken(size_t offset) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, offset));
}

absl::StatusOr<size_t> DecodePageToken(const std::string& token) {
  if (token.empty()) return 0;
  std::string decoded;
  size_t offset = 0;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix) ||
      !absl::SimpleAtoi(decoded.substr(sizeof(kPageTokenPrefix) - 1), &offset)) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous ListQueueEntries response");
  }
  return offset;
}

absl::StatusOr<Router::Filter> ToFilter(v1::EntryKind kind, common::v1::Channel channel,
                                        common::v1::Category category,
                                        const std::string& language) {
  if (!v1::EntryKind_IsValid(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("kind: unknown kind ", kind));
  }
  if (!common::v1::Channel_IsValid(channel)) {
    return absl::InvalidArgumentError(absl::StrCat("channel: unknown channel ", channel));
  }
  if (!common::v1::Category_IsValid(category)) {
    return absl::InvalidArgumentError(absl::StrCat("category: unknown category ", category));
  }
  if (language.size() > 35) return absl::InvalidArgumentError("language: too long");
  return Router::Filter{kind, channel, category, PrimaryLanguage(language)};
}

// The caller's deadline, which calls made on its behalf must not outlive.
absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

}  // namespace

// One WatchOffers stream: the open offers, a caught_up marker, then offers
// as they are made and closed. Deletes itself when done.
class RoutingService::WatchReactor : public server::QueuedWriter<v1::WatchOffersResponse>,
                                     public OfferListener {
 public:
  WatchReactor(RoutingService* service, size_t max_backlog)
      : QueuedWriter(max_backlog), service_(service) {}

  // The stream counts against `principal`'s cap until it ends.
  void Hold(std::string principal) { principal_ = std::move(principal); }

  void Begin(const std::string& agent_id, bool supervisor) {
    subscribed_ = true;
    std::vector<v1::Offer> open = service_->router_->SubscribeOffers(agent_id, supervisor, this);
    absl::MutexLock lock(&mu_);
    // An offer committed while subscribing can be both in the snapshot and
    // published to this listener: the snapshot goes first and the copy is
    // skipped. Only the snapshot's offers are remembered for that, each
    // until its copy or its close arrives, so the set never outgrows the
    // agent's open offers at the start.
    for (const v1::Offer& offer : open) snapshot_.insert(offer.offer_id());
    // EditQueue runs the edit at once, on this thread, while mu_ is held.
    EditQueue([&](std::deque<v1::WatchOffersResponse>& queue)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      std::deque<v1::WatchOffersResponse> ordered;
      for (const v1::Offer& offer : open) *ordered.emplace_back().mutable_offer() = offer;
      ordered.emplace_back().mutable_caught_up()->set_open_offers(static_cast<int>(open.size()));
      for (auto& message : queue) {
        if (message.has_offer() && IsCopyLocked(message.offer())) continue;
        if (message.has_offer_closed()) snapshot_.erase(message.offer_closed().offer_id());
        ordered.push_back(std::move(message));
      }
      queue.swap(ordered);
    });
    began_ = true;
    Release();
  }

  void OnOffer(const v1::Offer& offer, bool closed) override {
    absl::MutexLock lock(&mu_);
    if (began_) {
      if (closed) {
        snapshot_.erase(offer.offer_id());
      } else if (IsCopyLocked(offer)) {
        return;
      }
    }
    v1::WatchOffersResponse message;
    *(closed ? message.mutable_offer_closed() : message.mutable_offer()) = offer;
    Send(std::move(message));
  }

 private:
  // An open offer already sent in the snapshot (forgotten once matched).
  bool IsCopyLocked(const v1::Offer& offer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return offer.outcome() == v1::OFFER_OUTCOME_UNSPECIFIED &&
           snapshot_.erase(offer.offer_id()) > 0;
  }

  void OnStreamDone() override {
    service_->watchers_.Remove(this);
    if (subscribed_) service_->router_->UnsubscribeOffers(this);
    if (!principal_.empty()) service_->watch_streams_.Release(principal_);
  }

  RoutingService* const service_;
  // Set before any other thread can see the reactor, read in OnStreamDone.
  bool subscribed_ = false;
  std::string principal_;
  // Held across EditQueue/Send (taken before the writer's own lock), so that
  // de-duplication and the snapshot's place in the queue agree.
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> snapshot_ ABSL_GUARDED_BY(mu_);
  bool began_ ABSL_GUARDED_BY(mu_) = false;
};

RoutingService::RoutingService(Router* router, ScheduleBook* schedules,
                               const auth::TokenVerifier* tokens, Clock* clock,
                               server::BlockingPool* pool, Options options)
    : router_(router),
      schedules_(schedules),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::RoutingService::service_full_name())),
      clock_(clock),
      pool_(pool),
      options_(options),
      watch_streams_(options.max_watch_streams_per_agent, "WatchOffers streams") {}

absl::StatusOr<auth::Principal> RoutingService::Authenticate(
    grpc::CallbackServerContext* context, absl::string_view method) {
  return auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
}

grpc::ServerUnaryReactor* RoutingService::EnqueueSession(
    grpc::CallbackServerContext* context, const v1::EnqueueSessionRequest* request,
    v1::EnqueueSessionResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "EnqueueSession");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, context, request, response] {
    Router::EnqueueSessionCommand c;
    c.session_id = request->session_id();
    c.customer_id = request->customer_id();
    c.channel = request->channel();
    c.category = request->category();
    c.language = request->language();
    c.reason = request->reason();
    c.priority = request->priority();
    c.at_head = request->at_head();
    if (request->has_handoff()) c.handoff = request->handoff();
    c.transfer_note = request->transfer_note();
    c.target_agent_id = request->target_agent_id();
    c.preferred_agent_id = request->preferred_agent_id();
    c.excluded_agent_id = request->excluded_agent_id();
    if (request->has_first_response_due_at()) {
      c.first_response_due_at = protoutil::FromTimestamp(request->first_response_due_at());
    }
    absl::StatusOr<Router::EnqueueResult> result =
        router_->EnqueueSession(c, DeadlineOf(context));
    if (!result.ok()) return result.status();
    *response->mutable_entry() = std::move(result->entry);
    response->set_replayed(result->replayed);
    *response->mutable_hours() = std::move(result->hours);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::CancelSession(
    grpc::CallbackServerContext* context, const v1::CancelSessionRequest* request,
    v1::CancelSessionResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "CancelSession");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, context, request, response] {
    absl::StatusOr<bool> found = router_->Cancel(v1::ENTRY_KIND_SESSION, request->session_id(),
                                                 request->reason(), DeadlineOf(context));
    if (!found.ok()) return found.status();
    response->set_found(*found);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::EnqueueComplaint(
    grpc::CallbackServerContext* context, const v1::EnqueueComplaintRequest* request,
    v1::EnqueueComplaintResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "EnqueueComplaint");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response] {
    Router::EnqueueComplaintCommand c{request->complaint_id(), request->customer_id(),
                                      request->category(), request->session_id(),
                                      request->priority()};
    absl::StatusOr<Router::EnqueueResult> result = router_->EnqueueComplaint(c);
    if (!result.ok()) return result.status();
    *response->mutable_entry() = std::move(result->entry);
    response->set_replayed(result->replayed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::CancelComplaint(
    grpc::CallbackServerContext* context, const v1::CancelComplaintRequest* request,
    v1::CancelComplaintResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "CancelComplaint");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response] {
    absl::StatusOr<bool> found =
        router_->Cancel(v1::ENTRY_KIND_COMPLAINT, request->complaint_id(), request->reason());
    if (!found.ok()) return found.status();
    response->set_found(*found);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchOffersResponse>* RoutingService::WatchOffers(
    grpc::CallbackServerContext* context, const v1::WatchOffersRequest* request) {
  auto* reactor = new WatchReactor(this, options_.max_watch_backlog);
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "WatchOffers");
  if (principal.ok() && !request->agent_id().empty() &&
      request->agent_id() != principal->subject) {
    principal = absl::PermissionDeniedError("WatchOffers: you may watch your own offers only");
  }
  if (!principal.ok()) {
    reactor->End(server::ToGrpcStatus(principal.status()));
    return reactor;
  }
  if (absl::Status s = watch_streams_.Acquire(principal->subject); !s.ok()) {
    reactor->End(server::ToGrpcStatus(s, *context));
    return reactor;
  }
  reactor->Hold(principal->subject);
  const bool supervisor = principal->role == Role::kSupervisor;
  if (!watchers_.Add(reactor, [&] { reactor->Begin(principal->subject, supervisor); })) {
    reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  return reactor;
}

void RoutingService::EndStreams() { watchers_.EndAll("reconnect to another instance"); }


grpc::ServerUnaryReactor* RoutingService::AcceptOffer(grpc::CallbackServerContext* context,
                                                      const v1::AcceptOfferRequest* request,
                                                      v1::AcceptOfferResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "AcceptOffer");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, context, request, response,
                                    agent = principal->subject] {
    absl::StatusOr<v1::Assignment> assignment =
        router_->AcceptOffer(agent, request->offer_id(), DeadlineOf(context));
    if (!assignment.ok()) return assignment.status();
    *response->mutable_assignment() = std::move(*assignment);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::DeclineOffer(grpc::CallbackServerContext* context,
                                                       const v1::DeclineOfferRequest* request,
                                                       v1::DeclineOfferResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "DeclineOffer");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, context, request, response,
                                    agent = principal->subject] {
    absl::StatusOr<v1::Offer> offer = router_->DeclineOffer(agent, request->offer_id(),
                                                            request->reason(), DeadlineOf(context));
    if (!offer.ok()) return offer.status();
    *response->mutable_offer() = std::move(*offer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::GetQueueEntry(grpc::CallbackServerContext* context,
                                                        const v1::GetQueueEntryRequest* request,
                                                        v1::GetQueueEntryResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "GetQueueEntry");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const bool customer = principal->role == Role::kCustomer;
  v1::EntryKind kind;
  std::string id;
  switch (request->subject_case()) {
    case v1::GetQueueEntryRequest::kSessionId:
      kind = v1::ENTRY_KIND_SESSION;
      id = request->session_id();
      break;
    case v1::GetQueueEntryRequest::kComplaintId:
      if (customer) {
        return FinishNow(context, absl::PermissionDeniedError(
                                      "GetQueueEntry: customers may read sessions only"));
      }
      kind = v1::ENTRY_KIND_COMPLAINT;
      id = request->complaint_id();
      break;
    default:
      return FinishNow(context,
                       absl::InvalidArgumentError("session_id: one of session_id or "
                                                  "complaint_id is required"));
  }
  absl::StatusOr<Router::EntryView> view = router_->GetEntry(kind, id);
  if (view.ok() && customer && view->entry.customer_id() != principal->subject) {
    // Another customer's session looks exactly like a missing one.
    view = absl::NotFoundError(absl::StrCat("session_id ", id, " is not waiting"));
  }
  if (!view.ok()) return FinishNow(context, view.status());
  *response->mutable_entry() = std::move(view->entry);
  if (customer) {
    response->mutable_entry()->clear_handoff();
    response->mutable_entry()->clear_transfer_note();
    response->mutable_entry()->clear_offered_agent_id();
    response->mutable_entry()->clear_target_agent_id();
    response->mutable_entry()->clear_preferred_agent_id();
  }
  response->set_queue_depth(view->queue_depth);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::ListQueueEntries(
    grpc::CallbackServerContext* context, const v1::ListQueueEntriesRequest* request,
    v1::ListQueueEntriesResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ListQueueEntries");
  if (!principal.ok()) return FinishNow(context, principal.status());
  absl::StatusOr<Router::Filter> filter = ToFilter(request->kind(), request->channel(),
                                                   request->category(), request->language());
  if (!filter.ok()) return FinishNow(context, filter.status());
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    return FinishNow(context, absl::InvalidArgumentError(
                                  absl::StrCat("page_size: must be 0 to ", kMaxPageSize)));
  }
  absl::StatusOr<size_t> offset = DecodePageToken(request->page_token());
  if (!offset.ok()) return FinishNow(context, offset.status());
  const size_t page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  bool more = false;
  for (v1::QueueEntry& entry : router_->ListEntries(*filter, *offset, page_size, &more)) {
    *response->add_entries() = std::move(entry);
  }
  if (more) response->set_next_page_token(EncodePageToken(*offset + page_size));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::GetQueueStats(grpc::CallbackServerContext* context,
                                                        const v1::GetQueueStatsRequest* request,
                                                        v1::GetQueueStatsResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "GetQueueStats");
  if (!principal.ok()) return FinishNow(context, principal.status());
  absl::StatusOr<Router::Filter> filter = ToFilter(request->kind(), request->channel(),
                                                   request->category(), request->language());
  if (!filter.ok()) return FinishNow(context, filter.status());
  for (v1::QueueStats& stats : router_->Stats(*filter)) {
    *response->add_queues() = std::move(stats);
  }
  protoutil::ToTimestamp(clock_->Now(), response->mutable_computed_at());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::GetAgentSettings(
    grpc::CallbackServerContext* context, const v1::GetAgentSettingsRequest* request,
    v1::GetAgentSettingsResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "GetAgentSettings");
  if (!principal.ok()) return FinishNow(context, principal.status());
  std::string agent_id = request->agent_id();
  if (principal->role == Role::kAgent && !agent_id.empty() && agent_id != principal->subject) {
    return FinishNow(context, absl::PermissionDeniedError(
                                  "GetAgentSettings: an agent may read their own settings only"));
  }
  if (agent_id.empty()) agent_id = principal->subject;
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) {
    return FinishNow(context, s);
  }
  SettingsRecord record = router_->GetSettings(agent_id);
  response->set_agent_id(agent_id);
  *response->mutable_settings() = record.settings;
  if (record.updated_at != absl::InfinitePast()) {
    protoutil::ToTimestamp(record.updated_at, response->mutable_updated_at());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::UpdateAgentSettings(
    grpc::CallbackServerContext* context, const v1::UpdateAgentSettingsRequest* request,
    v1::UpdateAgentSettingsResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "UpdateAgentSettings");
  if (!principal.ok()) return FinishNow(context, principal.status());
  std::string agent_id = request->agent_id();
  if (principal->role == Role::kAgent && !agent_id.empty() && agent_id != principal->subject) {
    return FinishNow(context,
                     absl::PermissionDeniedError(
                         "UpdateAgentSettings: an agent may change their own settings only"));
  }
  if (agent_id.empty()) agent_id = principal->subject;
  if (!request->has_settings()) {
    return FinishNow(context, absl::InvalidArgumentError("settings: required"));
  }
  return RunUnary(context, *pool_,
                  [this, request, response, agent_id, actor = principal->subject] {
                    absl::StatusOr<SettingsRecord> record =
                        router_->UpdateSettings(agent_id, request->settings(), actor);
                    if (!record.ok()) return record.status();
                    *response->mutable_settings() = record->settings;
                    protoutil::ToTimestamp(record->updated_at, response->mutable_updated_at());
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* RoutingService::SetSchedule(grpc::CallbackServerContext* context,
                                                      const v1::SetScheduleRequest* request,
                                                      v1::SetScheduleResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "SetSchedule");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (!request->has_schedule()) {
    return FinishNow(context, absl::InvalidArgumentError("schedule: required"));
  }
  if (request->has_expected_version() && request->expected_version() < 0) {
    return FinishNow(context,
                     absl::InvalidArgumentError("expected_version: must be 0 or more"));
  }
  return RunUnary(context, *pool_, [this, request, response, actor = principal->subject] {
    v1::Schedule schedule = request->schedule();
    schedule.clear_version();
    schedule.clear_updated_at();
    schedule.clear_updated_by();
    std::optional<int64_t> expected;
    if (request->has_expected_version()) expected = request->expected_version();
    absl::StatusOr<v1::Schedule> stored = schedules_->Set(std::move(schedule), expected, actor);
    if (!stored.ok()) return stored.status();
    *response->mutable_schedule() = std::move(*stored);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::GetSchedule(grpc::CallbackServerContext* context,
                                                      const v1::GetScheduleRequest* request,
                                                      v1::GetScheduleResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "GetSchedule");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (absl::Status s = validation::ValidateId("schedule_id", request->schedule_id());
      !s.ok()) {
    return FinishNow(context, s);
  }
  absl::StatusOr<v1::Schedule> schedule = schedules_->Get(request->schedule_id());
  if (!schedule.ok()) return FinishNow(context, schedule.status());
  absl::StatusOr<Schedule> built = BuildSchedule(*schedule);
  if (!built.ok()) return FinishNow(context, built.status());
  const absl::Time now = clock_->Now();
  response->set_open(built->IsOpen(now));
  if (std::optional<absl::Time> next = built->NextTransition(now); next.has_value()) {
    protoutil::ToTimestamp(*next, response->mutable_next_transition_at());
  }
  *response->mutable_schedule() = std::move(*schedule);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::ListSchedules(grpc::CallbackServerContext* context,
                                                        const v1::ListSchedulesRequest* request,
                                                        v1::ListSchedulesResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "ListSchedules");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (request->page_size() < 0 || request->page_size() > kMaxSchedulesPage) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "page_size: must be 0 to ", kMaxSchedulesPage)));
  }
  std::string after;
  if (!request->page_token().empty()) {
    std::string decoded;
    if (!absl::WebSafeBase64Unescape(request->page_token(), &decoded) ||
        !absl::StartsWith(decoded, kSchedulePageTokenPrefix)) {
      return FinishNow(context,
                       absl::InvalidArgumentError(
                           "page_token: not a token from a previous ListSchedules response"));
    }
    after = decoded.substr(sizeof(kSchedulePageTokenPrefix) - 1);
  }
  const size_t page_size = request->page_size() == 0 ? kMaxSchedulesPage : request->page_size();
  bool more = false;
  for (v1::Schedule& schedule : schedules_->List(after, page_size, &more)) {
    *response->add_schedules() = std::move(schedule);
  }
  if (more) {
    response->set_next_page_token(absl::WebSafeBase64Escape(absl::StrCat(
        kSchedulePageTokenPrefix,
        response->schedules(response->schedules_size() - 1).schedule_id())));
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RoutingService::DeleteSchedule(
    grpc::CallbackServerContext* context, const v1::DeleteScheduleRequest* request,
    v1::DeleteScheduleResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "DeleteSchedule");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, request, response, actor = principal->subject] {
    std::optional<int64_t> expected;
    if (request->has_expected_version()) expected = request->expected_version();
    absl::StatusOr<bool> found = schedules_->Delete(request->schedule_id(), expected, actor);
    if (!found.ok()) return found.status();
    response->set_found(*found);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RoutingService::GetQueueHours(grpc::CallbackServerContext* context,
                                                        const v1::GetQueueHoursRequest* request,
                                                        v1::GetQueueHoursResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "GetQueueHours");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (request->channel() == common::v1::CHANNEL_UNSPECIFIED ||
      !common::v1::Channel_IsValid(request->channel())) {
    return FinishNow(context, absl::InvalidArgumentError(
                                  "channel: required, CHAT, EMAIL, PHONE or SOCIAL"));
  }
  if (request->category() == common::v1::CATEGORY_UNSPECIFIED ||
      !common::v1::Category_IsValid(request->category())) {
    return FinishNow(context, absl::InvalidArgumentError("category: required, a known category"));
  }
  absl::StatusOr<Router::Filter> filter = ToFilter(
      v1::ENTRY_KIND_SESSION, request->channel(), request->category(), request->language());
  if (!filter.ok()) return FinishNow(context, filter.status());
  if (filter->language.empty()) {
    return FinishNow(context, absl::InvalidArgumentError(
                                  "language: required, a BCP 47 tag such as en or zh-CN"));
  }
  const QueueId queue{v1::ENTRY_KIND_SESSION, request->channel(), request->category(),
                      filter->language};
  const absl::Time now = clock_->Now();
  *response->mutable_hours() = schedules_->HoursOf(queue, now);
  if (request->has_business_time()) {
    const absl::Duration span = protoutil::FromDuration(request->business_time());
    if (span < absl::ZeroDuration() || span > absl::Hours(24 * 366)) {
      return FinishNow(context, absl::InvalidArgumentError(
                                    "business_time: must be 0 to 366 days"));
    }
    const absl::Time from =
        request->has_from() ? protoutil::FromTimestamp(request->from()) : now;
    const Governing governing = schedules_->For(queue);
    const std::optional<absl::Time> ends =
        governing.schedule == nullptr ? std::optional<absl::Time>(from + span)
                                      : governing.schedule->AddBusinessTime(from, span);
    if (ends.has_value()) {
      protoutil::ToTimestamp(*ends, response->mutable_business_time_ends_at());
    }
  }
  return FinishNow(context, absl::OkStatus());
}

}  // namespace switchboard::routing
