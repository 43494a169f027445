#include "services/sessions/sessions.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/auth/verification_token.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using common::v1::Category;
using common::v1::Channel;

constexpr char kProducer[] = "sessions";
constexpr size_t kMaxText = 4000;
constexpr int kMaxAttachments = 5;
constexpr int64_t kMaxAttachmentBytes = 26'214'400;
constexpr size_t kMaxSubject = 200;
constexpr size_t kMaxSummary = 2000;
constexpr size_t kMaxTransferNote = 1000;
constexpr size_t kMaxReason = 500;
constexpr size_t kMaxNote = 500;
constexpr size_t kMaxDisplayName = 128;
constexpr int kExcerptLines = 10;
constexpr size_t kExcerptChars = 500;
constexpr size_t kMaxRequestIds = 16;
constexpr char kSessionPageTokenPrefix[] = "sessions:";
constexpr char kMessagePageTokenPrefix[] = "messages:";

absl::Time Ts(const google::protobuf::Timestamp& t) { return protoutil::FromTimestamp(t); }
void SetTs(absl::Time t, google::protobuf::Timestamp* out) { protoutil::ToTimestamp(t, out); }

bool IsLanguageTag(absl::string_view tag) {
  if (tag.size() < 2 || tag.size() > 35) return false;
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return absl::ascii_isalpha(static_cast<unsigned char>(tag[0]));
}

bool IsLowerHex(absl::string_view s, size_t size) {
  if (s.size() != size) return false;
  for (char c : s) {
    if (!(absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool IsE164(absl::string_view number) {
  if (number.size() < 9 || number.size() > 16 || number[0] != '+') return false;
  for (char c : number.substr(1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return number[1] != '0';
}

absl::Status NotFound() { return absl::NotFoundError("session_id: no such session"); }

bool Open(v1::SessionState state) { return state != v1::SESSION_STATE_CLOSED; }

std::string StateName(v1::SessionState state) {
  return v1::SessionState_Name(state).substr(sizeof("SESSION_STATE_") - 1);
}

absl::Status WrongState(const SessionRecord& r, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("session is ", StateName(r.session.state()), ": ", what));
}

common::v1::SenderRole SenderFor(Role role) {
  return role == Role::kCustomer ? common::v1::SENDER_ROLE_CUSTOMER
                                 : common::v1::SENDER_ROLE_AGENT;
}

events::v1::Event Sealed(events::v1::Event event, const std::string& session_id,
                         absl::Time now) {
  events::Seal(event, kProducer, session_id, now).IgnoreError();
  return event;
}

std::string RoleWord(Role role) { return std::string(auth::RoleName(role)); }

}  // namespace

bool TransitionAllowed(v1::SessionState from, v1::SessionState to) {
  using S = v1::SessionState;
  switch (from) {
    case S::SESSION_STATE_BOT:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_RESOLVED ||
             to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_QUEUED:
      return to == S::SESSION_STATE_ASSIGNED || to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_ASSIGNED:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_BOT ||
             to == S::SESSION_STATE_RESOLVED || to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_RESOLVED:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_CLOSED;
    default:
      return false;
  }
}

absl::Status ValidateKey(absl::string_view field, absl::string_view key, bool required) {
  if (key.empty()) {
    return required ? absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"))
                    : absl::OkStatus();
  }
  if (key.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most 64 characters"));
  }
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only letters, digits, '-' and '_' are allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewMessage(absl::string_view field, const v1::NewMessage& message) {
  if (absl::Status s = validation::ValidateText(absl::StrCat(field, ".text"), message.text(),
                                                kMaxText);
      !s.ok()) {
    return s;
  }
  if (absl::StrContains(message.text(), '\r')) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".text: control characters other than tab and newline"));
  }
  if (message.text().empty() && message.attachments().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".text: must not be empty without attachments"));
  }
  if (message.attachments_size() > kMaxAttachments) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".attachments: at most ", kMaxAttachments));
  }
  static const char* const kTypes[] = {"image/png",       "image/jpeg", "image/gif",
                                       "image/webp",      "application/pdf",
                                       "text/plain",      "video/mp4"};
  for (const v1::Attachment& a : message.attachments()) {
    const std::string f = absl::StrCat(field, ".attachments");
    if (!a.attachment_id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(f, ".attachment_id: must be empty"));
    }
    if (absl::Status s = validation::ValidateText(absl::StrCat(f, ".file_name"),
                                                  a.file_name(), 255, /*required=*/true);
        !s.ok()) {
      return s;
    }
    if (absl::StrContains(a.file_name(), '/') || absl::StrContains(a.file_name(), '\\')) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".file_name: must not contain '/' or '\\'"));
    }
    if (std::none_of(std::begin(kTypes), std::end(kTypes),
                     [&](const char* t) { return a.content_type() == t; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ".content_type: must be one of image/png, image/jpeg, image/gif, "
             "image/webp, application/pdf, text/plain, video/mp4"));
    }
    if (a.size_bytes() < 1 || a.size_bytes() > kMaxAttachmentBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".size_bytes: must be 1 to ", kMaxAttachmentBytes));
    }
    if (!IsLowerHex(a.sha256(), 64)) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".sha256: must be 64 lower-case hex characters"));
    }
    if (a.storage_uri().size() > 2048 || !validation::IsValidUtf8(a.storage_uri()) ||
        !(absl::StartsWith(a.storage_uri(), "https://") ||
          absl::StartsWith(a.storage_uri(), "s3://"))) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ".storage_uri: must be an https:// or s3:// URI of at most 2048 characters"));
    }
  }
  if (!message.quick_reply_id().empty()) {
    if (absl::Status s = validation::ValidateId(absl::StrCat(field, ".quick_reply_id"),
                                                message.quick_reply_id(), 64);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

struct Sessions::Pending {
  absl::Notification done;
  absl::Status status;
};

Sessions::Sessions(SessionStore* store, Clock* clock, SessionsMetrics* metrics,
                   const auth::TokenCodec* tokens, BotClient* bot, RoutingClient* routing,
                   Executor background, SessionsOptions options)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      tokens_(tokens),
      bot_(bot),
      routing_(routing),
      background_(std::move(background)),
      options_(std::move(options)) {}

absl::Status Sessions::Load() {
  absl::StatusOr<SessionStore::Contents> contents = store_->Load();
  if (!contents.ok()) return contents.status();
  absl::MutexLock lock(&mu_);
  absl::MutexLock listeners_lock(&listeners_mu_);
  for (SessionRecord& r : contents->sessions) {
    const std::string id = r.session.session_id();
    committed_[id] = r.session.last_sequence();
    if (!r.create_request_id.empty()) {
      created_by_request_[absl::StrCat(r.session.customer_id(), "\n", r.create_request_id)] =
          id;
    }
    CountState(v1::SESSION_STATE_UNSPECIFIED, r.session.state());
    if (r.routing_pending && metrics_) metrics_->routing_pending->Increment();
    sessions_[id] = std::move(r);
  }
  for (auto& [session_id, stored] : contents->keyed_messages) {
    keyed_messages_[session_id][stored.message.client_message_id()] = std::move(stored);
  }
  return absl::OkStatus();
}

absl::Status Sessions::CheckWritable() const {
  if (store_failed_) {
    return absl::UnavailableError("sessions storage failed; the service must be restarted");
  }
  return absl::OkStatus();
}

std::shared_ptr<Sessions::Pending> Sessions::Commit(SessionWrite write) {
  auto pending = std::make_shared<Pending>();
  std::vector<v1::SessionEvent> published = write.session_events;
  store_->Apply(std::move(write), [this, pending, published = std::move(published)](
                                      absl::Status status) {
    if (status.ok()) {
      Publish(published);
    } else {
      log::Error("sessions_commit_failed", {{"detail", status.message()}});
      store_failed_ = true;
    }
    pending->status = status;
    pending->done.Notify();
  });
  return pending;
}

absl::Status Sessions::Wait(const std::shared_ptr<Pending>& pending) {
  pending->done.WaitForNotification();
  if (!pending->status.ok()) {
    return absl::UnavailableError("sessions storage failed; retry later");
  }
  return absl::OkStatus();
}

void Sessions::Publish(const std::vector<v1::SessionEvent>& events) {
  absl::MutexLock lock(&listeners_mu_);
  for (const v1::SessionEvent& event : events) {
    int64_t& committed = committed_[event.session_id()];
    committed = std::max(committed, event.sequence());
    auto it = listeners_.find(event.session_id());
    if (it == listeners_.end()) continue;
    for (SessionListener* listener : it->second) listener->OnEvent(event);
  }
}

void Sessions::CountState(v1::SessionState from, v1::SessionState to) {
  if (metrics_ == nullptr) return;
  if (from != v1::SESSION_STATE_UNSPECIFIED) metrics_->sessions(from).Decrement();
  if (to != v1::SESSION_STATE_UNSPECIFIED) metrics_->sessions(to).Increment();
}

absl::StatusOr<SessionRecord*> Sessions::Find(const Caller& caller,
                                              const std::string& session_id,
                                              bool past_agents) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (session_id.size() > 64 || !validation::IsValidUtf8(session_id)) return NotFound();
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return NotFound();
  SessionRecord& r = it->second;
  const v1::Session& s = r.session;
  switch (caller.role) {
    case Role::kCustomer:
      if (s.customer_id() != caller.id) return NotFound();
      break;
    case Role::kAgent: {
      if (s.assigned_agent_id() == caller.id) break;
      if (s.state() == v1::SESSION_STATE_QUEUED && s.offered_agent_id() == caller.id &&
          Ts(s.offer_expires_at()) > clock_->Now()) {
        break;
      }
      if (past_agents &&
          std::any_of(s.participants().begin(), s.participants().end(),
                      [&](const v1::Participant& p) {
                        return p.role() == common::v1::SENDER_ROLE_AGENT && p.id() == caller.id;
                      })) {
        break;
      }
      return NotFound();
    }
    case Role::kSupervisor:
    case Role::kService:
      break;
  }
  return &r;
}

v1::Session Sessions::ViewFor(const SessionRecord& record, const Caller& caller) const {
  v1::Session view = record.session;
  if (caller.role == Role::kCustomer) {
    view.clear_handoff();
    view.clear_transfer_note();
    view.clear_resolution_summary();
  }
  if (view.state() != v1::SESSION_STATE_QUEUED ||
      Ts(view.offer_expires_at()) <= clock_->Now()) {
    view.clear_offered_agent_id();
    view.clear_offer_expires_at();
  }
  return view;
}

v1::SessionEvent& Sessions::AddEvent(SessionRecord& record, absl::Time now,
                                     SessionWrite& write) {
  v1::Session& s = record.session;
  s.set_last_sequence(s.last_sequence() + 1);
  SetTs(now, s.mutable_updated_at());
  v1::SessionEvent& event = write.session_events.emplace_back();
  event.set_session_id(s.session_id());
  event.set_sequence(s.last_sequence());
  SetTs(now, event.mutable_occurred_at());
  return event;
}

absl::Status Sessions::Transition(SessionRecord& record, v1::SessionState to,
                                  v1::StateChangeReason reason, const std::string& actor,
                                  absl::Time now, SessionWrite& write) {
  v1::Session& s = record.session;
  const v1::SessionState from = s.state();
  if (from != v1::SESSION_STATE_UNSPECIFIED && !TransitionAllowed(from, to)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session is ", StateName(from), ": cannot move to ", StateName(to)));
  }
  s.set_state(to);
  record.state_since = now;
  record.bot_turn_sequence = 0;
  if (to != v1::SESSION_STATE_QUEUED) {
    s.clear_offered_agent_id();
    s.clear_offer_expires_at();
  }
  if (to == v1::SESSION_STATE_QUEUED) {
    SetTs(now, s.mutable_queued_at());
    if (record.first_queued_at == absl::InfinitePast()) record.first_queued_at = now;
  }
  CountState(from, to);
  v1::StateChange* change = AddEvent(record, now, write).mutable_state_changed();
  change->set_previous_state(from);
  change->set_state(to);
  change->set_reason(reason);
  change->set_actor_id(actor);
  change->set_category(s.category());
  if (to == v1::SESSION_STATE_ASSIGNED) {
    change->set_agent_id(s.assigned_agent_id());
    for (const v1::Participant& p : s.participants()) {
      if (p.id() == s.assigned_agent_id()) change->set_agent_display_name(p.display_name());
    }
  }
  if (to == v1::SESSION_STATE_CLOSED) change->set_close_reason(s.close_reason());
  return absl::OkStatus();
}

v1::Message& Sessions::AddMessage(SessionRecord& record, v1::Message message,
                                  absl::Time now, SessionWrite& write) {
  v1::Session& s = record.session;
  v1::SessionEvent& event = AddEvent(record, now, write);
  message.set_session_id(s.session_id());
  message.set_sequence(event.sequence());
  message.set_message_id(absl::StrCat("m", event.sequence()));
  SetTs(now, message.mutable_created_at());
  for (int i = 0; i < message.attachments_size(); ++i) {
    message.mutable_attachments(i)->set_attachment_id(
        absl::StrCat("a", event.sequence(), "-", i + 1));
  }
  s.set_message_count(s.message_count() + 1);
  SetTs(now, s.mutable_last_message_at());
  switch (message.sender_role()) {
    case common::v1::SENDER_ROLE_CUSTOMER: ++record.customer_messages; break;
    case common::v1::SENDER_ROLE_BOT: ++record.bot_messages; break;
    case common::v1::SENDER_ROLE_AGENT: ++record.agent_messages; break;
    default: break;
  }
  events::v1::Event out;
  events::v1::MessageSent* sent = out.mutable_message_sent();
  sent->set_session_id(s.session_id());
  sent->set_message_id(message.message_id());
  sent->set_sequence(message.sequence());
  sent->set_sender_role(message.sender_role());
  sent->set_sender_id(message.sender_id());
  sent->set_text_length(static_cast<int32_t>(validation::CountCodePoints(message.text())));
  sent->set_attachment_count(message.attachments_size());
  int64_t bytes = 0;
  for (const v1::Attachment& a : message.attachments()) bytes += a.size_bytes();
  sent->set_attachment_bytes(bytes);
  sent->set_quick_reply_id(message.quick_reply_id());
  sent->set_bot_intent_id(message.bot().intent_id());
  sent->set_bot_confidence(message.bot().confidence());
  sent->set_session_state(s.state());
  write.events.push_back(Sealed(std::move(out), s.session_id(), now));
  *event.mutable_message() = std::move(message);
  return *event.mutable_message();
}

void Sessions::SetRoutingPending(SessionRecord& record) {
  if (!record.routing_pending && metrics_) metrics_->routing_pending->Increment();
  record.routing_pending = true;
  ++record.routing_version;
}

void Sessions::QueueFor(SessionRecord& record, routing::v1::EnqueueReason reason,
                        absl::Time now) {
  const v1::Session& s = record.session;
  routing::v1::EnqueueSessionRequest& e = record.enqueue;
  e.Clear();
  e.set_session_id(s.session_id());
  e.set_customer_id(s.customer_id());
  e.set_channel(s.channel());
  e.set_category(s.category());
  e.set_language(s.language());
  e.set_reason(reason);
  if (s.has_handoff()) *e.mutable_handoff() = s.handoff();
  if (s.has_sla()) *e.mutable_first_response_due_at() = s.sla().due_at();
  SetRoutingPending(record);
}

absl::Status Sessions::EscalateLocked(SessionRecord& record,
                                      common::v1::HandoffContext handoff,
                                      std::vector<common::v1::TranscriptLine> excerpt,
                                      const std::string& actor, absl::Time now,
                                      SessionWrite& write) {
  v1::Session& s = record.session;
  if (handoff.category() == common::v1::CATEGORY_UNSPECIFIED ||
      !common::v1::Category_IsValid(handoff.category())) {
    handoff.set_category(s.category());
  }
  if (handoff.language().empty() || !IsLanguageTag(handoff.language())) {
    handoff.set_language(s.language());
  }
  handoff.clear_transcript_excerpt();
  const int skip = std::max(0, static_cast<int>(excerpt.size()) - kExcerptLines);
  for (size_t i = skip; i < excerpt.size(); ++i) {
    *handoff.add_transcript_excerpt() = std::move(excerpt[i]);
  }
  *handoff.mutable_verification() = s.verification();
  SetTs(now, handoff.mutable_escalated_at());
  const v1::SessionState from = s.state();
  const Category previous_category = s.category();
  s.set_category(handoff.category());
  *s.mutable_handoff() = handoff;
  if (absl::Status st = Transition(record, v1::SESSION_STATE_QUEUED,
                                   v1::STATE_CHANGE_REASON_ESCALATED, actor, now, write);
      !st.ok()) {
    s.set_category(previous_category);
    return st;
  }
  QueueFor(record, routing::v1::ENQUEUE_REASON_ESCALATED, now);

  events::v1::Event out;
  events::v1::SessionEscalated* e = out.mutable_session_escalated();
  e->set_session_id(s.session_id());
  e->set_previous_state(from);
  e->set_state(v1::SESSION_STATE_QUEUED);
  events::v1::HandoffSummary* h = e->mutable_handoff();
  h->set_reason(handoff.reason());
  *h->mutable_intent_guesses() = handoff.intent_guesses();
  h->set_category(handoff.category());
  h->set_language(handoff.language());
  for (const auto& d : handoff.collected_details()) h->add_collected_detail_keys(d.key());
  h->set_verification_required(handoff.verification_required());
  h->set_verification_level(s.verification().level());
  h->set_not_understood_turns(handoff.not_understood_turns());
  e->set_channel(s.channel());
  if (record.bot_since != absl::InfinitePast()) {
    protoutil::ToDuration(now - record.bot_since, e->mutable_bot_duration());
  }
  e->set_bot_turns(record.bot_turns);
  write.events.push_back(Sealed(std::move(out), s.session_id(), now));
  return absl::OkStatus();
}

absl::Status Sessions::CloseLocked(SessionRecord& record, v1::CloseReason reason,
                                   const std::string& actor, absl::Time now,
                                   SessionWrite& write) {
  v1::Session& s = record.session;
  const v1::SessionState from = s.state();
  s.set_close_reason(reason);
  if (absl::Status st = Transition(record, v1::SESSION_STATE_CLOSED,
                                   v1::STATE_CHANGE_REASON_CLOSED, actor, now, write);
      !st.ok()) {
    s.clear_close_reason();
    return st;
  }
  SetTs(now, s.mutable_closed_at());
  s.clear_assigned_agent_id();
  record.pending_callback_id.clear();
  if (from == v1::SESSION_STATE_QUEUED || from == v1::SESSION_STATE_ASSIGNED ||
      (from == v1::SESSION_STATE_RESOLVED && record.routing_pending)) {
    record.cancel_reason = reason == v1::CLOSE_REASON_CUSTOMER_LEFT
                               ? routing::v1::CANCEL_REASON_CUSTOMER_LEFT
                               : routing::v1::CANCEL_REASON_CLOSED;
    SetRoutingPending(record);
  }
  events::v1::Event out;
  events::v1::SessionClosed* e = out.mutable_session_closed();
  e->set_session_id(s.session_id());
  e->set_previous_state(from);
  e->set_state(v1::SESSION_STATE_CLOSED);
  e->set_reason(reason);
  e->set_actor_id(actor);
  e->set_channel(s.channel());
  e->set_category(s.category());
  protoutil::ToDuration(now - Ts(s.created_at()), e->mutable_session_duration());
  e->set_was_resolved(s.has_resolved_at());
  e->set_had_agent(s.has_first_assigned_at());
  write.events.push_back(Sealed(std::move(out), s.session_id(), now));
  return absl::OkStatus();
}

bool Sessions::BreachIfDue(SessionRecord& record, absl::Time now, SessionWrite& write) {
  v1::Session& s = record.session;
  if (!s.has_sla() || s.sla().breached() || s.has_first_human_response_at()) return false;
  if (Ts(s.sla().due_at()) >= now) return false;
  s.mutable_sla()->set_breached(true);
  SetTs(now, s.mutable_sla()->mutable_breached_at());
  SetTs(now, s.mutable_updated_at());
  if (metrics_) metrics_->sla_breach(s.channel(), s.category()).Increment();
  events::v1::Event out;
  events::v1::SlaBreached* e = out.mutable_sla_breached();
  e->set_session_id(s.session_id());
  e->set_channel(s.channel());
  e->set_category(s.category());
  *e->mutable_sla_target() = s.sla().target();
  *e->mutable_due_at() = s.sla().due_at();
  e->set_state(s.state());
  e->set_agent_id(s.assigned_agent_id());
  write.events.push_back(Sealed(std::move(out), s.session_id(), now));
  return true;
}

std::vector<common::v1::TranscriptLine> Sessions::Excerpt(const std::string& session_id) {
  std::vector<common::v1::TranscriptLine> lines;
  absl::StatusOr<std::vector<v1::Message>> messages =
      store_->ReadMessages(session_id, 0, 0, /*newest_first=*/true, kExcerptLines);
  if (!messages.ok()) {
    log::Error("excerpt_failed", {{"session_id", session_id},
                                  {"error", messages.status().ToString()}});
    return lines;
  }
  for (auto it = messages->rbegin(); it != messages->rend(); ++it) {
    common::v1::TranscriptLine& line = lines.emplace_back();
    line.set_sequence(it->sequence());
    line.set_sender_role(it->sender_role());
    *line.mutable_sent_at() = it->created_at();
    if (validation::CountCodePoints(it->text()) <= kExcerptChars) {
      line.set_text(it->text());
    } else {
      // Cut at a code point boundary.
      size_t bytes = 0;
      for (size_t points = 0; points < kExcerptChars - 1 && bytes < it->text().size();
           ++points) {
        const unsigned char c = it->text()[bytes];
        bytes += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      }
      line.set_text(absl::StrCat(it->text().substr(0, bytes), "…"));
    }
  }
  return lines;
}

absl::StatusOr<common::v1::VerificationState> Sessions::CheckVerification(
    const std::string& token, const std::string& customer_id,
    const std::string& session_id, absl::Time now) const {
  if (token.empty()) {
    return absl::InvalidArgumentError("verification_token: must not be empty");
  }
  if (token.size() > auth::TokenCodec::kMaxTokenBytes) {
    return absl::InvalidArgumentError("verification_token: at most 8 KiB");
  }
  absl::StatusOr<auth::VerificationClaims> claims =
      auth::VerifyVerificationToken(*tokens_, token, now);
  if (!claims.ok()) {
    if (absl::StrContains(claims.status().message(), "malformed")) {
      return absl::InvalidArgumentError("verification_token: malformed token");
    }
    return absl::PermissionDeniedError(
        absl::StrCat("verification_token: ", claims.status().message()));
  }
  if (claims->customer_id != customer_id) {
    return absl::PermissionDeniedError(
        "verification_token: issued to another customer");
  }
  if (!claims->session_id.empty() && claims->session_id != session_id) {
    return absl::PermissionDeniedError(
        "verification_token: bound to another session");
  }
  common::v1::VerificationState state;
  if (claims->method == "email_otp") {
    state.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  } else if (claims->method == "sms_otp") {
    state.set_method(common::v1::VERIFICATION_METHOD_SMS_OTP);
  } else {
    state.set_method(common::v1::VERIFICATION_METHOD_TOTP);
  }
  state.set_level(static_cast<common::v1::VerificationLevel>(claims->level));
  SetTs(claims->issued_at, state.mutable_verified_at());
  SetTs(claims->expires_at, state.mutable_expires_at());
  return state;
}

bool Sessions::SeenRequest(const SessionRecord& record, const std::string& request_id) {
  return !request_id.empty() && std::find(record.request_ids.begin(), record.request_ids.end(),
                                          request_id) != record.request_ids.end();
}

void Sessions::RememberRequest(SessionRecord& record, const std::string& request_id) {
  if (request_id.empty()) return;
  record.request_ids.push_back(request_id);
  while (record.request_ids.size() > kMaxRequestIds) record.request_ids.pop_front();
}

void Sessions::NotifyAccess(const std::string& session_id) {
  absl::MutexLock lock(&listeners_mu_);
  auto it = listeners_.find(session_id);
  if (it == listeners_.end()) return;
  for (SessionListener* listener : it->second) listener->OnAccessMaybeLost();
}

void Sessions::ScheduleRouting(const std::string& session_id) {
  background_([this, session_id] { SyncRouting(session_id); });
}

namespace {

absl::Status ValidateCallbackDetails(absl::string_view field, const v1::CallbackDetails& d,
                                     absl::Time now) {
  if (!IsE164(d.phone_number())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".phone_number: must be E.164, '+' and 8 to 15 digits"));
  }
  if (!d.has_window_end()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".window_end: required"));
  }
  const absl::Time start = d.has_window_start() ? Ts(d.window_start()) : now;
  const absl::Time end = Ts(d.window_end());
  if (end <= now) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".window_end: in the past"));
  }
  if (end > now + absl::Hours(24 * 14)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".window_end: at most 14 days ahead"));
  }
  if (end - start < absl::Minutes(15)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".window_end: the window must be at least 15 minutes long"));
  }
  return validation::ValidateText(absl::StrCat(field, ".note"), d.note(), kMaxNote);
}

}  // namespace

absl::StatusOr<Sessions::Created> Sessions::Create(const Caller& caller,
                                                   const v1::CreateSessionRequest& request) {
  std::string customer_id = request.customer_id();
  if (caller.role == Role::kCustomer) {
    if (!customer_id.empty() && customer_id != caller.id) {
      return absl::PermissionDeniedError(
          "customer_id: a customer may open sessions for themselves only");
    }
    customer_id = caller.id;
  }
  // Customer ids travel to routing and into events: the id rules apply to
  // token subjects too.
  if (absl::Status s = validation::ValidateId("customer_id", customer_id); !s.ok()) {
    return s;
  }
  const Channel channel = request.channel();
  if (channel == common::v1::CHANNEL_UNSPECIFIED || !common::v1::Channel_IsValid(channel)) {
    return absl::InvalidArgumentError("channel: must be CHAT, EMAIL, PHONE or SOCIAL");
  }
  Category category = request.category();
  if (!common::v1::Category_IsValid(category)) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (category == common::v1::CATEGORY_UNSPECIFIED) {
    if (channel == common::v1::CHANNEL_EMAIL || channel == common::v1::CHANNEL_PHONE) {
      return absl::InvalidArgumentError("category: required for EMAIL and PHONE sessions");
    }
    category = common::v1::CATEGORY_GENERAL;
  }
  const std::string language = request.language().empty() ? "en" : request.language();
  if (!IsLanguageTag(language)) {
    return absl::InvalidArgumentError(
        "language: must be a BCP 47 tag such as en or zh-CN");
  }
  if (absl::Status s = validation::ValidateText("subject", request.subject(), kMaxSubject,
                                                channel == common::v1::CHANNEL_EMAIL);
      !s.ok()) {
    return s;
  }
  const bool has_first = request.has_first_message() && channel != common::v1::CHANNEL_PHONE;
  if (channel == common::v1::CHANNEL_EMAIL && !has_first) {
    return absl::InvalidArgumentError("first_message: required for EMAIL sessions");
  }
  if (has_first) {
    if (absl::Status s = ValidateNewMessage("first_message", request.first_message());
        !s.ok()) {
      return s;
    }
    if (!request.first_message().quick_reply_id().empty()) {
      return absl::InvalidArgumentError(
          "first_message.quick_reply_id: no quick reply was offered yet");
    }
  }
  if (channel == common::v1::CHANNEL_SOCIAL) {
    const int network = request.social().network();
    if (network == v1::SOCIAL_NETWORK_UNSPECIFIED || !v1::SocialNetwork_IsValid(network)) {
      return absl::InvalidArgumentError("social.network: required for SOCIAL sessions");
    }
    if (absl::Status s = validation::ValidateText(
            "social.external_thread_id", request.social().external_thread_id(), 256);
        !s.ok()) {
      return s;
    }
  } else if (request.has_social()) {
    return absl::InvalidArgumentError("social: only for SOCIAL sessions");
  }
  if (channel != common::v1::CHANNEL_PHONE && request.has_callback()) {
    return absl::InvalidArgumentError("callback: only for PHONE sessions");
  }
  if (absl::Status s = ValidateKey("request_id", request.request_id(), false); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ValidateKey("first_client_message_id", request.first_client_message_id(), false);
      !s.ok()) {
    return s;
  }
  const absl::Time now = clock_->Now();
  std::optional<common::v1::VerificationState> verification;
  if (channel == common::v1::CHANNEL_PHONE) {
    if (!request.has_callback()) {
      return absl::InvalidArgumentError("callback: required for PHONE sessions");
    }
    if (absl::Status s = ValidateCallbackDetails("callback", request.callback(), now);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<common::v1::VerificationState> v =
        CheckVerification(request.callback().verification_token(), customer_id, "", now);
    if (!v.ok()) {
      return absl::Status(v.status().code(), absl::StrCat("callback.", v.status().message()));
    }
    verification = *v;
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;

  std::shared_ptr<Pending> pending;
  Created created;
  std::string session_id;
  bool bot_turn = false;
  bool routing = false;
  {
    absl::MutexLock lock(&mu_);
    const std::string request_key = absl::StrCat(customer_id, "\n", request.request_id());
    if (!request.request_id().empty()) {
      auto it = created_by_request_.find(request_key);
      if (it != created_by_request_.end()) {
        const SessionRecord& r = sessions_.at(it->second);
        created.session = ViewFor(r, caller);
        created.replayed = true;
        auto keyed = keyed_messages_.find(it->second);
        if (keyed != keyed_messages_.end() && !request.first_client_message_id().empty()) {
          auto m = keyed->second.find(request.first_client_message_id());
          if (m != keyed->second.end()) created.first_message = m->second.message;
        }
        return created;
      }
    }
    int open = 0;
    for (const auto& [id, r] : sessions_) {
      if (r.session.customer_id() == customer_id && Open(r.session.state())) ++open;
    }
    if (open >= options_.max_open_sessions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the customer has ", open, " open sessions; close one first"));
    }
    auto& [window, count] = create_rate_[customer_id];
    if (now - window >= absl::Minutes(1)) {
      window = now;
      count = 0;
    }
    if (++count > options_.max_creations_per_minute) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "more than ", options_.max_creations_per_minute,
          " sessions opened in a minute; try again shortly"));
    }
    session_id = absl::StrCat("s-", events::RandomUuid());
    SessionRecord& r = sessions_[session_id];
    r.create_request_id = request.request_id();
    v1::Session& s = r.session;
    s.set_session_id(session_id);
    s.set_customer_id(customer_id);
    s.set_channel(channel);
    s.set_category(category);
    s.set_language(language);
    s.set_subject(request.subject());
    if (request.has_social()) *s.mutable_social() = request.social();
    SetTs(now, s.mutable_created_at());
    v1::Participant* customer = s.add_participants();
    customer->set_role(common::v1::SENDER_ROLE_CUSTOMER);
    customer->set_id(customer_id);
    SetTs(now, customer->mutable_joined_at());
    const bool has_bot =
        channel == common::v1::CHANNEL_CHAT || channel == common::v1::CHANNEL_SOCIAL;
    SessionWrite write;
    if (verification) *s.mutable_verification() = *verification;
    if (channel == common::v1::CHANNEL_EMAIL) {
      auto override_it = options_.email_sla_by_category.find(category);
      const absl::Duration target = override_it != options_.email_sla_by_category.end()
                                        ? override_it->second
                                        : options_.email_sla;
      protoutil::ToDuration(target, s.mutable_sla()->mutable_target());
      SetTs(now + target, s.mutable_sla()->mutable_due_at());
    }
    if (channel == common::v1::CHANNEL_PHONE) {
      v1::CallbackRequest* cb = s.mutable_callback();
      cb->set_callback_id(absl::StrCat("cb-", events::RandomUuid()));
      cb->set_phone_session_id(session_id);
      cb->set_phone_number(request.callback().phone_number());
      if (request.callback().has_window_start()) {
        *cb->mutable_window_start() = request.callback().window_start();
      }
      *cb->mutable_window_end() = request.callback().window_end();
      cb->set_note(request.callback().note());
      SetTs(now, cb->mutable_requested_at());
    }
    if (has_bot) {
      r.bot_since = now;
    } else {
      common::v1::HandoffContext* h = s.mutable_handoff();
      h->set_reason(common::v1::ESCALATION_REASON_CHANNEL_WITHOUT_BOT);
      h->set_category(category);
      h->set_language(language);
      *h->mutable_verification() = s.verification();
      SetTs(now, h->mutable_escalated_at());
    }
    Transition(r, has_bot ? v1::SESSION_STATE_BOT : v1::SESSION_STATE_QUEUED,
               v1::STATE_CHANGE_REASON_CREATED, customer_id, now, write)
        .IgnoreError();
    if (!has_bot) {
      QueueFor(r, channel == common::v1::CHANNEL_PHONE ? routing::v1::ENQUEUE_REASON_CALLBACK
                                                       : routing::v1::ENQUEUE_REASON_NEW_SESSION,
               now);
      routing = true;
    }
    events::v1::Event out;
    events::v1::SessionCreated* e = out.mutable_session_created();
    e->set_session_id(session_id);
    e->set_customer_id(customer_id);
    e->set_channel(channel);
    e->set_category(category);
    e->set_language(language);
    e->set_social_network(s.social().network());
    e->set_state(s.state());
    if (s.has_sla()) {
      *e->mutable_sla_target() = s.sla().target();
      *e->mutable_first_response_due_at() = s.sla().due_at();
    }
    write.events.push_back(Sealed(std::move(out), session_id, now));
    if (has_first) {
      v1::Message message;
      message.set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
      message.set_sender_id(customer_id);
      message.set_text(request.first_message().text());
      *message.mutable_attachments() = request.first_message().attachments();
      message.set_client_message_id(request.first_client_message_id());
      v1::Message& stored = AddMessage(r, std::move(message), now, write);
      created.first_message = stored;
      if (!stored.client_message_id().empty()) {
        const std::string fingerprint = request.first_message().SerializeAsString();
        keyed_messages_[session_id][stored.client_message_id()] = {stored, fingerprint};
        write.fingerprints.push_back({stored.message_id(), fingerprint});
      }
      bot_turn = has_bot;
      if (bot_turn) r.bot_turn_sequence = stored.sequence();
    }
    if (!request.request_id().empty()) created_by_request_[request_key] = session_id;
    created.session = ViewFor(r, caller);
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (bot_turn) {
    v1::Message message = *created.first_message;
    background_([this, message] { RunBotTurn(message); });
  }
  if (routing) ScheduleRouting(session_id);
  return created;
}

absl::StatusOr<v1::Session> Sessions::Get(const Caller& caller,
                                          const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> r = Find(caller, session_id);
  if (!r.ok()) return r.status();
  return ViewFor(**r, caller);
}

absl::StatusOr<Sessions::SessionPage> Sessions::List(const Caller& caller,
                                                     ListFilter filter, int page_size,
                                                     const std::string& page_token) {
  if (caller.role == Role::kCustomer) {
    if (!filter.customer_id.empty() && filter.customer_id != caller.id) {
      return absl::PermissionDeniedError("customer_id: customers list their own sessions only");
    }
    filter.customer_id = caller.id;
  }
  if (caller.role == Role::kAgent) {
    if (!filter.agent_id.empty() && filter.agent_id != caller.id) {
      return absl::PermissionDeniedError("agent_id: agents list their own sessions only");
    }
    filter.agent_id = caller.id;
  }
  if (filter.states.size() > 5) {
    return absl::InvalidArgumentError("states: at most 5");
  }
  for (v1::SessionState state : filter.states) {
    if (state == v1::SESSION_STATE_UNSPECIFIED || !v1::SessionState_IsValid(state)) {
      return absl::InvalidArgumentError("states: unknown state");
    }
  }
  if (!common::v1::Category_IsValid(filter.category)) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (!common::v1::Channel_IsValid(filter.channel)) {
    return absl::InvalidArgumentError("channel: unknown channel");
  }
  if (page_size < 0 || page_size > 200) {
    return absl::InvalidArgumentError("page_size: must be 0 to 200");
  }
  if (page_size == 0) page_size = 50;
  // The cursor: the last session returned, as (created_at, session_id).
  std::optional<std::pair<int64_t, std::string>> cursor;
  if (!page_token.empty()) {
    std::string decoded;
    std::vector<std::string> parts;
    int64_t micros = 0;
    if (absl::WebSafeBase64Unescape(page_token, &decoded) &&
        absl::StartsWith(decoded, kSessionPageTokenPrefix)) {
      parts = absl::StrSplit(decoded.substr(sizeof(kSessionPageTokenPrefix) - 1),
                             absl::MaxSplits(' ', 1));
    }
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros)) {
      return absl::InvalidArgumentError(
          "page_token: not a token from a previous ListSessions response");
    }
    cursor = {micros, parts[1]};
  }
  std::vector<std::tuple<int64_t, std::string, const SessionRecord*>> matches;
  SessionPage page;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, r] : sessions_) {
    const v1::Session& s = r.session;
    if (!filter.customer_id.empty() && s.customer_id() != filter.customer_id) continue;
    if (!filter.agent_id.empty() && s.assigned_agent_id() != filter.agent_id) continue;
    if (!filter.states.empty() &&
        std::find(filter.states.begin(), filter.states.end(), s.state()) ==
            filter.states.end()) {
      continue;
    }
    if (filter.category != common::v1::CATEGORY_UNSPECIFIED && s.category() != filter.category)
      continue;
    if (filter.channel != common::v1::CHANNEL_UNSPECIFIED && s.channel() != filter.channel)
      continue;
    const absl::Time created = Ts(s.created_at());
    if (created < filter.created_after || created >= filter.created_before) continue;
    const int64_t micros = absl::ToUnixMicros(created);
    if (cursor && std::make_pair(micros, id) >= *cursor) continue;
    matches.emplace_back(micros, id, &r);
  }
  std::sort(matches.begin(), matches.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) > std::tie(std::get<0>(b), std::get<1>(b));
  });
  for (size_t i = 0; i < matches.size() && static_cast<int>(i) < page_size; ++i) {
    page.sessions.push_back(ViewFor(*std::get<2>(matches[i]), caller));
  }
  if (static_cast<int>(matches.size()) > page_size) {
    const auto& last = matches[page_size - 1];
    page.next_page_token = absl::WebSafeBase64Escape(absl::StrCat(
        kSessionPageTokenPrefix, std::get<0>(last), " ", std::get<1>(last)));
  }
  return page;
}

absl::StatusOr<Sessions::Sent> Sessions::SendMessage(const Caller& caller,
                                                     const std::string& session_id,
                                                     const std::string& client_message_id,
                                                     const v1::NewMessage& message) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (absl::Status s = ValidateKey("client_message_id", client_message_id, true); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateNewMessage("message", message); !s.ok()) return s;
  if (!message.quick_reply_id().empty() && caller.role != Role::kCustomer) {
    return absl::InvalidArgumentError("message.quick_reply_id: customers only");
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  const std::string fingerprint = message.SerializeAsString();
  Sent sent;
  std::shared_ptr<Pending> pending;
  bool bot_turn = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    auto& keyed = keyed_messages_[session_id];
    if (auto it = keyed.find(client_message_id); it != keyed.end()) {
      if (it->second.fingerprint != fingerprint ||
          it->second.message.sender_id() != caller.id) {
        return absl::AlreadyExistsError(
            "client_message_id: already used in this session for a different message");
      }
      sent.message = it->second.message;
      sent.replayed = true;
      sent.state = s.state();
      return sent;
    }
    const v1::SessionState state = s.state();
    if (caller.role == Role::kCustomer) {
      if (state != v1::SESSION_STATE_BOT && state != v1::SESSION_STATE_QUEUED &&
          state != v1::SESSION_STATE_ASSIGNED) {
        return WrongState(r, state == v1::SESSION_STATE_RESOLVED
                                 ? "call ReopenSession to write again"
                                 : "it accepts no messages");
      }
    } else if (state != v1::SESSION_STATE_ASSIGNED ||
               (caller.role == Role::kAgent && s.assigned_agent_id() != caller.id)) {
      return WrongState(r, "only the assigned agent or a supervisor may write, while ASSIGNED");
    }
    if (s.message_count() >= options_.max_messages) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the session has ", options_.max_messages, " messages; open a new one"));
    }
    auto& [window, count] = send_rate_[absl::StrCat(session_id, "\n", caller.id)];
    if (now - window >= absl::Seconds(1)) {
      window = now;
      count = 0;
    }
    if (++count > options_.max_messages_per_second) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "more than ", options_.max_messages_per_second, " messages per second; slow down"));
    }
    SessionWrite write;
    v1::Message m;
    m.set_sender_role(SenderFor(caller.role));
    m.set_sender_id(caller.id);
    m.set_text(message.text());
    *m.mutable_attachments() = message.attachments();
    m.set_quick_reply_id(message.quick_reply_id());
    m.set_client_message_id(client_message_id);
    const v1::Message& stored = AddMessage(r, std::move(m), now, write);
    sent.message = stored;
    sent.state = s.state();
    keyed[client_message_id] = {stored, fingerprint};
    write.fingerprints.push_back({stored.message_id(), fingerprint});
    if (caller.role != Role::kCustomer && !s.has_first_human_response_at()) {
      SetTs(now, s.mutable_first_human_response_at());
      const absl::Time created = Ts(s.created_at());
      if (metrics_) {
        metrics_->first_response(s.channel(), s.category())
            .Observe(absl::ToDoubleSeconds(now - created));
      }
      const bool within = !s.has_sla() || now <= Ts(s.sla().due_at());
      if (!within) BreachIfDue(r, now, write);
      events::v1::Event out;
      events::v1::FirstResponseRecorded* e = out.mutable_first_response_recorded();
      e->set_session_id(session_id);
      e->set_agent_id(caller.id);
      e->set_message_id(stored.message_id());
      e->set_channel(s.channel());
      e->set_category(s.category());
      protoutil::ToDuration(now - created, e->mutable_since_created());
      if (r.first_queued_at != absl::InfinitePast()) {
        protoutil::ToDuration(now - r.first_queued_at, e->mutable_since_queued());
      }
      e->set_within_sla(within);
      write.events.push_back(Sealed(std::move(out), session_id, now));
    }
    bot_turn = caller.role == Role::kCustomer && state == v1::SESSION_STATE_BOT;
    if (bot_turn) r.bot_turn_sequence = stored.sequence();
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (bot_turn) {
    v1::Message message_copy = sent.message;
    background_([this, message_copy] { RunBotTurn(message_copy); });
  }
  return sent;
}

void Sessions::RunBotTurn(const v1::Message& message) {
  const std::string session_id = message.session_id();
  {
    absl::MutexLock lock(&mu_);
    auto [it, first] = bot_turns_.try_emplace(session_id);
    if (!first) {
      it->second.push_back(message);
      return;
    }
  }
  v1::Message next = message;
  while (true) {
    BotTurn(next);
    absl::MutexLock lock(&mu_);
    auto it = bot_turns_.find(session_id);
    if (it->second.empty()) {
      bot_turns_.erase(it);
      return;
    }
    next = std::move(it->second.front());
    it->second.pop_front();
  }
}

void Sessions::BotTurn(const v1::Message& message) {
  const std::string& session_id = message.session_id();
  bot::v1::AnswerRequest request;
  absl::Time bot_since;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.session.state() != v1::SESSION_STATE_BOT) return;
    const v1::Session& s = it->second.session;
    bot_since = it->second.bot_since;
    request.set_session_id(session_id);
    request.set_turn_id(message.message_id());
    request.set_text(message.text());
    request.set_quick_reply_id(message.quick_reply_id());
    request.set_language(s.language());
    request.set_category(s.category());
    request.set_channel(s.channel());
    *request.mutable_verification() = s.verification();
  }
  const absl::Time started = clock_->Now();
  absl::StatusOr<bot::v1::AnswerResponse> answer =
      bot_ == nullptr ? absl::UnavailableError("bot not configured") : bot_->Answer(request);
  if (!answer.ok()) {
    log::Warning("bot_unavailable", {{"session_id", session_id},
                                  {"error", answer.status().ToString()}});
  }
  std::vector<common::v1::TranscriptLine> excerpt;
  const bool escalates =
      !answer.ok() || answer->outcome() == bot::v1::ANSWER_OUTCOME_ESCALATED;
  if (escalates) excerpt = Excerpt(session_id);
  if (CheckWritable().ok() == false) return;
  std::shared_ptr<Pending> pending;
  bool escalated = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    SessionRecord& r = it->second;
    v1::Session& s = r.session;
    const absl::Time now = clock_->Now();
    if (metrics_) {
      metrics_->bot_turn(s.channel(), s.category())
          .Observe(absl::ToDoubleSeconds(now - started));
    }
    // Once a session left the bot (or came back to it since), this turn's
    // answer is stale: the bot stays out.
    if (s.state() != v1::SESSION_STATE_BOT || r.bot_since != bot_since) return;
    SessionWrite write;
    if (r.bot_turn_sequence == message.sequence()) r.bot_turn_sequence = 0;
    common::v1::HandoffContext handoff;
    if (!answer.ok()) {
      if (metrics_) metrics_->bot_unavailable->Increment();
      handoff.set_reason(common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
    } else {
      ++r.bot_turns;
      if (metrics_) {
        switch (answer->outcome()) {
          case bot::v1::ANSWER_OUTCOME_ANSWERED: metrics_->bot_answered->Increment(); break;
          case bot::v1::ANSWER_OUTCOME_CLARIFIED: metrics_->bot_clarified->Increment(); break;
          case bot::v1::ANSWER_OUTCOME_NOT_UNDERSTOOD:
            metrics_->bot_not_understood->Increment();
            break;
          case bot::v1::ANSWER_OUTCOME_ESCALATED: metrics_->bot_escalated->Increment(); break;
          default: break;
        }
      }
      if (!answer->reply_text().empty() &&
          validation::ValidateText("reply_text", answer->reply_text(), kMaxText).ok()) {
        v1::Message reply;
        reply.set_sender_role(common::v1::SENDER_ROLE_BOT);
        reply.set_sender_id("bot");
        reply.set_text(answer->reply_text());
        for (int i = 0; i < answer->quick_replies_size() && i < 6; ++i) {
          *reply.add_quick_replies() = answer->quick_replies(i);
        }
        reply.mutable_bot()->set_intent_id(answer->answered_intent_id());
        if (!answer->intent_guesses().empty()) {
          reply.mutable_bot()->set_confidence(answer->intent_guesses(0).confidence());
        }
        reply.mutable_bot()->set_knowledge_base_version(answer->knowledge_base_version());
        AddMessage(r, std::move(reply), now, write);
      }
      if (escalates) {
        handoff = answer->handoff();
        if (handoff.reason() == common::v1::ESCALATION_REASON_UNSPECIFIED) {
          handoff.set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
        }
        if (handoff.intent_guesses().empty()) {
          *handoff.mutable_intent_guesses() = answer->intent_guesses();
        }
        if (handoff.category() == common::v1::CATEGORY_UNSPECIFIED) {
          handoff.set_category(answer->category());
        }
        if (handoff.language().empty()) handoff.set_language(answer->detected_language());
        if (handoff.not_understood_turns() == 0) {
          handoff.set_not_understood_turns(answer->not_understood_turns());
        }
        handoff.set_verification_required(handoff.verification_required() ||
                                          answer->verification_required());
      }
    }
    if (escalates) {
      escalated = EscalateLocked(r, std::move(handoff), std::move(excerpt), "bot", now, write)
                      .ok();
    }
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  if (!Wait(pending).ok()) return;
  if (escalated) SyncRouting(session_id);
}

void Sessions::ResumeBotTurns() {
  std::vector<std::pair<std::string, int64_t>> turns;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : sessions_) {
      if (r.session.state() == v1::SESSION_STATE_BOT && r.bot_turn_sequence > 0) {
        turns.emplace_back(id, r.bot_turn_sequence);
      }
    }
  }
  for (const auto& [id, sequence] : turns) {
    absl::StatusOr<std::vector<v1::SessionEvent>> events =
        store_->ReadEvents(id, sequence - 1, sequence, 1);
    if (!events.ok() || events->empty() || !(*events)[0].has_message()) {
      log::Error("bot_turn_resume_failed", {{"session_id", id}});
      continue;
    }
    log::Info("bot_turn_resumed", {{"session_id", id}});
    RunBotTurn((*events)[0].message());
  }
}

absl::StatusOr<Sessions::MessagePage> Sessions::ListMessages(
    const Caller& caller, const std::string& session_id, int64_t after, int64_t before,
    bool newest_first, int page_size, const std::string& page_token) {
  if (after < 0) return absl::InvalidArgumentError("after_sequence: must not be negative");
  if (before < 0) return absl::InvalidArgumentError("before_sequence: must not be negative");
  if (page_size < 0 || page_size > 500) {
    return absl::InvalidArgumentError("page_size: must be 0 to 500");
  }
  if (page_size == 0) page_size = 100;
  if (!page_token.empty()) {
    std::string decoded;
    int64_t last = 0;
    if (!absl::WebSafeBase64Unescape(page_token, &decoded) ||
        !absl::StartsWith(decoded, kMessagePageTokenPrefix) ||
        !absl::SimpleAtoi(decoded.substr(sizeof(kMessagePageTokenPrefix) - 1), &last) ||
        last < 0) {
      return absl::InvalidArgumentError(
          "page_token: not a token from a previous ListMessages response");
    }
    if (newest_first) {
      before = before == 0 ? last : std::min(before, last);
    } else {
      after = std::max(after, last);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
  }
  MessagePage page;
  {
    absl::MutexLock lock(&listeners_mu_);
    page.last_sequence = committed_[session_id];
  }
  absl::StatusOr<std::vector<v1::Message>> messages =
      store_->ReadMessages(session_id, after, before, newest_first, page_size + 1);
  if (!messages.ok()) return messages.status();
  if (static_cast<int>(messages->size()) > page_size) {
    messages->resize(page_size);
    page.next_page_token = absl::WebSafeBase64Escape(
        absl::StrCat(kMessagePageTokenPrefix, messages->back().sequence()));
  }
  page.messages = std::move(*messages);
  return page;
}

absl::StatusOr<int64_t> Sessions::Subscribe(const Caller& caller,
                                            const std::string& session_id, int64_t after,
                                            SessionListener* listener) {
  if (after < 0) return absl::InvalidArgumentError("after_sequence: must not be negative");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
  if (!found.ok()) return found.status();
  absl::MutexLock listeners_lock(&listeners_mu_);
  const int64_t committed = committed_[session_id];
  if (after > committed) {
    return absl::OutOfRangeError(absl::StrCat(
        "after_sequence: above the session's last sequence ", committed));
  }
  listeners_[session_id].insert(listener);
  return committed;
}

void Sessions::Unsubscribe(const std::string& session_id, SessionListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  auto it = listeners_.find(session_id);
  if (it == listeners_.end()) return;
  it->second.erase(listener);
  if (it->second.empty()) listeners_.erase(it);
}

absl::StatusOr<std::vector<v1::SessionEvent>> Sessions::ReadEvents(
    const std::string& session_id, int64_t after, int64_t up_to, int limit) {
  return store_->ReadEvents(session_id, after, up_to, limit);
}

bool Sessions::StillParticipates(const Caller& caller, const v1::SessionEvent& event) {
  if (!event.has_state_changed()) return true;
  if (event.state_changed().state() == v1::SESSION_STATE_CLOSED) return false;
  if (caller.role != Role::kAgent) return true;
  return event.state_changed().agent_id() == caller.id;
}

absl::StatusOr<absl::Time> Sessions::UpdateTyping(const Caller& caller,
                                                  const std::string& session_id,
                                                  bool typing) {
  const absl::Time now = clock_->Now();
  v1::TypingIndication indication;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    const v1::Session& s = (*found)->session;
    if (s.state() == v1::SESSION_STATE_CLOSED) return WrongState(**found, "no typing");
    if (caller.role == Role::kAgent && s.assigned_agent_id() != caller.id) {
      return absl::FailedPreconditionError("only the assigned agent may type");
    }
    absl::Time& last = typing_sent_[absl::StrCat(session_id, "\n", caller.id)];
    // Starts are forwarded at most once a second; stops always.
    if (typing && now - last < absl::Seconds(1)) return now + options_.typing_ttl;
    last = typing ? now : absl::InfinitePast();
    indication.set_role(SenderFor(caller.role));
    indication.set_participant_id(caller.id);
    indication.set_typing(typing);
    SetTs(now + options_.typing_ttl, indication.mutable_expires_at());
  }
  absl::MutexLock lock(&listeners_mu_);
  auto it = listeners_.find(session_id);
  if (it != listeners_.end()) {
    for (SessionListener* listener : it->second) listener->OnTyping(indication);
  }
  return now + options_.typing_ttl;
}

absl::StatusOr<Sessions::Verified> Sessions::AttachVerification(
    const Caller& caller, const std::string& session_id, const std::string& token) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  Verified verified;
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    absl::StatusOr<common::v1::VerificationState> v =
        CheckVerification(token, r.session.customer_id(), session_id, now);
    if (!v.ok()) return v.status();
    if (r.session.state() == v1::SESSION_STATE_CLOSED) return WrongState(r, "read-only");
    SessionWrite write;
    *r.session.mutable_verification() = *v;
    v1::SessionEvent& event = AddEvent(r, now, write);
    *event.mutable_verification_attached() = *v;
    verified.verification = *v;
    verified.sequence = event.sequence();
    events::v1::Event out;
    events::v1::VerificationAttached* e = out.mutable_verification_attached();
    e->set_session_id(session_id);
    e->set_customer_id(r.session.customer_id());
    *e->mutable_verification() = *v;
    e->set_session_state(r.session.state());
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  return verified;
}

absl::StatusOr<v1::Session> Sessions::Escalate(const Caller& caller,
                                               const std::string& session_id) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  std::vector<common::v1::TranscriptLine> excerpt = Excerpt(session_id);
  v1::Session view;
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    const v1::SessionState state = r.session.state();
    if (state == v1::SESSION_STATE_RESOLVED || state == v1::SESSION_STATE_CLOSED) {
      return WrongState(r, "cannot escalate");
    }
    if (state != v1::SESSION_STATE_BOT) return ViewFor(r, caller);
    SessionWrite write;
    common::v1::HandoffContext handoff;
    handoff.set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
    if (absl::Status s = EscalateLocked(r, std::move(handoff), std::move(excerpt), caller.id,
                                        clock_->Now(), write);
        !s.ok()) {
      return s;
    }
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  ScheduleRouting(session_id);
  return view;
}

absl::Status Sessions::RecordOffer(const Caller& caller, const std::string& session_id,
                                   const std::string& agent_id, const std::string& offer_id,
                                   absl::Time expires_at) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("offer_id", offer_id); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  if (expires_at <= now) {
    return absl::InvalidArgumentError("expires_at: must be in the future");
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  std::shared_ptr<Pending> pending;
  bool replaced = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    if (r.session.state() != v1::SESSION_STATE_QUEUED) return WrongState(r, "not QUEUED");
    replaced = !r.session.offered_agent_id().empty() && r.session.offered_agent_id() != agent_id;
    r.session.set_offered_agent_id(agent_id);
    SetTs(expires_at, r.session.mutable_offer_expires_at());
    SessionWrite write;
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (replaced) NotifyAccess(session_id);
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> Sessions::AssignAgent(const Caller& caller,
                                                  const std::string& session_id,
                                                  const std::string& agent_id,
                                                  const std::string& display_name,
                                                  const std::string& offer_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("offer_id", offer_id); !s.ok()) return s;
  if (absl::Status s =
          validation::ValidateText("agent_display_name", display_name, kMaxDisplayName);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    if (s.state() == v1::SESSION_STATE_ASSIGNED && s.assigned_agent_id() == agent_id) {
      return ViewFor(r, caller);
    }
    if (s.state() != v1::SESSION_STATE_QUEUED) {
      return WrongState(r, s.state() == v1::SESSION_STATE_ASSIGNED
                               ? "assigned to another agent"
                               : "only QUEUED sessions can be assigned");
    }
    const absl::Time now = clock_->Now();
    const absl::Time queued_at = Ts(s.queued_at());
    SessionWrite write;
    s.set_assigned_agent_id(agent_id);
    SetTs(now, s.mutable_assigned_at());
    if (!s.has_first_assigned_at()) SetTs(now, s.mutable_first_assigned_at());
    v1::Participant* p = s.add_participants();
    p->set_role(common::v1::SENDER_ROLE_AGENT);
    p->set_id(agent_id);
    p->set_display_name(display_name);
    SetTs(now, p->mutable_joined_at());
    Transition(r, v1::SESSION_STATE_ASSIGNED, v1::STATE_CHANGE_REASON_ASSIGNED, caller.id,
               now, write)
        .IgnoreError();
    ++r.assignments;
    if (metrics_) {
      metrics_->queue_wait(s.channel(), s.category())
          .Observe(absl::ToDoubleSeconds(now - queued_at));
    }
    events::v1::Event out;
    events::v1::AgentAssigned* e = out.mutable_agent_assigned();
    e->set_session_id(session_id);
    e->set_previous_state(v1::SESSION_STATE_QUEUED);
    e->set_state(v1::SESSION_STATE_ASSIGNED);
    e->set_agent_id(agent_id);
    e->set_offer_id(offer_id);
    e->set_channel(s.channel());
    e->set_category(s.category());
    protoutil::ToDuration(now - queued_at, e->mutable_queue_wait());
    e->set_assignment_number(r.assignments);
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  return view;
}

namespace {

void LeaveAgent(v1::Session& s, absl::Time now) {
  for (int i = s.participants_size() - 1; i >= 0; --i) {
    v1::Participant* p = s.mutable_participants(i);
    if (p->id() == s.assigned_agent_id() && !p->has_left_at()) {
      SetTs(now, p->mutable_left_at());
      break;
    }
  }
  s.clear_assigned_agent_id();
  s.clear_assigned_at();
}

}  // namespace

absl::StatusOr<v1::Session> Sessions::Transfer(const Caller& caller,
                                               const v1::TransferSessionRequest& request) {
  if (absl::Status s = ValidateKey("request_id", request.request_id(), false); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          validation::ValidateText("note", request.note(), kMaxTransferNote);
      !s.ok()) {
    return s;
  }
  switch (request.target_case()) {
    case v1::TransferSessionRequest::kQueue: {
      const int category = request.queue().category();
      if (category == common::v1::CATEGORY_UNSPECIFIED ||
          !common::v1::Category_IsValid(category)) {
        return absl::InvalidArgumentError("queue.category: required, a known category");
      }
      if (!request.queue().language().empty() && !IsLanguageTag(request.queue().language())) {
        return absl::InvalidArgumentError("queue.language: must be a BCP 47 tag");
      }
      break;
    }
    case v1::TransferSessionRequest::kAgentId:
      if (absl::Status s = validation::ValidateId("agent_id", request.agent_id()); !s.ok()) {
        return s;
      }
      break;
    case v1::TransferSessionRequest::kToBot:
      if (!request.to_bot()) return absl::InvalidArgumentError("to_bot: must be true if set");
      break;
    default:
      return absl::InvalidArgumentError("target: one of queue, agent_id or to_bot is required");
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  const std::string& session_id = request.session_id();
  v1::Session view;
  std::shared_ptr<Pending> pending;
  bool to_bot = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    if (SeenRequest(r, request.request_id())) return ViewFor(r, caller);
    if (s.state() != v1::SESSION_STATE_ASSIGNED) {
      return WrongState(r, "only ASSIGNED sessions can be transferred");
    }
    const std::string from_agent = s.assigned_agent_id();
    const Category from_category = s.category();
    if (request.has_queue() && request.queue().category() == s.category() &&
        (request.queue().language().empty() || request.queue().language() == s.language())) {
      return absl::InvalidArgumentError("queue: the session is already in that queue");
    }
    if (request.target_case() == v1::TransferSessionRequest::kAgentId &&
        request.agent_id() == from_agent) {
      return absl::InvalidArgumentError("agent_id: the session is already with that agent");
    }
    const absl::Time now = clock_->Now();
    SessionWrite write;
    LeaveAgent(s, now);
    s.set_transfer_count(s.transfer_count() + 1);
    s.set_transfer_note(request.note());
    events::v1::Event out;
    events::v1::SessionTransferred* e = out.mutable_session_transferred();
    if (request.to_bot()) {
      to_bot = true;
      Transition(r, v1::SESSION_STATE_BOT, v1::STATE_CHANGE_REASON_HANDED_BACK_TO_BOT,
                 caller.id, now, write)
          .IgnoreError();
      r.bot_since = now;
      r.bot_turns = 0;
      r.cancel_reason = routing::v1::CANCEL_REASON_HANDED_BACK_TO_BOT;
      SetRoutingPending(r);
      e->set_to_bot(true);
    } else {
      if (request.has_queue()) {
        s.set_category(request.queue().category());
        if (!request.queue().language().empty()) s.set_language(request.queue().language());
      }
      Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_TRANSFERRED, caller.id,
                 now, write)
          .IgnoreError();
      QueueFor(r, routing::v1::ENQUEUE_REASON_TRANSFERRED, now);
      r.enqueue.set_transfer_note(request.note());
      r.enqueue.set_at_head(true);
      if (request.target_case() == v1::TransferSessionRequest::kAgentId) {
        r.enqueue.set_target_agent_id(request.agent_id());
        e->set_to_agent_id(request.agent_id());
      }
      r.enqueue.set_excluded_agent_id(from_agent);
    }
    RememberRequest(r, request.request_id());
    e->set_session_id(session_id);
    e->set_previous_state(v1::SESSION_STATE_ASSIGNED);
    e->set_state(s.state());
    e->set_from_agent_id(from_agent);
    e->set_actor_id(caller.id);
    e->set_from_category(from_category);
    e->set_to_category(s.category());
    e->set_to_language(s.language());
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (to_bot && bot_ != nullptr) {
    background_([this, session_id] {
      if (absl::Status s = bot_->ResetDialogue(session_id); !s.ok()) {
        log::Warning("bot_reset_failed", {{"session_id", session_id}, {"error", s.ToString()}});
      }
    });
  }
  ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<v1::Session> Sessions::Requeue(const Caller& caller,
                                              const std::string& session_id,
                                              const std::string& agent_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    if (s.state() == v1::SESSION_STATE_QUEUED) return ViewFor(r, caller);
    if (s.state() != v1::SESSION_STATE_ASSIGNED || s.assigned_agent_id() != agent_id) {
      return WrongState(r, absl::StrCat("not ASSIGNED to ", agent_id));
    }
    const absl::Time now = clock_->Now();
    const absl::Time assigned_at = Ts(s.assigned_at());
    SessionWrite write;
    LeaveAgent(s, now);
    Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_AGENT_UNAVAILABLE,
               caller.id, now, write)
        .IgnoreError();
    // Routing queued it itself; the template is for later retries only.
    r.enqueue.set_reason(routing::v1::ENQUEUE_REASON_TRANSFERRED);
    events::v1::Event out;
    events::v1::SessionRequeued* e = out.mutable_session_requeued();
    e->set_session_id(session_id);
    e->set_previous_state(v1::SESSION_STATE_ASSIGNED);
    e->set_state(v1::SESSION_STATE_QUEUED);
    e->set_agent_id(agent_id);
    protoutil::ToDuration(now - assigned_at, e->mutable_assigned_duration());
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  return view;
}

absl::StatusOr<v1::Session> Sessions::Resolve(const Caller& caller,
                                              const std::string& session_id,
                                              const std::string& summary,
                                              const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("resolution_summary", summary, kMaxSummary);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<Pending> pending;
  bool routing = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    if (s.state() == v1::SESSION_STATE_RESOLVED || SeenRequest(r, request_id)) {
      return ViewFor(r, caller);
    }
    const v1::SessionState from = s.state();
    if (from == v1::SESSION_STATE_BOT && caller.role != Role::kCustomer) {
      return WrongState(r, "only the customer may resolve a session the bot handled");
    }
    if (from != v1::SESSION_STATE_BOT && from != v1::SESSION_STATE_ASSIGNED) {
      return WrongState(r, "only ASSIGNED (or BOT, by the customer) sessions can be resolved");
    }
    const absl::Time now = clock_->Now();
    SessionWrite write;
    const std::string agent = s.assigned_agent_id();
    Transition(r, v1::SESSION_STATE_RESOLVED, v1::STATE_CHANGE_REASON_RESOLVED, caller.id, now,
               write)
        .IgnoreError();
    SetTs(now, s.mutable_resolved_at());
    SetTs(now + options_.reopen_window, s.mutable_reopenable_until());
    if (!summary.empty()) s.set_resolution_summary(summary);
    r.resolved_by = agent;
    s.clear_assigned_agent_id();
    if (from == v1::SESSION_STATE_ASSIGNED) {
      r.cancel_reason = routing::v1::CANCEL_REASON_RESOLVED;
      SetRoutingPending(r);
      routing = true;
    }
    RememberRequest(r, request_id);
    const absl::Duration resolution = now - Ts(s.created_at());
    if (metrics_) {
      metrics_->resolution(s.channel(), s.category())
          .Observe(absl::ToDoubleSeconds(resolution));
    }
    events::v1::Event out;
    events::v1::SessionResolved* e = out.mutable_session_resolved();
    e->set_session_id(session_id);
    e->set_previous_state(from);
    e->set_state(v1::SESSION_STATE_RESOLVED);
    e->set_agent_id(agent);
    e->set_actor_id(caller.id);
    e->set_actor_role(RoleWord(caller.role));
    e->set_channel(s.channel());
    e->set_category(s.category());
    protoutil::ToDuration(resolution, e->mutable_resolution_time());
    e->set_customer_messages(r.customer_messages);
    e->set_bot_messages(r.bot_messages);
    e->set_agent_messages(r.agent_messages);
    e->set_transfer_count(s.transfer_count());
    e->set_reopen_count(s.reopen_count());
    e->set_resolved_by_bot(!s.has_first_assigned_at());
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (routing) ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<v1::Session> Sessions::Reopen(const Caller& caller,
                                             const std::string& session_id,
                                             const std::string& reason,
                                             const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("reason", reason, kMaxReason); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id, /*past_agents=*/true);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    v1::Session& s = r.session;
    if (SeenRequest(r, request_id)) return ViewFor(r, caller);
    if (s.state() != v1::SESSION_STATE_RESOLVED) {
      return WrongState(r, "only RESOLVED sessions can be reopened");
    }
    const absl::Time now = clock_->Now();
    if (now > Ts(s.reopenable_until())) {
      return absl::FailedPreconditionError(
          "the reopen window has passed: open a new session");
    }
    const absl::Time resolved_at = Ts(s.resolved_at());
    SessionWrite write;
    if (!reason.empty()) {
      v1::Message notice;
      notice.set_sender_role(common::v1::SENDER_ROLE_SYSTEM);
      notice.set_sender_id("system");
      notice.set_text(absl::StrCat("Reopened: ", reason));
      AddMessage(r, std::move(notice), now, write);
    }
    Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_REOPENED, caller.id, now,
               write)
        .IgnoreError();
    s.set_reopen_count(s.reopen_count() + 1);
    s.clear_reopenable_until();
    QueueFor(r, routing::v1::ENQUEUE_REASON_REOPENED, now);
    r.enqueue.set_at_head(true);
    r.enqueue.set_priority(routing::v1::PRIORITY_HIGH);
    if (s.category() == common::v1::CATEGORY_ACCOUNT_SECURITY ||
        s.category() == common::v1::CATEGORY_FROZEN_FUNDS) {
      r.enqueue.set_priority(routing::v1::PRIORITY_URGENT);
    }
    r.enqueue.set_preferred_agent_id(r.resolved_by);
    RememberRequest(r, request_id);
    events::v1::Event out;
    events::v1::SessionReopened* e = out.mutable_session_reopened();
    e->set_session_id(session_id);
    e->set_previous_state(v1::SESSION_STATE_RESOLVED);
    e->set_state(v1::SESSION_STATE_QUEUED);
    e->set_actor_id(caller.id);
    e->set_previous_agent_id(r.resolved_by);
    protoutil::ToDuration(now - resolved_at, e->mutable_since_resolved());
    write.events.push_back(Sealed(std::move(out), session_id, now));
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<v1::Session> Sessions::Close(const Caller& caller,
                                            const std::string& session_id,
                                            v1::CloseReason reason) {
  if (!v1::CloseReason_IsValid(reason)) {
    return absl::InvalidArgumentError("reason: unknown close reason");
  }
  if (reason == v1::CLOSE_REASON_IDLE_TIMEOUT) {
    return absl::InvalidArgumentError("reason: IDLE_TIMEOUT is set by sessions only");
  }
  if (reason == v1::CLOSE_REASON_UNSPECIFIED) {
    reason = caller.role == Role::kCustomer  ? v1::CLOSE_REASON_CUSTOMER_LEFT
             : caller.role == Role::kService ? v1::CLOSE_REASON_RATED
                                             : v1::CLOSE_REASON_STAFF;
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<Pending> pending;
  bool routing = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id, /*past_agents=*/true);
    if (!found.ok()) return found.status();
    SessionRecord& r = **found;
    if (r.session.state() == v1::SESSION_STATE_CLOSED) return ViewFor(r, caller);
    if ((caller.role == Role::kAgent || caller.role == Role::kService) &&
        r.session.state() != v1::SESSION_STATE_RESOLVED) {
      return WrongState(r, "agents and services close RESOLVED sessions only");
    }
    SessionWrite write;
    if (absl::Status s = CloseLocked(r, reason, caller.id, clock_->Now(), write); !s.ok()) {
      return s;
    }
    routing = r.routing_pending;
    write.sessions.push_back(r);
    view = ViewFor(r, caller);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  if (routing) ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<Sessions::Callback> Sessions::RequestCallback(
    const Caller& caller, const std::string& session_id, const v1::CallbackDetails& details,
    const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  Callback result;
  std::shared_ptr<Pending> pending;
  std::string phone_id;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = Find(caller, session_id);
    if (!found.ok()) return found.status();
    SessionRecord& origin = **found;
    if (SeenRequest(origin, request_id)) {
      for (const auto& [id, r] : sessions_) {
        if (r.session.parent_session_id() == session_id &&
            r.session.callback().callback_id() == origin.pending_callback_id) {
          result.callback = r.session.callback();
          result.phone_session = ViewFor(r, caller);
          return result;
        }
      }
    }
    if (absl::Status s = ValidateCallbackDetails("callback", details, now); !s.ok()) return s;
    absl::StatusOr<common::v1::VerificationState> verification =
        CheckVerification(details.verification_token(), origin.session.customer_id(),
                          session_id, now);
    if (!verification.ok()) {
      return absl::Status(verification.status().code(),
                          absl::StrCat("callback.", verification.status().message()));
    }
    if (origin.session.state() == v1::SESSION_STATE_CLOSED) {
      return WrongState(origin, "open a new session");
    }
    if (!origin.pending_callback_id.empty()) {
      for (const auto& [id, r] : sessions_) {
        if (r.session.callback().callback_id() == origin.pending_callback_id &&
            Open(r.session.state())) {
          return absl::FailedPreconditionError("a callback is already pending for this session");
        }
      }
    }
    phone_id = absl::StrCat("s-", events::RandomUuid());
    SessionRecord& phone = sessions_[phone_id];
    v1::Session& p = phone.session;
    const v1::Session& o = origin.session;
    p.set_session_id(phone_id);
    p.set_customer_id(o.customer_id());
    p.set_channel(common::v1::CHANNEL_PHONE);
    p.set_category(o.category());
    p.set_language(o.language());
    p.set_parent_session_id(session_id);
    *p.mutable_verification() = *verification;
    SetTs(now, p.mutable_created_at());
    v1::Participant* customer = p.add_participants();
    customer->set_role(common::v1::SENDER_ROLE_CUSTOMER);
    customer->set_id(o.customer_id());
    SetTs(now, customer->mutable_joined_at());
    v1::CallbackRequest* cb = p.mutable_callback();
    cb->set_callback_id(absl::StrCat("cb-", events::RandomUuid()));
    cb->set_origin_session_id(session_id);
    cb->set_phone_session_id(phone_id);
    cb->set_phone_number(details.phone_number());
    if (details.has_window_start()) *cb->mutable_window_start() = details.window_start();
    *cb->mutable_window_end() = details.window_end();
    cb->set_note(details.note());
    SetTs(now, cb->mutable_requested_at());
    common::v1::HandoffContext* h = p.mutable_handoff();
    h->set_reason(common::v1::ESCALATION_REASON_CHANNEL_WITHOUT_BOT);
    h->set_category(p.category());
    h->set_language(p.language());
    *h->mutable_verification() = *verification;
    SetTs(now, h->mutable_escalated_at());
    SessionWrite write;
    Transition(phone, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_CREATED, caller.id, now,
               write)
        .IgnoreError();
    QueueFor(phone, routing::v1::ENQUEUE_REASON_CALLBACK, now);
    events::v1::Event created;
    events::v1::SessionCreated* c = created.mutable_session_created();
    c->set_session_id(phone_id);
    c->set_customer_id(p.customer_id());
    c->set_channel(p.channel());
    c->set_category(p.category());
    c->set_language(p.language());
    c->set_state(v1::SESSION_STATE_QUEUED);
    c->set_parent_session_id(session_id);
    write.events.push_back(Sealed(std::move(created), phone_id, now));

    origin.pending_callback_id = cb->callback_id();
    RememberRequest(origin, request_id);
    *AddEvent(origin, now, write).mutable_callback_requested() = *cb;
    events::v1::Event requested;
    events::v1::CallbackRequested* e = requested.mutable_callback_requested();
    e->set_session_id(session_id);
    e->set_callback_id(cb->callback_id());
    e->set_phone_session_id(phone_id);
    if (details.has_window_start()) *e->mutable_window_start() = details.window_start();
    *e->mutable_window_end() = details.window_end();
    e->set_verification_level(verification->level());
    write.events.push_back(Sealed(std::move(requested), session_id, now));
    result.callback = *cb;
    result.phone_session = ViewFor(phone, caller);
    write.sessions.push_back(phone);
    write.sessions.push_back(origin);
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  ScheduleRouting(phone_id);
  return result;
}

void Sessions::SyncRouting(const std::string& session_id) {
  while (true) {
    bool call = true;
    bool enqueue = false;
    routing::v1::EnqueueSessionRequest request;
    routing::v1::CancelReason cancel_reason = routing::v1::CANCEL_REASON_UNSPECIFIED;
    int64_t version = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      if (it == sessions_.end() || !it->second.routing_pending ||
          routing_in_flight_.contains(session_id)) {
        return;
      }
      const SessionRecord& r = it->second;
      version = r.routing_version;
      // Assigned meanwhile: routing acted on an earlier request already.
      call = r.session.state() != v1::SESSION_STATE_ASSIGNED;
      enqueue = r.session.state() == v1::SESSION_STATE_QUEUED;
      request = r.enqueue;
      cancel_reason = r.cancel_reason;
      routing_in_flight_.insert(session_id);
    }
    if (call) {
      absl::Status status =
          routing_ == nullptr ? absl::UnavailableError("routing not configured")
          : enqueue           ? routing_->Enqueue(request)
                              : routing_->Cancel(session_id, cancel_reason);
      if (!status.ok()) {
        if (metrics_) metrics_->routing_failures->Increment();
        log::Warning("routing_call_failed",
                  {{"session_id", session_id},
                   {"call", enqueue ? "EnqueueSession" : "CancelSession"},
                   {"error", status.ToString()}});
        absl::MutexLock lock(&mu_);
        routing_in_flight_.erase(session_id);
        return;
      }
    }
    absl::MutexLock lock(&mu_);
    routing_in_flight_.erase(session_id);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    SessionRecord& r = it->second;
    if (r.routing_version != version) continue;  // changed meanwhile: tell routing again
    r.routing_pending = false;
    if (metrics_) metrics_->routing_pending->Decrement();
    if (!CheckWritable().ok()) return;
    SessionWrite write;
    write.sessions.push_back(r);
    // Not waited for: losing this write only repeats an idempotent call.
    Commit(std::move(write));
    return;
  }
}

int Sessions::RetryRouting() {
  std::vector<std::string> pending;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : sessions_) {
      if (r.routing_pending) pending.push_back(id);
    }
  }
  for (const std::string& id : pending) SyncRouting(id);
  return static_cast<int>(pending.size());
}

absl::StatusOr<int> Sessions::Sweep() {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  std::vector<std::string> to_cancel;
  std::vector<std::string> lapsed_offers;
  std::shared_ptr<Pending> pending;
  int changed = 0;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    // Rate windows and typing marks that can no longer matter.
    absl::erase_if(send_rate_, [&](const auto& e) {
      return now - e.second.first >= absl::Seconds(1);
    });
    absl::erase_if(create_rate_, [&](const auto& e) {
      return now - e.second.first >= absl::Minutes(1);
    });
    absl::erase_if(typing_sent_, [&](const auto& e) {
      return now - e.second >= absl::Seconds(1);
    });
    SessionWrite write;
    for (auto& [id, r] : sessions_) {
      v1::Session& s = r.session;
      if (s.state() == v1::SESSION_STATE_CLOSED) continue;
      bool touched = BreachIfDue(r, now, write);
      if (!s.offered_agent_id().empty() &&
          (s.state() != v1::SESSION_STATE_QUEUED || Ts(s.offer_expires_at()) <= now)) {
        s.clear_offered_agent_id();
        s.clear_offer_expires_at();
        lapsed_offers.push_back(id);
        touched = true;
      }
      absl::Time last = r.state_since;
      if (s.has_last_message_at()) last = std::max(last, Ts(s.last_message_at()));
      const bool idle =
          ((s.state() == v1::SESSION_STATE_BOT || s.state() == v1::SESSION_STATE_ASSIGNED) &&
           now - last >= options_.idle_timeout) ||
          (s.state() == v1::SESSION_STATE_RESOLVED &&
           now - r.state_since >= options_.resolved_idle_timeout);
      if (idle && CloseLocked(r, v1::CLOSE_REASON_IDLE_TIMEOUT, "system", now, write).ok()) {
        touched = true;
        if (r.routing_pending) to_cancel.push_back(id);
      }
      if (touched) {
        ++changed;
        write.sessions.push_back(r);
      }
    }
    if (write.empty()) return 0;
    pending = Commit(std::move(write));
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  for (const std::string& id : to_cancel) ScheduleRouting(id);
  for (const std::string& id : lapsed_offers) NotifyAccess(id);
  return changed;
}

}  // namespace switchboard::sessions
