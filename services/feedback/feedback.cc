#include "services/feedback/feedback.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/events/envelope.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::feedback {
namespace {

using auth::Role;

constexpr char kProducer[] = "feedback";
constexpr size_t kMaxComment = 2000;
constexpr size_t kMaxComplaintText = 4000;
constexpr size_t kMaxIdBytes = 128;
constexpr int kMaxNotes = 100;
constexpr int kDefaultListPage = 50;
constexpr int kMaxListPage = 200;
constexpr int kDefaultSummaryPage = 100;
constexpr int kMaxSummaryPage = 500;
constexpr absl::Duration kMaxSummaryWindow = absl::Hours(24 * 366);

absl::Status ValidateScore(absl::string_view field, int32_t score) {
  if (score >= 1 && score <= 5) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be 1 to 5, got ", score));
}

absl::Status ValidateOptionalId(absl::string_view field, const std::string& id) {
  if (id.empty()) return absl::OkStatus();
  return validation::ValidateId(field, id, kMaxIdBytes);
}

absl::Status ValidatePageSize(int32_t page_size, int max) {
  if (page_size >= 0 && page_size <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("page_size: must be 0 to ", max));
}

absl::Status BadToken(absl::string_view method) {
  return absl::InvalidArgumentError(absl::StrCat(
      "page_token: not a token from a previous ", method, " response with these filters"));
}

// Page tokens: "<kind>:<micros>:<id>", web-safe base64. Opaque to clients.
std::string EncodeCursor(absl::string_view kind, absl::Time time, const std::string& id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kind, ":", absl::ToUnixMicros(time), ":", id));
}

absl::StatusOr<ListCursor> DecodeCursor(absl::string_view kind, const std::string& token,
                                        absl::string_view method) {
  ListCursor cursor;
  if (token.empty()) return cursor;
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded)) return BadToken(method);
  std::vector<std::string> parts = absl::StrSplit(decoded, absl::MaxSplits(':', 2));
  int64_t micros = 0;
  if (parts.size() != 3 || parts[0] != kind || !absl::SimpleAtoi(parts[1], &micros) ||
      parts[2].empty()) {
    return BadToken(method);
  }
  cursor.set = true;
  cursor.time = absl::FromUnixMicros(micros);
  cursor.id = parts[2];
  return cursor;
}

absl::Time TimeOrInfinite(bool has, const google::protobuf::Timestamp& ts, absl::Time none) {
  return has ? protoutil::FromTimestamp(ts) : none;
}

absl::Status ValidateTimestamp(absl::string_view field, const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < 0 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
      ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a valid timestamp"));
  }
  return absl::OkStatus();
}

bool SameRating(const v1::Feedback& stored, const v1::SubmitFeedbackRequest& request) {
  return stored.ratings().response_speed() == request.ratings().response_speed() &&
         stored.ratings().professionalism() == request.ratings().professionalism() &&
         stored.ratings().problem_resolution() == request.ratings().problem_resolution() &&
         stored.overall_satisfaction() == request.overall_satisfaction() &&
         stored.comment() == request.comment();
}

absl::Status SessionNotFound() {
  return absl::NotFoundError("session_id: no such session");
}

absl::Status Sealed(events::v1::Event& event, const std::string& key, absl::Time now) {
  return events::Seal(event, kProducer, key, now);
}

}  // namespace

v1::Complaint ComplaintView(const Caller& caller, const v1::Complaint& complaint) {
  v1::Complaint view = complaint;
  if (caller.role == Role::kCustomer) {
    view.clear_notes();
    view.clear_assignee_id();
  }
  return view;
}

Feedback::Feedback(FeedbackStore* store, SessionsPort* sessions, RoutingPort* routing,
                   Clock* clock, FeedbackMetrics* metrics, FeedbackOptions options,
                   std::function<void()> routing_kick)
    : store_(store),
      sessions_(sessions),
      routing_(routing),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      routing_kick_(std::move(routing_kick)) {}

absl::Status Feedback::Load() {
  absl::StatusOr<std::array<int64_t, 4>> counts = store_->CountComplaintsByState();
  if (!counts.ok()) return counts.status();
  for (int s = v1::COMPLAINT_STATE_OPEN; s <= v1::COMPLAINT_STATE_RESOLVED; ++s) {
    metrics_->complaints(static_cast<v1::ComplaintState>(s)).Set((*counts)[s]);
  }
  return absl::OkStatus();
}

void Feedback::Kick() {
  if (routing_kick_) routing_kick_();
}

absl::StatusOr<SessionInfo> Feedback::CheckedSession(const std::string& session_id,
                                                     const std::string& customer_id,
                                                     absl::Time deadline) {
  absl::StatusOr<SessionInfo> session = sessions_->GetSession(session_id, deadline);
  if (absl::IsNotFound(session.status())) return SessionNotFound();
  if (!session.ok()) {
    metrics_->sessions_unavailable->Increment();
    log::Warning("sessions_check_failed",
                 {{"session_id", session_id}, {"error", session.status().ToString()}});
    return absl::UnavailableError(
        "the sessions service could not confirm the session; nothing was stored, retry");
  }
  // Another customer's session looks exactly like a missing one.
  if (session->customer_id != customer_id) return SessionNotFound();
  return session;
}

absl::StatusOr<v1::SubmitFeedbackResponse> Feedback::SubmitFeedback(
    const Caller& caller, const v1::SubmitFeedbackRequest& request, absl::Time deadline) {
  if (absl::Status s = validation::ValidateId("session_id", request.session_id(), kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  const v1::Ratings& r = request.ratings();
  for (const auto& [field, score] :
       {std::pair<absl::string_view, int32_t>{"ratings.response_speed", r.response_speed()},
        {"ratings.professionalism", r.professionalism()},
        {"ratings.problem_resolution", r.problem_resolution()},
        {"overall_satisfaction", request.overall_satisfaction()}}) {
    if (absl::Status s = ValidateScore(field, score); !s.ok()) return s;
  }
  if (absl::Status s = validation::ValidateText("comment", request.comment(), kMaxComment);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = validation::ValidateRequestId("request_id", request.request_id());
      !s.ok()) {
    return s;
  }

  // Answers a session that already has a rating: a retry gets the first
  // result, anything else ALREADY_EXISTS. Needs no sessions call, so a retry
  // succeeds even while sessions is down.
  auto answer_existing =
      [&](const StoredFeedback& stored) -> absl::StatusOr<v1::SubmitFeedbackResponse> {
    if (stored.feedback.customer_id() != caller.id) return SessionNotFound();
    const bool same_key =
        !request.request_id().empty() && request.request_id() == stored.request_id;
    if (!same_key && !SameRating(stored.feedback, request)) {
      metrics_->rejected_duplicate->Increment();
      return absl::AlreadyExistsError(
          "session_id: the session already has a different rating");
    }
    v1::SubmitFeedbackResponse response;
    *response.mutable_feedback() = stored.feedback;
    response.set_replayed(true);
    return response;
  };

  absl::StatusOr<std::optional<StoredFeedback>> existing =
      store_->GetFeedback(request.session_id());
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return answer_existing(**existing);
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  absl::StatusOr<SessionInfo> session =
      CheckedSession(request.session_id(), caller.id, deadline);
  if (!session.ok()) return session.status();
  if (!session->resolved) {
    metrics_->rejected_not_resolved->Increment();
    return absl::FailedPreconditionError(
        "session_id: the session has not been resolved; rate it once it is");
  }

  const absl::Time now = clock_->Now();
  StoredFeedback stored;
  stored.request_id = request.request_id();
  v1::Feedback& f = stored.feedback;
  f.set_feedback_id(events::RandomUuid());
  f.set_session_id(request.session_id());
  f.set_customer_id(caller.id);
  f.set_agent_id(session->agent_id);
  f.set_channel(session->channel);
  f.set_category(session->category);
  *f.mutable_ratings() = r;
  f.set_overall_satisfaction(request.overall_satisfaction());
  f.set_comment(request.comment());
  protoutil::ToTimestamp(now, f.mutable_submitted_at());
  protoutil::ToTimestamp(session->resolved_at, f.mutable_session_resolved_at());

  events::v1::Event event;
  events::v1::FeedbackSubmitted* e = event.mutable_feedback_submitted();
  e->set_feedback_id(f.feedback_id());
  e->set_session_id(f.session_id());
  e->set_customer_id(f.customer_id());
  e->set_agent_id(f.agent_id());
  e->set_channel(f.channel());
  e->set_category(f.category());
  *e->mutable_ratings() = f.ratings();
  e->set_overall_satisfaction(f.overall_satisfaction());
  e->set_comment(f.comment());
  if (session->resolved_at != absl::InfinitePast()) {
    protoutil::ToDuration(now - session->resolved_at, e->mutable_since_resolved());
  }
  if (absl::Status s = Sealed(event, f.session_id(), now); !s.ok()) return s;

  absl::StatusOr<FeedbackStore::Inserted> inserted = store_->InsertFeedback(stored, event);
  if (!inserted.ok()) return inserted.status();
  if (!inserted->inserted) return answer_existing(inserted->stored);

  metrics_->response_speed->Observe(r.response_speed());
  metrics_->professionalism->Observe(r.professionalism());
  metrics_->problem_resolution->Observe(r.problem_resolution());
  metrics_->overall_satisfaction->Observe(request.overall_satisfaction());
  if (session->open_resolved) {
    // Best effort: the rating stands either way, and sessions closes
    // resolved sessions itself after its idle timeout.
    if (absl::Status s = sessions_->CloseRated(f.session_id(), deadline); !s.ok()) {
      log::Warning("close_rated_session_failed",
                   {{"session_id", f.session_id()}, {"error", s.ToString()}});
    }
  }
  v1::SubmitFeedbackResponse response;
  *response.mutable_feedback() = std::move(f);
  return response;
}

absl::StatusOr<v1::GetFeedbackResponse> Feedback::GetFeedback(
    const Caller& caller, const v1::GetFeedbackRequest& request) {
  if (absl::Status s = validation::ValidateId("session_id", request.session_id(), kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::optional<StoredFeedback>> stored =
      store_->GetFeedback(request.session_id());
  if (!stored.ok()) return stored.status();
  const bool visible =
      stored->has_value() &&
      ((caller.role == Role::kCustomer && (*stored)->feedback.customer_id() == caller.id) ||
       (caller.role == Role::kAgent && (*stored)->feedback.agent_id() == caller.id) ||
       caller.role == Role::kSupervisor || caller.role == Role::kService);
  if (!visible) return absl::NotFoundError("session_id: the session has no rating");
  v1::GetFeedbackResponse response;
  *response.mutable_feedback() = std::move((*stored)->feedback);
  return response;
}

absl::StatusOr<v1::ListFeedbackResponse> Feedback::ListFeedback(
    const Caller& caller, const v1::ListFeedbackRequest& request) {
  FeedbackFilter filter;
  if (absl::Status s = ValidateOptionalId("agent_id", request.agent_id()); !s.ok()) return s;
  filter.agent_id = request.agent_id();
  if (caller.role == Role::kAgent) {
    if (!filter.agent_id.empty() && filter.agent_id != caller.id) {
      return absl::PermissionDeniedError(
          "ListFeedback: an agent may list ratings of their own sessions only");
    }
    filter.agent_id = caller.id;
  }
  if (caller.role == Role::kCustomer) filter.customer_id = caller.id;
  if (!common::v1::Category_IsValid(request.category())) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (!common::v1::Channel_IsValid(request.channel())) {
    return absl::InvalidArgumentError("channel: unknown channel");
  }
  filter.category = request.category();
  filter.channel = request.channel();
  if (request.has_start_time()) {
    if (absl::Status s = ValidateTimestamp("start_time", request.start_time()); !s.ok()) return s;
  }
  if (request.has_end_time()) {
    if (absl::Status s = ValidateTimestamp("end_time", request.end_time()); !s.ok()) return s;
  }
  filter.start = TimeOrInfinite(request.has_start_time(), request.start_time(),
                                absl::InfinitePast());
  filter.end = TimeOrInfinite(request.has_end_time(), request.end_time(), absl::InfiniteFuture());
  if (request.max_overall_satisfaction() < 0 || request.max_overall_satisfaction() > 5) {
    return absl::InvalidArgumentError("max_overall_satisfaction: must be 0 to 5");
  }
  filter.max_overall = request.max_overall_satisfaction();
  filter.with_comment_only = request.with_comment_only();
  if (absl::Status s = ValidatePageSize(request.page_size(), kMaxListPage); !s.ok()) return s;
  const int page_size = request.page_size() == 0 ? kDefaultListPage : request.page_size();
  absl::StatusOr<ListCursor> cursor = DecodeCursor("fb", request.page_token(), "ListFeedback");
  if (!cursor.ok()) return cursor.status();

  absl::StatusOr<std::vector<v1::Feedback>> rows =
      store_->ListFeedback(filter, *cursor, page_size + 1);
  if (!rows.ok()) return rows.status();
  v1::ListFeedbackResponse response;
  const bool more = static_cast<int>(rows->size()) > page_size;
  if (more) rows->resize(page_size);
  for (v1::Feedback& f : *rows) *response.add_feedbacks() = std::move(f);
  if (more) {
    const v1::Feedback& last = response.feedbacks(response.feedbacks_size() - 1);
    response.set_next_page_token(EncodeCursor(
        "fb", protoutil::FromTimestamp(last.submitted_at()), last.feedback_id()));
  }
  return response;
}

absl::StatusOr<v1::FileComplaintResponse> Feedback::FileComplaint(
    const Caller& caller, const v1::FileComplaintRequest& request, absl::Time deadline) {
  std::string customer_id = request.customer_id();
  if (caller.role == Role::kCustomer) {
    if (!customer_id.empty() && customer_id != caller.id) {
      return absl::PermissionDeniedError(
          "FileComplaint: a customer may complain on their own behalf only");
    }
    customer_id = caller.id;
  }
  if (absl::Status s = validation::ValidateId("customer_id", customer_id, kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateOptionalId("session_id", request.session_id()); !s.ok()) {
    return s;
  }
  if (!common::v1::Category_IsValid(request.category())) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (request.reason() == v1::COMPLAINT_REASON_UNSPECIFIED ||
      !v1::ComplaintReason_IsValid(request.reason())) {
    return absl::InvalidArgumentError("reason: must be set to a known reason");
  }
  if (absl::Status s = validation::ValidateText("description", request.description(),
                                                kMaxComplaintText, /*required=*/true);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = validation::ValidateRequestId("request_id", request.request_id());
      !s.ok()) {
    return s;
  }

  if (!request.request_id().empty()) {
    absl::StatusOr<std::optional<ComplaintRecord>> seen =
        store_->FindComplaintByRequest(customer_id, request.request_id());
    if (!seen.ok()) return seen.status();
    if (seen->has_value()) {
      v1::FileComplaintResponse response;
      *response.mutable_complaint() = ComplaintView(caller, (*seen)->complaint);
      response.set_replayed(true);
      return response;
    }
  }

  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  ComplaintRecord record;
  record.request_id = request.request_id();
  record.routing = RoutingAction::kEnqueue;
  v1::Complaint& c = record.complaint;
  c.set_category(request.category() == common::v1::CATEGORY_UNSPECIFIED
                     ? common::v1::CATEGORY_GENERAL
                     : request.category());
  if (!request.session_id().empty()) {
    absl::StatusOr<SessionInfo> session =
        CheckedSession(request.session_id(), customer_id, deadline);
    if (!session.ok()) return session.status();
    c.set_session_id(session->session_id);
    c.set_agent_id(session->agent_id);
    c.set_channel(session->channel);
    c.set_category(session->category == common::v1::CATEGORY_UNSPECIFIED
                       ? common::v1::CATEGORY_GENERAL
                       : session->category);
  }
  const absl::Time now = clock_->Now();
  c.set_complaint_id(events::RandomUuid());
  c.set_customer_id(customer_id);
  c.set_reason(request.reason());
  c.set_description(request.description());
  c.set_state(v1::COMPLAINT_STATE_OPEN);
  protoutil::ToTimestamp(now, c.mutable_filed_at());
  protoutil::ToTimestamp(now, c.mutable_updated_at());

  events::v1::Event event;
  events::v1::ComplaintFiled* e = event.mutable_complaint_filed();
  e->set_complaint_id(c.complaint_id());
  e->set_customer_id(c.customer_id());
  e->set_session_id(c.session_id());
  e->set_agent_id(c.agent_id());
  e->set_category(c.category());
  e->set_channel(c.channel());
  e->set_reason(c.reason());
  e->set_state(c.state());
  if (absl::Status s = Sealed(event, c.complaint_id(), now); !s.ok()) return s;

  absl::StatusOr<FeedbackStore::Filed> filed =
      store_->InsertComplaint(record, options_.max_unresolved_complaints, event);
  if (!filed.ok()) return filed.status();
  if (filed->inserted) {
    metrics_->complaints_filed->Increment();
    metrics_->complaints(v1::COMPLAINT_STATE_OPEN).Increment();
    Kick();
  }
  v1::FileComplaintResponse response;
  *response.mutable_complaint() = ComplaintView(caller, filed->record.complaint);
  response.set_replayed(!filed->inserted);
  return response;
}

absl::StatusOr<v1::UpdateComplaintResponse> Feedback::UpdateComplaint(
    const Caller& caller, const v1::UpdateComplaintRequest& request) {
  if (absl::Status s =
          validation::ValidateId("complaint_id", request.complaint_id(), kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  const v1::ComplaintState target = request.state();
  if (!v1::ComplaintState_IsValid(target) || target == v1::COMPLAINT_STATE_OPEN) {
    return absl::InvalidArgumentError("state: must be ACKNOWLEDGED, RESOLVED or unset");
  }
  if (!v1::ComplaintState_IsValid(request.expected_state())) {
    return absl::InvalidArgumentError("expected_state: unknown state");
  }
  if (absl::Status s = ValidateOptionalId("assignee_id", request.assignee_id()); !s.ok()) {
    return s;
  }
  if (absl::Status s = validation::ValidateText("note", request.note(), kMaxComplaintText);
      !s.ok()) {
    return s;
  }
  if (target == v1::COMPLAINT_STATE_RESOLVED) {
    if (absl::Status s = validation::ValidateText("resolution", request.resolution(),
                                                  kMaxComplaintText, /*required=*/true);
        !s.ok()) {
      return s;
    }
  } else if (!request.resolution().empty()) {
    return absl::InvalidArgumentError("resolution: set it only with state RESOLVED");
  }
  if (target == v1::COMPLAINT_STATE_UNSPECIFIED && request.assignee_id().empty() &&
      request.note().empty()) {
    return absl::InvalidArgumentError(
        "state, assignee_id, note: nothing to change; set at least one");
  }
  if (absl::Status s = validation::ValidateRequestId("request_id", request.request_id());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  const absl::Time now = clock_->Now();
  v1::ComplaintState before = v1::COMPLAINT_STATE_UNSPECIFIED;
  bool changed_state = false;
  FeedbackStore::Mutation mutate =
      [&](ComplaintRecord& record,
          bool seen) -> absl::StatusOr<std::optional<events::v1::Event>> {
    v1::Complaint& c = record.complaint;
    changed_state = false;
    if (seen) return std::nullopt;
    before = c.state();
    if (request.expected_state() != v1::COMPLAINT_STATE_UNSPECIFIED &&
        request.expected_state() != c.state()) {
      return absl::AbortedError(absl::StrCat(
          "expected_state: the complaint is now ",
          v1::ComplaintState_Name(c.state()), "; read it and retry"));
    }
    if (c.state() == v1::COMPLAINT_STATE_RESOLVED &&
        (target != v1::COMPLAINT_STATE_UNSPECIFIED ||
         (!request.assignee_id().empty() && request.assignee_id() != c.assignee_id()))) {
      return absl::FailedPreconditionError(
          "the complaint is RESOLVED; only a note may be added");
    }
    if (target != v1::COMPLAINT_STATE_UNSPECIFIED) {
      const bool allowed =
          (c.state() == v1::COMPLAINT_STATE_OPEN &&
           target == v1::COMPLAINT_STATE_ACKNOWLEDGED) ||
          (c.state() == v1::COMPLAINT_STATE_ACKNOWLEDGED &&
           target == v1::COMPLAINT_STATE_RESOLVED);
      if (!allowed) {
        return absl::FailedPreconditionError(absl::StrCat(
            "state: the complaint is ", v1::ComplaintState_Name(c.state()),
            "; it moves only OPEN -> ACKNOWLEDGED -> RESOLVED"));
      }
    }
    if (!request.note().empty() && c.notes_size() >= kMaxNotes) {
      return absl::FailedPreconditionError(
          absl::StrCat("note: the complaint already has ", kMaxNotes, " notes"));
    }
    const std::string assignee_before = c.assignee_id();
    if (!request.assignee_id().empty()) c.set_assignee_id(request.assignee_id());
    if (target == v1::COMPLAINT_STATE_ACKNOWLEDGED) {
      if (c.assignee_id().empty()) c.set_assignee_id(caller.id);
      protoutil::ToTimestamp(now, c.mutable_acknowledged_at());
    } else if (target == v1::COMPLAINT_STATE_RESOLVED) {
      c.set_resolution(request.resolution());
      protoutil::ToTimestamp(now, c.mutable_resolved_at());
    }
    if (!request.note().empty()) {
      v1::ComplaintNote* note = c.add_notes();
      note->set_author_id(caller.id);
      note->set_text(request.note());
      protoutil::ToTimestamp(now, note->mutable_created_at());
    }
    if (target == v1::COMPLAINT_STATE_UNSPECIFIED && request.note().empty() &&
        c.assignee_id() == assignee_before) {
      return std::nullopt;  // assigning the current assignee changes nothing
    }
    if (target != v1::COMPLAINT_STATE_UNSPECIFIED) {
      c.set_state(target);
      record.routing = RoutingAction::kCancel;
      changed_state = true;
    }
    protoutil::ToTimestamp(now, c.mutable_updated_at());

    events::v1::Event event;
    events::v1::ComplaintUpdated* e = event.mutable_complaint_updated();
    e->set_complaint_id(c.complaint_id());
    e->set_previous_state(before);
    e->set_state(c.state());
    e->set_actor_id(caller.id);
    e->set_assignee_id(c.assignee_id());
    e->set_note_added(!request.note().empty());
    protoutil::ToDuration(now - protoutil::FromTimestamp(c.filed_at()),
                          e->mutable_since_filed());
    e->set_category(c.category());
    e->set_reason(c.reason());
    if (absl::Status s = Sealed(event, c.complaint_id(), now); !s.ok()) return s;
    return event;
  };
  absl::StatusOr<ComplaintRecord> updated =
      store_->UpdateComplaint(request.complaint_id(), request.request_id(), mutate);
  if (absl::IsNotFound(updated.status())) {
    return absl::NotFoundError("complaint_id: no such complaint");
  }
  if (!updated.ok()) return updated.status();
  if (changed_state) {
    metrics_->complaints(before).Decrement();
    metrics_->complaints(updated->complaint.state()).Increment();
    Kick();
  }
  v1::UpdateComplaintResponse response;
  *response.mutable_complaint() = std::move(updated->complaint);
  return response;
}

absl::StatusOr<v1::GetComplaintResponse> Feedback::GetComplaint(
    const Caller& caller, const v1::GetComplaintRequest& request) {
  if (absl::Status s =
          validation::ValidateId("complaint_id", request.complaint_id(), kMaxIdBytes);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::optional<ComplaintRecord>> record =
      store_->GetComplaint(request.complaint_id());
  if (!record.ok()) return record.status();
  if (!record->has_value() ||
      (caller.role == Role::kCustomer && (*record)->complaint.customer_id() != caller.id)) {
    return absl::NotFoundError("complaint_id: no such complaint");
  }
  v1::GetComplaintResponse response;
  *response.mutable_complaint() = ComplaintView(caller, (*record)->complaint);
  return response;
}

absl::StatusOr<v1::ListComplaintsResponse> Feedback::ListComplaints(
    const Caller& caller, const v1::ListComplaintsRequest& request) {
  ComplaintFilter filter;
  if (request.states_size() > 3) {
    return absl::InvalidArgumentError("states: at most 3");
  }
  for (int s : request.states()) {
    if (s == v1::COMPLAINT_STATE_UNSPECIFIED || !v1::ComplaintState_IsValid(s)) {
      return absl::InvalidArgumentError("states: unknown state");
    }
    filter.states.push_back(static_cast<v1::ComplaintState>(s));
  }
  for (const auto& [field, id] :
       {std::pair<absl::string_view, const std::string&>{"customer_id", request.customer_id()},
        {"session_id", request.session_id()},
        {"assignee_id", request.assignee_id()}}) {
    if (absl::Status s = ValidateOptionalId(field, id); !s.ok()) return s;
  }
  filter.customer_id = request.customer_id();
  if (caller.role == Role::kCustomer) {
    if (!filter.customer_id.empty() && filter.customer_id != caller.id) {
      return absl::PermissionDeniedError(
          "ListComplaints: a customer may list their own complaints only");
    }
    filter.customer_id = caller.id;
  }
  filter.session_id = request.session_id();
  filter.assignee_id = request.assignee_id();
  if (!common::v1::Category_IsValid(request.category())) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  filter.category = request.category();
  if (request.has_filed_after()) {
    if (absl::Status s = ValidateTimestamp("filed_after", request.filed_after()); !s.ok()) {
      return s;
    }
  }
  if (request.has_filed_before()) {
    if (absl::Status s = ValidateTimestamp("filed_before", request.filed_before()); !s.ok()) {
      return s;
    }
  }
  filter.filed_after = TimeOrInfinite(request.has_filed_after(), request.filed_after(),
                                      absl::InfinitePast());
  filter.filed_before = TimeOrInfinite(request.has_filed_before(), request.filed_before(),
                                       absl::InfiniteFuture());
  if (!v1::ComplaintOrder_IsValid(request.order())) {
    return absl::InvalidArgumentError("order: unknown order");
  }
  filter.oldest_first = request.order() == v1::COMPLAINT_ORDER_OLDEST_FIRST;
  if (absl::Status s = ValidatePageSize(request.page_size(), kMaxListPage); !s.ok()) return s;
  const int page_size = request.page_size() == 0 ? kDefaultListPage : request.page_size();
  const char* kind = filter.oldest_first ? "co" : "cn";
  absl::StatusOr<ListCursor> cursor = DecodeCursor(kind, request.page_token(), "ListComplaints");
  if (!cursor.ok()) return cursor.status();

  absl::StatusOr<std::vector<ComplaintRecord>> rows =
      store_->ListComplaints(filter, *cursor, page_size + 1);
  if (!rows.ok()) return rows.status();
  const bool more = static_cast<int>(rows->size()) > page_size;
  if (more) rows->resize(page_size);
  v1::ListComplaintsResponse response;
  for (const ComplaintRecord& r : *rows) {
    *response.add_complaints() = ComplaintView(caller, r.complaint);
  }
  if (more) {
    const v1::Complaint& last = rows->back().complaint;
    response.set_next_page_token(
        EncodeCursor(kind, protoutil::FromTimestamp(last.filed_at()), last.complaint_id()));
  }
  return response;
}

absl::StatusOr<v1::GetSummaryResponse> Feedback::GetSummary(
    const Caller& caller, const v1::GetSummaryRequest& request) {
  if (absl::Status s = ValidateOptionalId("agent_id", request.agent_id()); !s.ok()) return s;
  if (caller.role == Role::kAgent && request.agent_id() != caller.id) {
    return absl::PermissionDeniedError(
        "GetSummary: an agent may read only their own figures (set agent_id to your id)");
  }
  if (!common::v1::Category_IsValid(request.category())) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (!common::v1::Channel_IsValid(request.channel())) {
    return absl::InvalidArgumentError("channel: unknown channel");
  }
  if (!v1::SummaryGrouping_IsValid(request.group_by())) {
    return absl::InvalidArgumentError("group_by: unknown grouping");
  }
  if (!request.has_start_time()) return absl::InvalidArgumentError("start_time: required");
  if (absl::Status s = ValidateTimestamp("start_time", request.start_time()); !s.ok()) return s;
  if (request.has_end_time()) {
    if (absl::Status s = ValidateTimestamp("end_time", request.end_time()); !s.ok()) return s;
  }
  SummaryQuery query;
  query.agent_id = request.agent_id();
  query.category = request.category();
  query.channel = request.channel();
  query.start = protoutil::FromTimestamp(request.start_time());
  query.end = request.has_end_time() ? protoutil::FromTimestamp(request.end_time())
                                     : clock_->Now();
  if (query.end <= query.start) {
    return absl::InvalidArgumentError("end_time: must be after start_time");
  }
  if (query.end - query.start > kMaxSummaryWindow) {
    return absl::InvalidArgumentError("end_time: the window may be at most 366 days");
  }
  query.group_by = request.group_by();
  if (absl::Status s = ValidatePageSize(request.page_size(), kMaxSummaryPage); !s.ok()) {
    return s;
  }
  query.page_size = request.page_size() == 0 ? kDefaultSummaryPage : request.page_size();
  if (!request.page_token().empty()) {
    std::string decoded;
    const std::string prefix = absl::StrCat("sum:", static_cast<int>(query.group_by), ":");
    if (query.group_by == v1::SUMMARY_GROUPING_UNSPECIFIED ||
        !absl::WebSafeBase64Unescape(request.page_token(), &decoded) ||
        !absl::StartsWith(decoded, prefix)) {
      return BadToken("GetSummary");
    }
    query.after_set = true;
    query.after_key = decoded.substr(prefix.size());
    int key = 0;
    if (query.group_by != v1::SUMMARY_GROUPING_AGENT && !absl::SimpleAtoi(query.after_key, &key)) {
      return BadToken("GetSummary");
    }
  }
  absl::StatusOr<SummaryPage> page = store_->Summarize(query);
  if (!page.ok()) return page.status();
  v1::GetSummaryResponse response;
  *response.mutable_total() = std::move(page->total);
  for (v1::SummaryGroup& g : page->groups) *response.add_groups() = std::move(g);
  if (page->more) {
    response.set_next_page_token(absl::WebSafeBase64Escape(
        absl::StrCat("sum:", static_cast<int>(query.group_by), ":", page->last_key)));
  }
  protoutil::ToTimestamp(query.start, response.mutable_start_time());
  protoutil::ToTimestamp(query.end, response.mutable_end_time());
  return response;
}

absl::StatusOr<int> Feedback::SyncRouting() {
  absl::StatusOr<std::vector<ComplaintRecord>> pending =
      store_->PendingRouting(options_.routing_batch);
  if (!pending.ok()) return pending.status();
  int delivered = 0;
  for (const ComplaintRecord& record : *pending) {
    const std::string& id = record.complaint.complaint_id();
    absl::Status s = record.routing == RoutingAction::kEnqueue
                         ? routing_->EnqueueComplaint(record.complaint)
                         : routing_->CancelComplaint(id);
    if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) ||
        absl::IsResourceExhausted(s) || absl::IsInternal(s) || absl::IsUnknown(s) ||
        absl::IsUnauthenticated(s) || absl::IsPermissionDenied(s)) {
      // Routing is down, overloaded or misconfigured: keep the mark, retry
      // on the next sweep.
      metrics_->routing_unavailable->Increment();
      log::Warning("routing_call_failed", {{"complaint_id", id}, {"error", s.ToString()}});
      break;
    }
    if (!s.ok()) {
      // Routing refuses this complaint for good (e.g. INVALID_ARGUMENT):
      // retrying cannot help, supervisors still see it in ListComplaints.
      log::Error("routing_refused_complaint", {{"complaint_id", id}, {"error", s.ToString()}});
    }
    if (absl::Status done = store_->RoutingDone(id, record.routing); !done.ok()) return done;
    ++delivered;
  }
  metrics_->routing_pending->Set(static_cast<double>(pending->size() - delivered));
  return delivered;
}

}  // namespace switchboard::feedback
