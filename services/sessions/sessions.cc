#include "services/sessions/sessions.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/fault/fault_point.h"
#include "libs/limits/retry_after.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"
#include "services/sessions/handoff.h"
#include "services/sessions/new_session.h"
#include "services/sessions/session_events.h"
#include "services/sessions/system_messages.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using common::v1::Category;

constexpr size_t kMaxSummary = 2000;
constexpr size_t kMaxReason = 500;
constexpr size_t kMaxDisplayName = 128;
constexpr size_t kMaxRequestIds = 16;
// Sessions a sweep handles per commit (and per hold of the lock).
constexpr size_t kSweepBatch = 500;

absl::Time Ts(const google::protobuf::Timestamp& t) { return protoutil::FromTimestamp(t); }
void SetTs(absl::Time t, google::protobuf::Timestamp* out) { protoutil::ToTimestamp(t, out); }

bool Open(v1::SessionState state) {
  return state != v1::SESSION_STATE_CLOSED && state != v1::SESSION_STATE_UNSPECIFIED;
}

std::string RoleWord(Role role) { return std::string(auth::RoleName(role)); }

// A token's key among the settle stamps (a bucket shared with another key
// only costs a second read).
std::string TokenKey(const std::string& token_id) { return absl::StrCat("token\n", token_id); }

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

Sessions::Sessions(SessionStore* store, Clock* clock, SessionsMetrics* metrics,
                   const auth::TokenVerifier* tokens, BotClient* bot, RoutingClient* routing,
                   Executor background, BoundedExecutor bot_executor,
                   SessionsOptions options, Executor answers)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      tokens_(tokens),
      bot_(bot),
      routing_(routing),
      background_(std::move(background)),
      bot_executor_(std::move(bot_executor)),
      answers_(std::move(answers)),
      options_(std::move(options)),
      idle_timeouts_{options_.idle_timeout, options_.resolved_idle_timeout},
      bot_turns_(options_.max_waiting_bot_turns),
      commits_("sessions", storage::OrderedCommits::FailedWrite::kUnavailable),
      closed_(options_.closed_cache_size) {}

absl::Status Sessions::Load() {
  absl::StatusOr<std::vector<SessionRecord>> open = store_->LoadOpen();
  if (!open.ok()) return open.status();
  absl::StatusOr<int64_t> closed = store_->CountClosed();
  if (!closed.ok()) return closed.status();
  absl::MutexLock lock(&mu_);
  absl::MutexLock listeners_lock(&listeners_mu_);
  int64_t loaded_closed = 0;
  for (SessionRecord& r : *open) {
    const std::string id = r.session.session_id();
    committed_[id] = r.session.last_sequence();
    loaded_closed += r.session.state() == v1::SESSION_STATE_CLOSED;
    Live& live = sessions_[id];
    live.record = std::move(r);
    Account(id, live);
  }
  if (metrics_) {
    metrics_->sessions(v1::SESSION_STATE_CLOSED)
        .Increment(static_cast<double>(*closed - loaded_closed));
  }
  return absl::OkStatus();
}

absl::Status Sessions::AdmitWrite() {
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  return store_->Admit();
}

std::shared_ptr<storage::PendingWrite> Sessions::Commit(
    SessionWrite write, WriteKeys keys, std::shared_ptr<storage::PendingWrite> pending) {
  if (pending == nullptr) pending = storage::OrderedCommits::NewWrite();
  std::vector<const std::string*> written;
  for (const SessionRecord& r : write.sessions) written.push_back(&r.session.session_id());
  for (const MessagedSession& m : write.messaged_sessions) written.push_back(&m.session_id);
  for (const std::string* id : written) {
    auto it = sessions_.find(*id);
    if (it == sessions_.end()) continue;
    it->second.last_write = pending;
    Account(*id, it->second);
  }
  std::vector<v1::SessionEvent> published = write.session_events;
  // The keys are in the store once the write settles (or their write
  // failed): look-ups go there from then on.
  return commits_.Commit(
      *store_, std::move(write),
      {[this, published = std::move(published)]() mutable {
         MarkCommitted(published);
         RunAnswer([this, published = std::move(published)] { Publish(published); });
       },
       [this, keys = std::move(keys)] { Settle(keys); }},
      std::move(pending));
}

void Sessions::Account(const std::string& id, Live& live) {
  const v1::Session& s = live.record.session;
  if (live.counted_state != s.state()) {
    CountState(live.counted_state, s.state());
    const bool was_open = Open(live.counted_state);
    const bool open = Open(s.state());
    if (open && !was_open) ++open_by_customer_[s.customer_id()];
    if (was_open && !open) {
      auto it = open_by_customer_.find(s.customer_id());
      if (it != open_by_customer_.end() && --it->second <= 0) open_by_customer_.erase(it);
    }
    live.counted_state = s.state();
  }
  if (live.record.routing_pending) {
    if (routing_pending_.insert(id).second && metrics_) metrics_->routing_pending->Increment();
  } else if (routing_pending_.erase(id) > 0 && metrics_) {
    metrics_->routing_pending->Decrement();
  }
  deadlines_.Set(id, NextDue(live.record, idle_timeouts_));
}

void Sessions::MarkCommitted(const std::vector<v1::SessionEvent>& events) {
  absl::MutexLock lock(&listeners_mu_);
  for (const v1::SessionEvent& event : events) {
    int64_t& committed = committed_[event.session_id()];
    committed = std::max(committed, event.sequence());
  }
}

void Sessions::Publish(const std::vector<v1::SessionEvent>& events) {
  absl::MutexLock lock(&listeners_mu_);
  for (const v1::SessionEvent& event : events) {
    auto it = listeners_.find(event.session_id());
    if (it == listeners_.end()) continue;
    for (SessionListener* listener : it->second) listener->OnEvent(event);
  }
}

void Sessions::Settle(const WriteKeys& keys) {
  if (keys.messages.empty() && keys.creations.empty() && keys.tokens.empty()) return;
  absl::MutexLock lock(&durable_mu_);
  for (const std::string& token_id : keys.tokens) {
    pending_tokens_.erase(token_id);
    settled_.Settle(TokenKey(token_id));
  }
  for (const std::string& key : keys.messages) {
    pending_messages_.erase(key);
    settled_.Settle(key);
  }
  for (const std::string& key : keys.creations) {
    pending_creations_.erase(key);
    settled_.Settle(key);
  }
}

absl::StatusOr<Sessions::TokenBindingRead> Sessions::ReadTokenBinding(const std::string& token,
                                                                      absl::Time now) {
  TokenBindingRead read;
  absl::StatusOr<auth::VerificationClaims> claims =
      auth::VerifyVerificationToken(*tokens_, token, now);
  if (!claims.ok() || claims->token_id.empty()) return read;
  read.token_id = claims->token_id;
  {
    absl::MutexLock lock(&durable_mu_);
    read.stamp = settled_.Stamp(TokenKey(read.token_id));
  }
  absl::StatusOr<std::optional<std::string>> stored = store_->FindTokenBinding(read.token_id);
  if (!stored.ok()) return stored.status();
  read.stored = *std::move(stored);
  return read;
}

std::optional<absl::Status> Sessions::CheckTokenBinding(const TokenBindingRead& read,
                                                        const std::string& session_id) {
  if (read.token_id.empty()) return absl::OkStatus();
  std::optional<std::string> bound;
  {
    absl::MutexLock lock(&durable_mu_);
    auto it = pending_tokens_.find(read.token_id);
    if (it != pending_tokens_.end()) {
      bound = it->second;
    } else if (settled_.Stamp(TokenKey(read.token_id)) != read.stamp) {
      return std::nullopt;
    } else {
      bound = read.stored;
    }
  }
  if (bound.has_value() && *bound != session_id) {
    return absl::PermissionDeniedError(
        "verification_token: already used on another session; verify again for this one");
  }
  return absl::OkStatus();
}

void Sessions::BindToken(const TokenBindingRead& read, const auth::VerificationClaims& claims,
                         const std::string& session_id, absl::Time now, SessionWrite& write,
                         WriteKeys& keys) {
  if (read.token_id.empty() || read.stored.has_value()) return;
  {
    absl::MutexLock lock(&durable_mu_);
    // Bound here by a write not durable yet: that write records it.
    if (!pending_tokens_.try_emplace(read.token_id, session_id).second) return;
  }
  write.token_bindings.push_back(
      TokenBinding{read.token_id, session_id, claims.customer_id, now, claims.expires_at});
  keys.tokens.push_back(read.token_id);
}

void Sessions::CountState(v1::SessionState from, v1::SessionState to) {
  if (metrics_ == nullptr) return;
  if (from != v1::SESSION_STATE_UNSPECIFIED) metrics_->sessions(from).Decrement();
  if (to != v1::SESSION_STATE_UNSPECIFIED) metrics_->sessions(to).Increment();
}

absl::StatusOr<Sessions::Live*> Sessions::FindLive(const Caller& caller,
                                                   const std::string& session_id,
                                                   bool past_agents) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (session_id.size() > 64 || !validation::IsValidUtf8(session_id)) return NotFound();
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return nullptr;
  if (!MaySee(caller, it->second.record.session, clock_->Now(), past_agents)) {
    return NotFound();
  }
  return &it->second;
}

absl::StatusOr<SessionRecord> Sessions::ReadClosed(const Caller& caller,
                                                   const std::string& session_id,
                                                   bool past_agents) {
  std::optional<SessionRecord> record = closed_.Get(session_id);
  if (!record) {
    absl::StatusOr<std::optional<SessionRecord>> stored = store_->ReadSession(session_id);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) return NotFound();
    record = std::move(**stored);
    if (record->session.state() == v1::SESSION_STATE_CLOSED) closed_.Put(*record);
  }
  if (!MaySee(caller, record->session, clock_->Now(), past_agents)) return NotFound();
  return *std::move(record);
}

absl::StatusOr<v1::Session> Sessions::ViewNow(const Caller& caller,
                                              const std::string& session_id) {
  if (std::optional<absl::StatusOr<v1::Session>> quick = TryGet(caller, session_id)) {
    return *std::move(quick);
  }
  return Get(caller, session_id);
}

void Sessions::MaybeEvict(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Live& live = it->second;
  if (live.record.session.state() != v1::SESSION_STATE_CLOSED ||
      live.record.routing_pending || routing_in_flight_.contains(session_id) ||
      (live.last_write != nullptr && !live.last_write->settled())) {
    return;
  }
  // Put first: a reader that misses memory from here on finds the cache.
  closed_.Put(std::move(live.record));
  sessions_.erase(it);
  deadlines_.Remove(session_id);
  absl::MutexLock listeners_lock(&listeners_mu_);
  committed_.erase(session_id);
}

Sessions::Footprint Sessions::footprint() const {
  Footprint f;
  {
    absl::MutexLock lock(&mu_);
    f.live_sessions = sessions_.size();
    f.deadlines = deadlines_.size();
  }
  {
    absl::MutexLock lock(&durable_mu_);
    f.pending_keys =
        pending_messages_.size() + pending_creations_.size() + pending_tokens_.size();
  }
  f.cached_closed = closed_.size();
  return f;
}

void Sessions::SetRoutingPending(SessionRecord& record) {
  record.routing_pending = true;
  ++record.routing_version;
}

Sessions::EmailSla Sessions::EmailSlaFor(common::v1::Category category,
                                         const std::string& language, absl::Time now) {
  EmailSla sla;
  auto target = options_.email_sla_by_category.find(category);
  sla.target =
      target != options_.email_sla_by_category.end() ? target->second : options_.email_sla;
  sla.due = now + sla.target;
  if (!options_.business_hours_sla_categories.contains(category) || routing_ == nullptr) {
    return sla;
  }
  routing::v1::GetQueueHoursRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(category);
  request.set_language(language);
  protoutil::ToDuration(sla.target, request.mutable_business_time());
  protoutil::ToTimestamp(now, request.mutable_from());
  absl::StatusOr<routing::v1::GetQueueHoursResponse> hours = routing_->QueueHours(request);
  if (!hours.ok()) {
    // The calendar due time is never later than the business-hours one: the
    // customer is promised no more than the desk can keep.
    if (metrics_) metrics_->routing_failures->Increment();
    log::Warning("business_hours_sla_unavailable",
                 {{"category", common::v1::Category_Name(category)},
                  {"error", hours.status().ToString()}});
    return sla;
  }
  // No schedule governs the queue (always open), or it never opens again:
  // the calendar target stands.
  if (hours->hours().schedule_id().empty() || !hours->has_business_time_ends_at()) return sla;
  sla.due = protoutil::FromTimestamp(hours->business_time_ends_at());
  sla.business_hours = true;
  sla.time_zone = hours->hours().time_zone();
  return sla;
}

std::optional<routing::v1::QueueHours> Sessions::ClosedPhoneHours(
    common::v1::Category category, const std::string& language) {
  if (routing_ == nullptr) return std::nullopt;
  routing::v1::GetQueueHoursRequest request;
  request.set_channel(common::v1::CHANNEL_PHONE);
  request.set_category(category);
  request.set_language(language);
  absl::StatusOr<routing::v1::GetQueueHoursResponse> hours = routing_->QueueHours(request);
  if (!hours.ok()) {
    if (metrics_) metrics_->routing_failures->Increment();
    log::Warning("callback_hours_unavailable",
                 {{"category", common::v1::Category_Name(category)},
                  {"error", hours.status().ToString()}});
    return std::nullopt;
  }
  if (hours->hours().open() || !hours->hours().has_next_opening_at()) return std::nullopt;
  return hours->hours();
}

void Sessions::SetEmailSla(v1::Session& session, const EmailSla& sla) {
  v1::ResponseSla* target = session.mutable_sla();
  protoutil::ToDuration(sla.target, target->mutable_target());
  protoutil::ToTimestamp(sla.due, target->mutable_due_at());
  target->set_business_hours(sla.business_hours);
}

std::string Sessions::Acknowledgement(const v1::Session& session, const EmailSla& sla) {
  return sla.business_hours ? EmailAcknowledgementBy(session.language(), sla.target, sla.due,
                                                     sla.time_zone)
                            : EmailAcknowledgement(session.language(), sla.target);
}

void Sessions::BookCallback(SessionRecord& phone, const routing::v1::QueueHours& hours,
                            SessionRecord& notify, absl::Time now, SessionWrite& write) {
  *phone.session.mutable_callback()->mutable_scheduled_for() = hours.next_opening_at();
  AddMessage(notify,
             SystemMessage(CallbackBooked(notify.session.language(),
                                          protoutil::FromTimestamp(hours.next_opening_at()),
                                          hours.time_zone())),
             now, write);
}

void Sessions::QueueFor(SessionRecord& record, routing::v1::EnqueueReason reason) {
  record.enqueue = EnqueueRequest(record.session, reason);
  SetRoutingPending(record);
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
  record.pending_callback_session_id.clear();
  if (from == v1::SESSION_STATE_QUEUED || from == v1::SESSION_STATE_ASSIGNED ||
      (from == v1::SESSION_STATE_RESOLVED && record.routing_pending)) {
    record.cancel_reason = reason == v1::CLOSE_REASON_CUSTOMER_LEFT
                               ? routing::v1::CANCEL_REASON_CUSTOMER_LEFT
                               : routing::v1::CANCEL_REASON_CLOSED;
    SetRoutingPending(record);
  }
  AddSessionClosed(s, from, reason, actor, now, write);
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
  AddSlaBreached(s, now, write);
  return true;
}

std::vector<common::v1::TranscriptLine> Sessions::Excerpt(const std::string& session_id) {
  absl::StatusOr<std::vector<v1::Message>> messages =
      store_->ReadMessages(session_id, 0, 0, /*newest_first=*/true, kExcerptLines);
  if (!messages.ok()) {
    log::Error("excerpt_failed", {{"session_id", session_id},
                                  {"error", messages.status().ToString()}});
    return {};
  }
  return TranscriptExcerpt(*messages);
}

bool Sessions::SeenRequest(const SessionRecord& record, const std::string& request_id) {
  return !request_id.empty() && std::find(record.request_ids.begin(), record.request_ids.end(),
                                          request_id) != record.request_ids.end();
}

std::string Sessions::AppliedOfferKey(const std::string& offer_id) {
  return "offer:" + offer_id;
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

absl::StatusOr<Sessions::Created> Sessions::ReplayCreation(
    const Caller& caller, const std::string& session_id,
    std::optional<v1::Message> first_message, const std::string& first_client_message_id) {
  Created created;
  created.replayed = true;
  absl::StatusOr<v1::Session> view = ViewNow(caller, session_id);
  if (!view.ok()) return view.status();
  created.session = *std::move(view);
  if (first_client_message_id.empty()) return created;
  if (!first_message) {
    absl::StatusOr<std::optional<StoredMessage>> stored =
        store_->FindMessage(session_id, first_client_message_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) first_message = std::move((*stored)->message);
  }
  created.first_message = std::move(first_message);
  return created;
}

template <typename T>
void Sessions::AnswerWhenDurable(Decision<T> decision, Answer<T> done) {
  // The callback is held by the write it waits for: it must not hold that
  // write in turn.
  const std::shared_ptr<storage::PendingWrite> wait = std::move(decision.wait);
  // Only answers that waited for a write are timed.
  const bool timed = wait != nullptr && metrics_ != nullptr;
  const absl::Time decided = clock_->Now();
  commits_.Then(wait, [this, timed, decided, decision = std::move(decision),
                       done = std::move(done)](absl::Status durable) mutable {
    const absl::Time committed = clock_->Now();
    if (timed) metrics_->write_durable_seconds->Observe(absl::ToDoubleSeconds(committed - decided));
    if (durable.ok() && decision.answer.ok() && decision.on_durable) decision.on_durable();
    absl::StatusOr<T> answer = durable.ok() ? std::move(decision.answer) : durable;
    RunAnswer([this, timed, committed, done = std::move(done),
               answer = std::move(answer)]() mutable {
      if (timed) {
        metrics_->write_answer_seconds->Observe(absl::ToDoubleSeconds(clock_->Now() - committed));
      }
      done(std::move(answer));
    });
  });
}

void Sessions::RunAnswer(std::function<void()> task) {
  if (answers_ == nullptr) return task();
  answers_(std::move(task));
}

template <typename T>
absl::StatusOr<T> Sessions::AwaitAnswer(Decision<T> decision) {
  absl::StatusOr<T> answer;
  absl::Notification answered;
  AnswerWhenDurable<T>(std::move(decision), [&](absl::StatusOr<T> given) {
    answer = std::move(given);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

absl::StatusOr<Sessions::Created> Sessions::Create(const Caller& caller,
                                                   const v1::CreateSessionRequest& request) {
  return AwaitAnswer(DecideCreate(caller, request));
}

void Sessions::CreateAsync(const Caller& caller, const v1::CreateSessionRequest& request,
                           Answer<Created> done) {
  AnswerWhenDurable(DecideCreate(caller, request), std::move(done));
}

Sessions::Decision<Sessions::Created> Sessions::DecideCreate(
    const Caller& caller, const v1::CreateSessionRequest& request) {
  const absl::Time now = clock_->Now();
  absl::StatusOr<NewSession> checked = ValidateCreate(caller, request, now);
  if (!checked.ok()) return checked.status();
  const NewSession& fields = *checked;
  const std::string& customer_id = fields.customer_id;
  std::optional<common::v1::VerificationState> verification;
  auth::VerificationClaims verification_claims;
  if (fields.channel == common::v1::CHANNEL_PHONE) {
    absl::StatusOr<common::v1::VerificationState> v =
        CheckVerification(*tokens_, request.callback().verification_token(), customer_id, "",
                          now, &verification_claims);
    if (!v.ok()) {
      return absl::Status(v.status().code(), absl::StrCat("callback.", v.status().message()));
    }
    verification = *v;
  }
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  // Routing is asked before deciding, without the lock: the due time of an
  // EMAIL in business hours, the phone desk's hours for a callback.
  std::optional<EmailSla> email_sla;
  if (fields.channel == common::v1::CHANNEL_EMAIL) {
    email_sla = EmailSlaFor(fields.category, fields.language, now);
  }
  std::optional<routing::v1::QueueHours> phone_closed;
  if (fields.channel == common::v1::CHANNEL_PHONE) {
    phone_closed = ClosedPhoneHours(fields.category, fields.language);
  }

  const bool keyed = !request.request_id().empty();
  const std::string request_key = absl::StrCat(customer_id, "\n", request.request_id());
  std::shared_ptr<storage::PendingWrite> pending;
  Created created;
  std::string session_id;
  bool bot_turn = false;
  bool routing = false;
  while (true) {
    // An earlier creation with this key: pending (wait for it) or in the
    // store. The stamp catches one that settles while the store is read.
    std::optional<PendingCreation> hit;
    uint64_t stamp = 0;
    if (keyed) {
      {
        absl::MutexLock lock(&durable_mu_);
        auto it = pending_creations_.find(request_key);
        if (it != pending_creations_.end()) hit = it->second;
        stamp = settled_.Stamp(request_key);
      }
      if (hit) {
        // A retry while the first is on its way to disk: rare enough to
        // wait for on this thread (the replay reads the store).
        if (absl::Status s = commits_.Await(hit->write); !s.ok()) return s;
        return ReplayCreation(caller, hit->session_id, hit->first_message,
                              request.first_client_message_id());
      }
      absl::StatusOr<std::optional<std::string>> stored =
          store_->FindCreated(customer_id, request.request_id());
      if (!stored.ok()) return stored.status();
      if (stored->has_value()) {
        return ReplayCreation(caller, **stored, std::nullopt,
                              request.first_client_message_id());
      }
    }
    TokenBindingRead binding;
    if (verification.has_value()) {
      absl::StatusOr<TokenBindingRead> read =
          ReadTokenBinding(request.callback().verification_token(), now);
      if (!read.ok()) return read.status();
      binding = *std::move(read);
    }
    absl::MutexLock lock(&mu_);
    if (keyed) {
      absl::MutexLock durable_lock(&durable_mu_);
      if (pending_creations_.contains(request_key) || settled_.Stamp(request_key) != stamp) {
        continue;
      }
    }
    // The new session has no id yet: a token used on any session is refused.
    std::optional<absl::Status> usable = CheckTokenBinding(binding, "");
    if (!usable.has_value()) continue;
    if (!usable->ok()) {
      return absl::Status(usable->code(), absl::StrCat("callback.", usable->message()));
    }
    if (absl::Status s = AdmitWrite(); !s.ok()) return s;
    auto open = open_by_customer_.find(customer_id);
    if (open != open_by_customer_.end() && open->second >= options_.max_open_sessions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the customer has ", open->second, " open sessions; close one first"));
    }
    auto& [window, count] = create_rate_[customer_id];
    if (now - window >= absl::Minutes(1)) {
      window = now;
      count = 0;
    }
    if (++count > options_.max_creations_per_minute) {
      return limits::Exhausted(absl::StrCat("more than ", options_.max_creations_per_minute,
                                            " sessions opened in a minute; try again shortly"),
                               window + absl::Minutes(1) - now);
    }
    session_id = absl::StrCat("s-", events::RandomUuid());
    const absl::Duration reply_target =
        email_sla.has_value() ? email_sla->target : absl::ZeroDuration();
    Live& live = sessions_[session_id];
    live.message_keys.emplace();
    live.record = NewSessionRecord(session_id, absl::StrCat("cb-", events::RandomUuid()), fields,
                                   request, verification, reply_target, now);
    SessionRecord& r = live.record;
    v1::Session& s = r.session;
    if (email_sla.has_value()) SetEmailSla(s, *email_sla);
    const bool has_bot = StartsWithBot(fields.channel);
    SessionWrite write;
    WriteKeys keys;
    // A new session may enter any state.
    Transition(r, has_bot ? v1::SESSION_STATE_BOT : v1::SESSION_STATE_QUEUED,
               v1::STATE_CHANGE_REASON_CREATED, customer_id, now, write)
        .IgnoreError();
    if (!has_bot) {
      QueueFor(r, fields.channel == common::v1::CHANNEL_PHONE
                      ? routing::v1::ENQUEUE_REASON_CALLBACK
                      : routing::v1::ENQUEUE_REASON_NEW_SESSION);
      routing = true;
    }
    AddSessionCreated(s, now, write);
    std::optional<PendingMessage> first_key;
    if (fields.has_first_message) {
      v1::Message message;
      message.set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
      message.set_sender_id(customer_id);
      message.set_text(request.first_message().text());
      message.set_client_message_id(request.first_client_message_id());
      v1::Message& stored = AddMessage(r, std::move(message), now, write);
      created.first_message = stored;
      if (!stored.client_message_id().empty()) {
        const std::string fingerprint = request.first_message().SerializeAsString();
        write.fingerprints.push_back({stored.message_id(), fingerprint});
        keys.messages.push_back(absl::StrCat(session_id, "\n", stored.client_message_id()));
        live.message_keys->insert(absl::HashOf(stored.client_message_id()));
        first_key = PendingMessage{nullptr, stored, fingerprint};
      }
      bot_turn = has_bot;
      if (bot_turn) r.bot_turn_sequence = stored.sequence();
    }
    if (email_sla.has_value()) {
      // The customer learns at once when to expect a human's reply.
      AddMessage(r, SystemMessage(Acknowledgement(s, *email_sla)), now, write);
    }
    if (phone_closed.has_value()) BookCallback(r, *phone_closed, r, now, write);
    created.session = ViewFor(s, caller, now);
    BindToken(binding, verification_claims, session_id, now, write, keys);
    write.sessions.push_back(r);
    pending = storage::OrderedCommits::NewWrite();
    if (first_key || keyed) {
      absl::MutexLock durable_lock(&durable_mu_);
      if (first_key) {
        first_key->write = pending;
        pending_messages_[keys.messages.front()] = *std::move(first_key);
      }
      if (keyed) {
        keys.creations.push_back(request_key);
        pending_creations_[request_key] = {pending, session_id, created.first_message};
      }
    }
    Commit(std::move(write), std::move(keys), pending);
    break;
  }
  std::optional<v1::Message> first_turn;
  if (bot_turn) first_turn = created.first_message;
  Decision<Created> decided(std::move(created));
  decided.wait = std::move(pending);
  decided.on_durable = [this, first_turn = std::move(first_turn), routing, session_id] {
    fault::Point("sessions.create.after_commit");
    if (first_turn) StartBotTurn(*first_turn);
    if (routing) ScheduleRouting(session_id);
  };
  return decided;
}

Sessions::MemoryRead Sessions::ReadMemory(const Caller& caller,
                                          const std::string& session_id) {
  MemoryRead read;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Live*> live = FindLive(caller, session_id);
  if (!live.ok()) {
    read.answer = live.status();
  } else if (*live != nullptr) {
    // Never a state that is not durable yet (a crash could still take it
    // back): with a write in flight the answer waits for it, then looks
    // again (for a change made meanwhile).
    const std::shared_ptr<storage::PendingWrite>& pending = (*live)->last_write;
    if (pending != nullptr && !pending->settled()) {
      read.wait = pending;
    } else {
      read.answer = ViewFor((*live)->record.session, caller, clock_->Now());
    }
  }
  return read;
}

std::optional<absl::StatusOr<v1::Session>> Sessions::TryGet(const Caller& caller,
                                                            const std::string& session_id) {
  MemoryRead read = ReadMemory(caller, session_id);
  if (read.answer) return std::move(read.answer);
  if (read.wait != nullptr) return std::nullopt;
  std::optional<SessionRecord> cached = closed_.Get(session_id);
  if (!cached) return std::nullopt;
  const absl::Time now = clock_->Now();
  if (!MaySee(caller, cached->session, now)) return NotFound();
  return ViewFor(cached->session, caller, now);
}

absl::StatusOr<v1::Session> Sessions::Get(const Caller& caller,
                                          const std::string& session_id) {
  while (true) {
    MemoryRead read = ReadMemory(caller, session_id);
    if (read.answer) return *std::move(read.answer);
    if (read.wait == nullptr) break;
    if (absl::Status s = commits_.Await(read.wait); !s.ok()) return s;
  }
  if (std::optional<absl::StatusOr<v1::Session>> quick = TryGet(caller, session_id)) {
    return *std::move(quick);
  }
  absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
  if (!record.ok()) return record.status();
  return ViewFor(record->session, caller, clock_->Now());
}

void Sessions::GetAsync(const Caller& caller, const std::string& session_id,
                        Answer<v1::Session> done) {
  AnswerGet(caller, session_id, /*may_block=*/true, std::move(done));
}

void Sessions::AnswerGet(const Caller& caller, const std::string& session_id, bool may_block,
                         Answer<v1::Session> done) {
  MemoryRead read = ReadMemory(caller, session_id);
  if (read.answer) return done(*std::move(read.answer));
  if (read.wait != nullptr) {
    commits_.Then(read.wait, [this, caller, session_id,
                              done = std::move(done)](absl::Status durable) mutable {
      if (!durable.ok()) return done(durable);
      AnswerGet(caller, session_id, /*may_block=*/false, std::move(done));
    });
    return;
  }
  if (may_block) return done(Get(caller, session_id));
  // Left memory meanwhile (closed and evicted): the cache, else the store,
  // which the commit thread does not read.
  if (std::optional<absl::StatusOr<v1::Session>> quick = TryGet(caller, session_id)) {
    return done(*std::move(quick));
  }
  background_([this, caller, session_id, done = std::move(done)] {
    done(Get(caller, session_id));
  });
}

absl::StatusOr<Sessions::SessionPage> Sessions::List(const Caller& caller,
                                                     ListFilter filter, int page_size,
                                                     const std::string& page_token) {
  if (absl::Status s = ScopeListFilter(caller, filter, page_size); !s.ok()) return s;
  if (page_size == 0) page_size = 50;
  SessionQuery query;
  if (!page_token.empty()) {
    absl::StatusOr<std::pair<int64_t, std::string>> cursor = ParseSessionPageToken(page_token);
    if (!cursor.ok()) return cursor.status();
    query.before = *std::move(cursor);
  }
  query.customer_id = filter.customer_id;
  query.agent_id = filter.agent_id;
  query.states = filter.states;
  query.category = filter.category;
  query.channel = filter.channel;
  query.created_after = filter.created_after;
  query.created_before = filter.created_before;
  query.limit = page_size + 1;
  // The store's committed rows, read without the lock: a list never holds
  // up the calls that only need memory.
  absl::StatusOr<std::vector<v1::Session>> sessions = store_->ListSessions(query);
  if (!sessions.ok()) return sessions.status();
  SessionPage page;
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < sessions->size() && static_cast<int>(i) < page_size; ++i) {
    page.sessions.push_back(ViewFor((*sessions)[i], caller, now));
  }
  if (static_cast<int>(sessions->size()) > page_size) {
    const v1::Session& last = (*sessions)[page_size - 1];
    page.next_page_token =
        SessionPageToken(absl::ToUnixMicros(Ts(last.created_at())), last.session_id());
  }
  return page;
}

absl::StatusOr<Sessions::Sent> Sessions::ReplayMessage(const Caller& caller,
                                                       const std::string& fingerprint,
                                                       const v1::Message& stored,
                                                       const std::string& stored_fingerprint,
                                                       v1::SessionState state) {
  if (stored_fingerprint != fingerprint || stored.sender_id() != caller.id) {
    return absl::AlreadyExistsError(
        "client_message_id: already used in this session for a different message");
  }
  Sent sent;
  sent.message = stored;
  sent.replayed = true;
  sent.state = state;
  return sent;
}

absl::StatusOr<Sessions::Sent> Sessions::SendMessage(const Caller& caller,
                                                     const std::string& session_id,
                                                     const std::string& client_message_id,
                                                     const v1::NewMessage& message) {
  return AwaitAnswer(DecideMessage(caller, session_id, client_message_id, message));
}

void Sessions::SendMessageAsync(const Caller& caller, const std::string& session_id,
                                const std::string& client_message_id,
                                const v1::NewMessage& message, Answer<Sent> done) {
  AnswerWhenDurable(DecideMessage(caller, session_id, client_message_id, message),
                    std::move(done));
}

Sessions::Decision<Sessions::Sent> Sessions::DecideMessage(
    const Caller& caller, const std::string& session_id, const std::string& client_message_id,
    const v1::NewMessage& message) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (absl::Status s = ValidateKey("client_message_id", client_message_id, true); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateNewMessage("message", message); !s.ok()) return s;
  if (!message.quick_reply_id().empty() && caller.role != Role::kCustomer) {
    return absl::InvalidArgumentError("message.quick_reply_id: customers only");
  }
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  const std::string fingerprint = message.SerializeAsString();
  const std::string key = absl::StrCat(session_id, "\n", client_message_id);
  Sent sent;
  std::shared_ptr<storage::PendingWrite> pending;
  bool bot_turn = false;
  bool in_memory = true;
  while (true) {
    // The first write with this key: pending (wait for it, then answer as
    // it did), or in the store. The stamp catches one that settles while
    // the store is read; a write decided meanwhile is pending then.
    std::optional<PendingMessage> hit;
    uint64_t stamp = 0;
    v1::SessionState state = v1::SESSION_STATE_UNSPECIFIED;
    bool known_new = false;
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<Live*> live = FindLive(caller, session_id);
      if (!live.ok()) return live.status();
      if (*live == nullptr) {
        in_memory = false;
        break;
      }
      state = (*live)->record.session.state();
      const auto& held = (*live)->message_keys;
      known_new = held.has_value() && !held->contains(absl::HashOf(client_message_id));
      absl::MutexLock durable_lock(&durable_mu_);
      auto it = pending_messages_.find(key);
      if (it != pending_messages_.end()) hit = it->second;
      stamp = settled_.Stamp(key);
    }
    if (hit) {
      // Answered as the first write was, once it is durable (or with its
      // failure).
      Decision<Sent> replay(
          ReplayMessage(caller, fingerprint, hit->message, hit->fingerprint, state));
      replay.wait = hit->write;
      return replay;
    }
    absl::StatusOr<std::optional<StoredMessage>> stored = std::nullopt;
    if (!known_new) stored = store_->FindMessage(session_id, client_message_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) {
      return ReplayMessage(caller, fingerprint, (*stored)->message, (*stored)->fingerprint,
                           state);
    }
    absl::StatusOr<std::vector<v1::Attachment>> attached =
        AttachedFiles(caller, session_id, message);
    if (!attached.ok()) return attached.status();
    const absl::Time now = clock_->Now();
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> found = FindLive(caller, session_id);
    if (!found.ok()) return found.status();
    if (*found == nullptr) {
      in_memory = false;
      break;
    }
    {
      absl::MutexLock durable_lock(&durable_mu_);
      if (pending_messages_.contains(key) || settled_.Stamp(key) != stamp) continue;
    }
    SessionRecord& r = (*found)->record;
    v1::Session& s = r.session;
    const v1::SessionState state_now = s.state();
    if (absl::Status st = CheckMayWrite(caller, s); !st.ok()) return st;
    if (s.message_count() >= options_.max_messages) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the session has ", options_.max_messages, " messages; open a new one"));
    }
    if (absl::Status st = AdmitWrite(); !st.ok()) return st;
    auto& [window, count] = send_rate_[absl::StrCat(session_id, "\n", caller.id)];
    if (now - window >= absl::Seconds(1)) {
      window = now;
      count = 0;
    }
    if (++count > options_.max_messages_per_second) {
      return limits::Exhausted(absl::StrCat("more than ", options_.max_messages_per_second,
                                            " messages per second; slow down"),
                               window + absl::Seconds(1) - now);
    }
    SessionWrite write;
    v1::Message m;
    m.set_sender_role(SenderFor(caller.role));
    m.set_sender_id(caller.id);
    m.set_text(message.text());
    for (v1::Attachment& a : *attached) *m.add_attachments() = std::move(a);
    m.set_quick_reply_id(message.quick_reply_id());
    m.set_client_message_id(client_message_id);
    const v1::Message& stored_message = AddMessage(r, std::move(m), now, write);
    if ((*found)->message_keys) (*found)->message_keys->insert(absl::HashOf(client_message_id));
    sent.message = stored_message;
    sent.state = s.state();
    write.fingerprints.push_back({stored_message.message_id(), fingerprint});
    // A message changes only the columns a message touches, unless it is
    // the first human response (an SLA breach may come with it).
    bool only_messaged = true;
    if (caller.role != Role::kCustomer && !s.has_first_human_response_at()) {
      only_messaged = false;
      SetTs(now, s.mutable_first_human_response_at());
      const absl::Time created = Ts(s.created_at());
      if (metrics_) {
        metrics_->first_response(s.channel(), s.category())
            .Observe(absl::ToDoubleSeconds(now - created));
      }
      const bool within = !s.has_sla() || now <= Ts(s.sla().due_at());
      if (!within) BreachIfDue(r, now, write);
      AddFirstResponse(r, caller.id, stored_message.message_id(), within, now, write);
    }
    bot_turn = caller.role == Role::kCustomer && state_now == v1::SESSION_STATE_BOT;
    if (bot_turn) r.bot_turn_sequence = stored_message.sequence();
    if (only_messaged) {
      write.messaged_sessions.push_back(Messaged(r));
    } else {
      write.sessions.push_back(r);
    }
    pending = storage::OrderedCommits::NewWrite();
    {
      absl::MutexLock durable_lock(&durable_mu_);
      pending_messages_[key] = {pending, sent.message, fingerprint};
    }
    WriteKeys keys;
    keys.messages.push_back(key);
    Commit(std::move(write), std::move(keys), pending);
    break;
  }
  if (!in_memory) {
    // CLOSED and out of memory: only a retry of a message it holds succeeds.
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    absl::StatusOr<std::optional<StoredMessage>> stored =
        store_->FindMessage(session_id, client_message_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) {
      return ReplayMessage(caller, fingerprint, (*stored)->message, (*stored)->fingerprint,
                           record->session.state());
    }
    if (absl::Status s = CheckMayWrite(caller, record->session); !s.ok()) return s;
    return WrongState(record->session, "it accepts no messages");
  }
  Decision<Sent> decided(sent);
  decided.wait = std::move(pending);
  if (bot_turn) {
    decided.on_durable = [this, message = std::move(sent.message)] { StartBotTurn(message); };
  }
  return decided;
}

absl::StatusOr<std::vector<v1::Attachment>> Sessions::AttachedFiles(
    const Caller& caller, const std::string& session_id, const v1::NewMessage& message) {
  if (message.attachment_ids_size() > options_.max_attachments_per_message) {
    return absl::InvalidArgumentError(absl::StrCat("message.attachment_ids: at most ",
                                                   options_.max_attachments_per_message));
  }
  std::vector<v1::Attachment> attached;
  for (int i = 0; i < message.attachment_ids_size(); ++i) {
    const std::string field = absl::StrCat("message.attachment_ids[", i, "]");
    absl::StatusOr<std::optional<AttachmentRecord>> record =
        store_->FindAttachment(message.attachment_ids(i));
    if (!record.ok()) return record.status();
    const v1::Attachment* a = record->has_value() ? &(*record)->attachment : nullptr;
    if (a == nullptr || a->session_id() != session_id || a->uploader_id() != caller.id) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": no file you uploaded to this session has this id"));
    }
    if (a->state() == v1::ATTACHMENT_STATE_REJECTED ||
        a->state() == v1::ATTACHMENT_STATE_DELETED) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": the file is ", a->state() == v1::ATTACHMENT_STATE_REJECTED
                                       ? "REJECTED by the malware scan"
                                       : "DELETED"));
    }
    attached.push_back(*a);
  }
  return attached;
}

absl::Status Sessions::CheckUpload(const Caller& caller, const std::string& session_id) {
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live != nullptr) return CheckMayWrite(caller, (*live)->record.session);
  }
  absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
  if (!record.ok()) return record.status();
  if (absl::Status s = CheckMayWrite(caller, record->session); !s.ok()) return s;
  return WrongState(record->session, "it accepts no files");
}

absl::Status Sessions::CheckDownload(const Caller& caller, const std::string& session_id) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  std::optional<v1::Session> session;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id, /*past_agents=*/true);
    if (!live.ok()) return live.status();
    if (*live != nullptr) session = (*live)->record.session;
  }
  if (!session) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id, /*past_agents=*/true);
    if (!record.ok()) return record.status();
    session = std::move(record->session);
  }
  return MayDownload(caller, *session) ? absl::OkStatus() : NotFound();
}

absl::Status Sessions::WriteAttachment(const AttachmentRecord& record) {
  const v1::Attachment& a = record.attachment;
  const std::string key = absl::StrCat(a.session_id(), "\n", a.uploader_id(), "\n",
                                       record.upload_id);
  const absl::Status taken = absl::AlreadyExistsError(absl::StrCat(
      "upload_id ", record.upload_id, " is already used by another file in this session"));
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = attachment_writes_.try_emplace(key, a.attachment_id(), 0);
    if (it->second.first != a.attachment_id()) return taken;
    ++it->second.second;
  }
  // Whatever happens next, the key is released once its write is settled.
  auto release = [&] {
    absl::MutexLock lock(&mu_);
    auto it = attachment_writes_.find(key);
    if (it != attachment_writes_.end() && --it->second.second == 0) attachment_writes_.erase(it);
  };
  absl::StatusOr<std::optional<AttachmentRecord>> stored =
      store_->FindUpload(a.session_id(), a.uploader_id(), record.upload_id);
  if (!stored.ok() || (stored->has_value() &&
                       (*stored)->attachment.attachment_id() != a.attachment_id())) {
    release();
    return stored.ok() ? taken : stored.status();
  }
  std::shared_ptr<storage::PendingWrite> pending;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    status = AdmitWrite();
    if (status.ok()) {
      const absl::Time now = clock_->Now();
      SessionWrite write;
      write.attachments.push_back(record);
      auto live = sessions_.find(a.session_id());
      if (live != sessions_.end() &&
          live->second.record.session.state() != v1::SESSION_STATE_CLOSED) {
        SessionRecord& r = live->second.record;
        AddAttachmentUpdated(r, a, now, write);
        write.sessions.push_back(r);
      } else {
        // A CLOSED session takes no more events; the change still reaches
        // Kafka.
        AddAttachmentChanged(a, now, write);
      }
      pending = Commit(std::move(write));
    }
  }
  if (status.ok()) status = commits_.Await(pending);
  release();
  return status;
}

absl::Status Sessions::RecordDownload(const Caller& caller, const v1::Attachment& attachment,
                                      bool signed_url) {
  std::shared_ptr<storage::PendingWrite> pending;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = AdmitWrite(); !s.ok()) return s;
    SessionWrite write;
    AddAttachmentDownloaded(attachment, caller.id, std::string(auth::RoleName(caller.role)), signed_url,
                            clock_->Now(), write);
    pending = Commit(std::move(write));
  }
  return commits_.Await(pending);
}

absl::StatusOr<std::optional<AttachmentRecord>> Sessions::FindAttachment(
    const std::string& attachment_id) {
  return store_->FindAttachment(attachment_id);
}

absl::StatusOr<std::optional<AttachmentRecord>> Sessions::FindUpload(
    const std::string& session_id, const std::string& uploader_id,
    const std::string& upload_id) {
  return store_->FindUpload(session_id, uploader_id, upload_id);
}

absl::StatusOr<std::vector<AttachmentRecord>> Sessions::PendingScans(int limit) {
  return store_->PendingScans(limit);
}

absl::StatusOr<AttachmentBackend::Usage> Sessions::UploadedSince(
    const std::string& uploader_id, absl::Time since) {
  absl::StatusOr<std::pair<int, int64_t>> usage = store_->UploadedSince(uploader_id, since);
  if (!usage.ok()) return usage.status();
  return Usage{usage->first, usage->second};
}

absl::StatusOr<std::vector<AttachmentRecord>> Sessions::ExpiredAttachments(
    absl::Time closed_before, int limit) {
  return store_->ExpiredAttachments(closed_before, limit);
}

absl::StatusOr<bool> Sessions::BlobInUse(const std::string& blob_key) {
  return store_->BlobInUse(blob_key);
}

absl::StatusOr<std::vector<AttachmentRecord>> Sessions::ListAttachments(
    const std::string& after_id, int limit) {
  return store_->ListAttachments(after_id, limit);
}

void Sessions::StartBotTurn(const v1::Message& message) {
  BotTurnQueue::Admission admission;
  {
    absl::MutexLock lock(&mu_);
    admission = bot_turns_.Add(message);
  }
  switch (admission) {
    case BotTurnQueue::Admission::kQueued:
      return;
    case BotTurnQueue::Admission::kFull:
      // Not queued: this turn alone escalates; the running one, when it
      // answers, finds the session gone from the bot.
      background_([this, message] { BotTurn(message, /*shed=*/true); });
      return;
    case BotTurnQueue::Admission::kRunNow:
      if (!bot_executor_([this, message] { RunBotTurns(message, /*shed=*/false); })) {
        background_([this, message] { RunBotTurns(message, /*shed=*/true); });
      }
      return;
  }
}

void Sessions::RunBotTurns(v1::Message message, bool shed) {
  const std::string session_id = message.session_id();
  while (true) {
    BotTurn(message, shed);
    absl::MutexLock lock(&mu_);
    std::optional<v1::Message> next = bot_turns_.Next(session_id);
    if (!next) return;
    message = *std::move(next);
  }
}

void Sessions::BotTurn(const v1::Message& message, bool shed) {
  const std::string& session_id = message.session_id();
  bot::v1::AnswerRequest request;
  absl::Time bot_since;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() ||
        it->second.record.session.state() != v1::SESSION_STATE_BOT) {
      return;
    }
    bot_since = it->second.record.bot_since;
    request = AnswerRequestFor(it->second.record.session, message);
  }
  const absl::Time started = clock_->Now();
  fault::Point("sessions.bot_turn.before_answer");
  absl::StatusOr<bot::v1::AnswerResponse> answer =
      shed             ? absl::ResourceExhaustedError("bot turns backlog full")
      : bot_ == nullptr ? absl::UnavailableError("bot not configured")
                        : bot_->Answer(request);
  fault::Point("sessions.bot_turn.after_answer");
  if (!answer.ok() && !shed) {
    log::Warning("bot_unavailable", {{"session_id", session_id},
                                     {"error", answer.status().ToString()}});
  }
  const bool escalates =
      !answer.ok() || answer->outcome() == bot::v1::ANSWER_OUTCOME_ESCALATED;
  std::vector<common::v1::TranscriptLine> excerpt;
  if (escalates) excerpt = Excerpt(session_id);
  if (!commits_.CheckWritable().ok()) return;
  std::shared_ptr<storage::PendingWrite> pending;
  bool escalated = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    SessionRecord& r = it->second.record;
    v1::Session& s = r.session;
    const absl::Time now = clock_->Now();
    if (metrics_ && !shed) {
      metrics_->bot_turn(s.channel(), s.category())
          .Observe(absl::ToDoubleSeconds(now - started));
    }
    // Once a session left the bot (or came back to it since), this turn's
    // answer is stale: the bot stays out.
    if (s.state() != v1::SESSION_STATE_BOT || r.bot_since != bot_since) return;
    if (!commits_.CheckWritable().ok()) return;
    SessionWrite write;
    if (r.bot_turn_sequence == message.sequence()) r.bot_turn_sequence = 0;
    if (metrics_) {
      if (shed) {
        metrics_->bot_shed->Increment();
      } else if (!answer.ok()) {
        metrics_->bot_unavailable->Increment();
      } else {
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
    }
    if (answer.ok()) ++r.bot_turns;
    BotPlan plan = PlanBotTurn(answer, s);
    const Category previous = s.category();
    // The intent the change is about: the one answered, else the first guess.
    std::string intent_id;
    float confidence = 0;
    if (answer.ok()) {
      intent_id = answer->answered_intent_id();
      if (!answer->intent_guesses().empty()) {
        if (intent_id.empty()) intent_id = answer->intent_guesses(0).intent_id();
        confidence = answer->intent_guesses(0).confidence();
      }
    }
    if (plan.category) {
      // Before the reply and any hand-off: the session is the bot's
      // category from here on, for queues and reports.
      s.set_category(*plan.category);
      AddCategoryChanged(s, previous, events::v1::CATEGORY_SOURCE_BOT_ANSWER, intent_id,
                         confidence, now, write);
    }
    if (plan.reply) AddMessage(r, *std::move(plan.reply), now, write);
    const Category before_escalation = s.category();
    const size_t events_before_escalation = write.events.size();
    if (plan.escalate &&
        sessions::Escalate(r, std::move(plan.handoff), std::move(excerpt), "bot", now, write)
            .ok()) {
      if (s.category() != before_escalation) {
        // Ahead of SessionEscalated, as for an answer: consumers see the
        // category the hand-off is made in before the hand-off.
        SessionWrite change;
        AddCategoryChanged(s, before_escalation, events::v1::CATEGORY_SOURCE_BOT_ESCALATION,
                           intent_id, confidence, now, change);
        write.events.insert(write.events.begin() + events_before_escalation,
                            std::move(change.events.front()));
      }
      QueueFor(r, routing::v1::ENQUEUE_REASON_ESCALATED);
      escalated = true;
    }
    write.sessions.push_back(r);
    pending = Commit(std::move(write));
  }
  // The bot's threads do not wait for the commit: the session's next turn
  // decides on the state in memory and commits after this one. Routing
  // hears of an escalation once it is durable.
  if (escalated) {
    commits_.Then(pending, [this, session_id](absl::Status status) {
      if (status.ok()) ScheduleRouting(session_id);
    });
  }
}

void Sessions::ResumeBotTurns() {
  std::vector<std::pair<std::string, int64_t>> turns;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, live] : sessions_) {
      const SessionRecord& r = live.record;
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
    const v1::Message message = (*events)[0].message();
    {
      absl::MutexLock lock(&mu_);
      if (bot_turns_.Add(message) != BotTurnQueue::Admission::kRunNow) continue;
    }
    // At start the backlog is the previous run's, not a burst: what the
    // bot's pool has no room for runs here rather than being shed.
    if (!bot_executor_([this, message] { RunBotTurns(message, /*shed=*/false); })) {
      RunBotTurns(message, /*shed=*/false);
    }
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
    absl::StatusOr<int64_t> last = ParseMessagePageToken(page_token);
    if (!last.ok()) return last.status();
    if (newest_first) {
      before = before == 0 ? *last : std::min(before, *last);
    } else {
      after = std::max(after, *last);
    }
  }
  MessagePage page;
  bool in_memory;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      absl::MutexLock listeners_lock(&listeners_mu_);
      auto it = committed_.find(session_id);
      page.last_sequence = it == committed_.end() ? 0 : it->second;
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    page.last_sequence = record->session.last_sequence();
  }
  absl::StatusOr<std::vector<v1::Message>> messages =
      store_->ReadMessages(session_id, after, before, newest_first, page_size + 1);
  if (!messages.ok()) return messages.status();
  if (static_cast<int>(messages->size()) > page_size) {
    messages->resize(page_size);
    page.next_page_token = MessagePageToken(messages->back().sequence());
  }
  page.messages = std::move(*messages);
  return page;
}

absl::StatusOr<int64_t> Sessions::Subscribe(const Caller& caller,
                                            const std::string& session_id, int64_t after,
                                            SessionListener* listener) {
  if (after < 0) return absl::InvalidArgumentError("after_sequence: must not be negative");
  int64_t committed = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live != nullptr) {
      absl::MutexLock listeners_lock(&listeners_mu_);
      auto it = committed_.find(session_id);
      committed = it == committed_.end() ? 0 : it->second;
      if (after > committed) {
        return absl::OutOfRangeError(absl::StrCat(
            "after_sequence: above the session's last sequence ", committed));
      }
      listeners_[session_id].insert(listener);
      return committed;
    }
  }
  absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
  if (!record.ok()) return record.status();
  committed = record->session.last_sequence();
  if (after > committed) {
    return absl::OutOfRangeError(
        absl::StrCat("after_sequence: above the session's last sequence ", committed));
  }
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

std::optional<absl::StatusOr<absl::Time>> Sessions::TryUpdateTyping(
    const Caller& caller, const std::string& session_id, bool typing) {
  const absl::Time now = clock_->Now();
  v1::TypingIndication indication;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live == nullptr) return std::nullopt;
    const v1::Session& s = (*live)->record.session;
    if (s.state() == v1::SESSION_STATE_CLOSED) return WrongState(s, "no typing");
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

absl::StatusOr<absl::Time> Sessions::UpdateTyping(const Caller& caller,
                                                  const std::string& session_id,
                                                  bool typing) {
  if (auto quick = TryUpdateTyping(caller, session_id, typing)) return *std::move(quick);
  absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
  if (!record.ok()) return record.status();
  return WrongState(record->session, "no typing");
}

absl::StatusOr<Sessions::Verified> Sessions::AttachVerification(
    const Caller& caller, const std::string& session_id, const std::string& token) {
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  Verified verified;
  std::shared_ptr<storage::PendingWrite> pending;
  while (true) {
    absl::StatusOr<TokenBindingRead> binding = ReadTokenBinding(token, now);
    if (!binding.ok()) return binding.status();
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live == nullptr) break;
    SessionRecord& r = (*live)->record;
    auth::VerificationClaims claims;
    absl::StatusOr<common::v1::VerificationState> v = CheckVerification(
        *tokens_, token, r.session.customer_id(), session_id, now, &claims);
    if (!v.ok()) return v.status();
    if (r.session.state() == v1::SESSION_STATE_CLOSED) {
      return WrongState(r.session, "read-only");
    }
    std::optional<absl::Status> usable = CheckTokenBinding(*binding, session_id);
    if (!usable.has_value()) continue;
    if (!usable->ok()) return *usable;
    if (absl::Status s = AdmitWrite(); !s.ok()) return s;
    SessionWrite write;
    WriteKeys keys;
    *r.session.mutable_verification() = *v;
    v1::SessionEvent& event = AddEvent(r, now, write);
    *event.mutable_verification_attached() = *v;
    verified.verification = *v;
    verified.sequence = event.sequence();
    AddVerificationAttached(r.session, *v, now, write);
    BindToken(*binding, claims, session_id, now, write, keys);
    write.sessions.push_back(r);
    pending = Commit(std::move(write), std::move(keys));
    break;
  }
  if (pending == nullptr) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    absl::StatusOr<common::v1::VerificationState> v =
        CheckVerification(*tokens_, token, record->session.customer_id(), session_id, now);
    if (!v.ok()) return v.status();
    return WrongState(record->session, "read-only");
  }
  if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
  return verified;
}

absl::StatusOr<v1::Session> Sessions::Escalate(const Caller& caller,
                                               const std::string& session_id) {
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  // The excerpt is read before the decision, without the lock; only a
  // session in BOT needs one.
  std::vector<common::v1::TranscriptLine> excerpt;
  bool excerpt_read = false;
  while (true) {
    v1::Session view;
    std::shared_ptr<storage::PendingWrite> durable;
    std::shared_ptr<storage::PendingWrite> pending;
    bool in_memory = true;
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<Live*> live = FindLive(caller, session_id);
      if (!live.ok()) return live.status();
      if (*live == nullptr) {
        in_memory = false;
      } else {
        SessionRecord& r = (*live)->record;
        const v1::SessionState state = r.session.state();
        if (state == v1::SESSION_STATE_RESOLVED || state == v1::SESSION_STATE_CLOSED) {
          return WrongState(r.session, "cannot escalate");
        }
        view = ViewFor(r.session, caller, clock_->Now());
        if (state != v1::SESSION_STATE_BOT) {
          durable = (*live)->last_write;
        } else if (excerpt_read) {
          if (absl::Status s = AdmitWrite(); !s.ok()) return s;
          SessionWrite write;
          common::v1::HandoffContext handoff;
          handoff.set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
          const absl::Time now = clock_->Now();
          sessions::Escalate(r, std::move(handoff), std::move(excerpt), caller.id, now, write)
              .IgnoreError();  // in BOT: always allowed
          QueueFor(r, routing::v1::ENQUEUE_REASON_ESCALATED);
          write.sessions.push_back(r);
          view = ViewFor(r.session, caller, now);
          pending = Commit(std::move(write));
        }
      }
    }
    if (!in_memory) {
      absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
      if (!record.ok()) return record.status();
      return WrongState(record->session, "cannot escalate");
    }
    if (pending != nullptr) {
      if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
      ScheduleRouting(session_id);
      return view;
    }
    if (view.state() != v1::SESSION_STATE_BOT) {
      // Already past BOT: answered once what it shows is durable.
      if (absl::Status s = commits_.Await(durable); !s.ok()) return s;
      return view;
    }
    excerpt = Excerpt(session_id);
    excerpt_read = true;
  }
}

absl::Status Sessions::RecordOffer(const Caller& caller, const std::string& session_id,
                                   const std::string& agent_id, const std::string& offer_id,
                                   absl::Time expires_at) {
  return AwaitAnswer(DecideRecordOffer(caller, session_id, agent_id, offer_id, expires_at))
      .status();
}

void Sessions::RecordOfferAsync(const Caller& caller, const std::string& session_id,
                                const std::string& agent_id, const std::string& offer_id,
                                absl::Time expires_at, std::function<void(absl::Status)> done) {
  AnswerWhenDurable<std::monostate>(
      DecideRecordOffer(caller, session_id, agent_id, offer_id, expires_at),
      [done = std::move(done)](absl::StatusOr<std::monostate> recorded) {
        done(recorded.status());
      });
}

Sessions::Decision<std::monostate> Sessions::DecideRecordOffer(const Caller& caller,
                                                              const std::string& session_id,
                                                              const std::string& agent_id,
                                                              const std::string& offer_id,
                                                              absl::Time expires_at) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("offer_id", offer_id); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  if (expires_at <= now) {
    return absl::InvalidArgumentError("expires_at: must be in the future");
  }
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  bool replaced = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live != nullptr) {
      SessionRecord& r = (*live)->record;
      if (r.session.state() != v1::SESSION_STATE_QUEUED) {
        return WrongState(r.session, "not QUEUED");
      }
      if (absl::Status s = AdmitWrite(); !s.ok()) return s;
      replaced =
          !r.session.offered_agent_id().empty() && r.session.offered_agent_id() != agent_id;
      r.session.set_offered_agent_id(agent_id);
      SetTs(expires_at, r.session.mutable_offer_expires_at());
      SessionWrite write;
      write.sessions.push_back(r);
      pending = Commit(std::move(write));
    }
  }
  if (pending == nullptr) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    return WrongState(record->session, "not QUEUED");
  }
  Decision<std::monostate> decided(std::monostate{});
  decided.wait = std::move(pending);
  if (replaced) decided.on_durable = [this, session_id] { NotifyAccess(session_id); };
  return decided;
}

absl::StatusOr<v1::Session> Sessions::AssignAgent(const Caller& caller,
                                                  const std::string& session_id,
                                                  const std::string& agent_id,
                                                  const std::string& display_name,
                                                  const std::string& offer_id) {
  return AwaitAnswer(DecideAssignAgent(caller, session_id, agent_id, display_name, offer_id));
}

void Sessions::AssignAgentAsync(const Caller& caller, const std::string& session_id,
                                const std::string& agent_id, const std::string& display_name,
                                const std::string& offer_id, Answer<v1::Session> done) {
  AnswerWhenDurable(DecideAssignAgent(caller, session_id, agent_id, display_name, offer_id),
                    std::move(done));
}

Sessions::Decision<v1::Session> Sessions::DecideAssignAgent(const Caller& caller,
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
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  // An offer applied once is answered as applied whatever the session did
  // since: routing retries an accept it could not record (its leader died
  // between this call and its own commit) possibly after the session was
  // resolved or closed, and must learn that the assignment happened.
  const std::string offer_key = AppliedOfferKey(offer_id);
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      v1::Session& s = r.session;
      const absl::Time now = clock_->Now();
      if (SeenRequest(r, offer_key) ||
          (s.state() == v1::SESSION_STATE_ASSIGNED && s.assigned_agent_id() == agent_id)) {
        view = ViewFor(s, caller, now);
        pending = (*live)->last_write;
      } else {
        if (s.state() != v1::SESSION_STATE_QUEUED) {
          return WrongState(s, s.state() == v1::SESSION_STATE_ASSIGNED
                                   ? "assigned to another agent"
                                   : "only QUEUED sessions can be assigned");
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
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
            .IgnoreError();  // QUEUED -> ASSIGNED
        ++r.assignments;
        if (metrics_) {
          metrics_->queue_wait(s.channel(), s.category())
              .Observe(absl::ToDoubleSeconds(now - queued_at));
        }
        AddAgentAssigned(r, offer_id, queued_at, now, write);
        RememberRequest(r, offer_key);
        write.sessions.push_back(r);
        view = ViewFor(s, caller, now);
        pending = Commit(std::move(write));
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    if (SeenRequest(*record, offer_key)) {
      return ViewFor(record->session, caller, clock_->Now());
    }
    return WrongState(record->session, "only QUEUED sessions can be assigned");
  }
  Decision<v1::Session> decided(std::move(view));
  decided.wait = std::move(pending);
  return decided;
}

absl::StatusOr<v1::Session> Sessions::Transfer(const Caller& caller,
                                               const v1::TransferSessionRequest& request) {
  if (absl::Status s = ValidateTransfer(request); !s.ok()) return s;
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  const std::string& session_id = request.session_id();
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  bool decided = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      v1::Session& s = r.session;
      const absl::Time now = clock_->Now();
      if (SeenRequest(r, request.request_id())) {
        view = ViewFor(s, caller, now);
        pending = (*live)->last_write;
      } else {
        if (s.state() != v1::SESSION_STATE_ASSIGNED) {
          return WrongState(s, "only ASSIGNED sessions can be transferred");
        }
        const std::string from_agent = s.assigned_agent_id();
        const Category from_category = s.category();
        if (request.has_queue() && request.queue().category() == s.category() &&
            (request.queue().language().empty() ||
             request.queue().language() == s.language())) {
          return absl::InvalidArgumentError("queue: the session is already in that queue");
        }
        if (request.target_case() == v1::TransferSessionRequest::kAgentId &&
            request.agent_id() == from_agent) {
          return absl::InvalidArgumentError(
              "agent_id: the session is already with that agent");
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
        SessionWrite write;
        LeaveAgent(s, now);
        s.set_transfer_count(s.transfer_count() + 1);
        s.set_transfer_note(request.note());
        if (request.to_bot()) {
          Transition(r, v1::SESSION_STATE_BOT, v1::STATE_CHANGE_REASON_HANDED_BACK_TO_BOT,
                     caller.id, now, write)
              .IgnoreError();  // ASSIGNED -> BOT
          r.bot_since = now;
          r.bot_turns = 0;
          r.cancel_reason = routing::v1::CANCEL_REASON_HANDED_BACK_TO_BOT;
          SetRoutingPending(r);
        } else {
          if (request.has_queue()) {
            s.set_category(request.queue().category());
            if (!request.queue().language().empty()) s.set_language(request.queue().language());
          }
          Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_TRANSFERRED,
                     caller.id, now, write)
              .IgnoreError();  // ASSIGNED -> QUEUED
          QueueFor(r, routing::v1::ENQUEUE_REASON_TRANSFERRED);
          r.enqueue.set_transfer_note(request.note());
          r.enqueue.set_at_head(true);
          if (request.target_case() == v1::TransferSessionRequest::kAgentId) {
            r.enqueue.set_target_agent_id(request.agent_id());
          }
          r.enqueue.set_excluded_agent_id(from_agent);
        }
        RememberRequest(r, request.request_id());
        AddSessionTransferred(s, from_agent, from_category, caller.id, request, now, write);
        write.sessions.push_back(r);
        view = ViewFor(s, caller, now);
        pending = Commit(std::move(write));
        decided = true;
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    if (SeenRequest(*record, request.request_id())) {
      return ViewFor(record->session, caller, clock_->Now());
    }
    return WrongState(record->session, "only ASSIGNED sessions can be transferred");
  }
  if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
  if (!decided) return view;
  if (request.to_bot() && bot_ != nullptr) {
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
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      v1::Session& s = r.session;
      const absl::Time now = clock_->Now();
      if (s.state() == v1::SESSION_STATE_QUEUED) {
        view = ViewFor(s, caller, now);
        pending = (*live)->last_write;
      } else {
        if (s.state() != v1::SESSION_STATE_ASSIGNED || s.assigned_agent_id() != agent_id) {
          return WrongState(s, absl::StrCat("not ASSIGNED to ", agent_id));
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
        const absl::Time assigned_at = Ts(s.assigned_at());
        SessionWrite write;
        LeaveAgent(s, now);
        Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_AGENT_UNAVAILABLE,
                   caller.id, now, write)
            .IgnoreError();  // ASSIGNED -> QUEUED
        // Routing queued it itself; the template is for later retries only.
        r.enqueue.set_reason(routing::v1::ENQUEUE_REASON_TRANSFERRED);
        AddSessionRequeued(s, agent_id, assigned_at, now, write);
        write.sessions.push_back(r);
        view = ViewFor(s, caller, now);
        pending = Commit(std::move(write));
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    return WrongState(record->session, absl::StrCat("not ASSIGNED to ", agent_id));
  }
  if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
  return view;
}

absl::StatusOr<v1::Session> Sessions::Resolve(const Caller& caller,
                                              const std::string& session_id,
                                              const std::string& summary,
                                              const std::string& request_id) {
  return AwaitAnswer(DecideResolve(caller, session_id, summary, request_id));
}

void Sessions::ResolveAsync(const Caller& caller, const std::string& session_id,
                            const std::string& summary, const std::string& request_id,
                            Answer<v1::Session> done) {
  AnswerWhenDurable(DecideResolve(caller, session_id, summary, request_id), std::move(done));
}

Sessions::Decision<v1::Session> Sessions::DecideResolve(const Caller& caller,
                                                        const std::string& session_id,
                                                        const std::string& summary,
                                                        const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("resolution_summary", summary, kMaxSummary);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  bool routing = false;
  {
    absl::MutexLock lock(&mu_);
    // Past agents too: the agent who resolved it is no longer assigned, and
    // their retry must get the first answer, not NOT_FOUND.
    absl::StatusOr<Live*> live = FindLive(caller, session_id, /*past_agents=*/true);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      v1::Session& s = r.session;
      const absl::Time now = clock_->Now();
      const v1::SessionState from = s.state();
      const bool replay = from == v1::SESSION_STATE_RESOLVED || SeenRequest(r, request_id);
      if (caller.role == Role::kAgent && s.assigned_agent_id() != caller.id &&
          !(replay && r.resolved_by == caller.id)) {
        return NotFound();
      }
      if (replay) {
        view = ViewFor(s, caller, now);
        pending = (*live)->last_write;
      } else {
        if (from == v1::SESSION_STATE_BOT && caller.role != Role::kCustomer) {
          return WrongState(s, "only the customer may resolve a session the bot handled");
        }
        if (from != v1::SESSION_STATE_BOT && from != v1::SESSION_STATE_ASSIGNED) {
          return WrongState(s,
                            "only ASSIGNED (or BOT, by the customer) sessions can be resolved");
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
        SessionWrite write;
        const std::string agent = s.assigned_agent_id();
        Transition(r, v1::SESSION_STATE_RESOLVED, v1::STATE_CHANGE_REASON_RESOLVED, caller.id,
                   now, write)
            .IgnoreError();  // BOT or ASSIGNED -> RESOLVED
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
        // The invitation to rate, in the stream and the transcript.
        AddMessage(r, SystemMessage(RatingInvitation(s.language())), now, write);
        if (metrics_) {
          metrics_->resolution(s.channel(), s.category())
              .Observe(absl::ToDoubleSeconds(now - Ts(s.created_at())));
        }
        AddSessionResolved(r, from, agent, caller.id, RoleWord(caller.role), now, write);
        write.sessions.push_back(r);
        view = ViewFor(s, caller, now);
        pending = Commit(std::move(write));
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id, /*past_agents=*/true);
    if (!record.ok()) return record.status();
    if (caller.role == Role::kAgent && record->resolved_by != caller.id) return NotFound();
    if (SeenRequest(*record, request_id)) {
      return ViewFor(record->session, caller, clock_->Now());
    }
    return WrongState(record->session,
                      "only ASSIGNED (or BOT, by the customer) sessions can be resolved");
  }
  Decision<v1::Session> decided(std::move(view));
  decided.wait = std::move(pending);
  if (routing) decided.on_durable = [this, session_id] { ScheduleRouting(session_id); };
  return decided;
}

absl::StatusOr<v1::Session> Sessions::Reopen(const Caller& caller,
                                             const std::string& session_id,
                                             const std::string& reason,
                                             const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("reason", reason, kMaxReason); !s.ok()) {
    return s;
  }
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  bool decided = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id, /*past_agents=*/true);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      v1::Session& s = r.session;
      const absl::Time now = clock_->Now();
      if (SeenRequest(r, request_id)) {
        view = ViewFor(s, caller, now);
        pending = (*live)->last_write;
      } else {
        if (s.state() != v1::SESSION_STATE_RESOLVED) {
          return WrongState(s, "only RESOLVED sessions can be reopened");
        }
        if (now > Ts(s.reopenable_until())) {
          return absl::FailedPreconditionError(
              "the reopen window has passed: open a new session");
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
        const absl::Time resolved_at = Ts(s.resolved_at());
        SessionWrite write;
        if (!reason.empty()) {
          AddMessage(r, SystemMessage(absl::StrCat("Reopened: ", reason)), now, write);
        }
        Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_REOPENED, caller.id,
                   now, write)
            .IgnoreError();  // RESOLVED -> QUEUED
        s.set_reopen_count(s.reopen_count() + 1);
        s.clear_reopenable_until();
        QueueFor(r, routing::v1::ENQUEUE_REASON_REOPENED);
        r.enqueue.set_at_head(true);
        r.enqueue.set_priority(routing::v1::PRIORITY_HIGH);
        if (s.category() == common::v1::CATEGORY_ACCOUNT_SECURITY ||
            s.category() == common::v1::CATEGORY_FROZEN_FUNDS) {
          r.enqueue.set_priority(routing::v1::PRIORITY_URGENT);
        }
        r.enqueue.set_preferred_agent_id(r.resolved_by);
        RememberRequest(r, request_id);
        AddSessionReopened(r, caller.id, resolved_at, now, write);
        write.sessions.push_back(r);
        view = ViewFor(s, caller, now);
        pending = Commit(std::move(write));
        decided = true;
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record =
        ReadClosed(caller, session_id, /*past_agents=*/true);
    if (!record.ok()) return record.status();
    if (SeenRequest(*record, request_id)) {
      return ViewFor(record->session, caller, clock_->Now());
    }
    return WrongState(record->session, "only RESOLVED sessions can be reopened");
  }
  if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
  if (decided) ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<v1::Session> Sessions::ContinueByEmail(const Caller& caller,
                                                      const std::string& session_id) {
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  // The EMAIL due time may need routing: asked first, without the lock, for
  // the session's category and language as they are now.
  std::optional<EmailSla> sla;
  {
    std::optional<std::pair<common::v1::Category, std::string>> queue;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      if (it != sessions_.end()) {
        queue.emplace(it->second.record.session.category(), it->second.record.session.language());
      }
    }
    if (queue.has_value()) sla = EmailSlaFor(queue->first, queue->second, clock_->Now());
  }
  std::shared_ptr<storage::PendingWrite> pending;
  v1::Session view;
  bool switched = false;
  bool in_memory = true;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record = ReadClosed(caller, session_id);
    if (!record.ok()) return record.status();
    return WrongState(record->session, "only a waiting chat can continue by email");
  }
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    if (*live == nullptr) {
      return absl::FailedPreconditionError(
          "session_id: the session closed meanwhile; only a waiting chat can continue by email");
    }
    SessionRecord& r = (*live)->record;
    const absl::Time now = clock_->Now();
    if (r.session.channel() == common::v1::CHANNEL_EMAIL &&
        r.session.continued_from() == common::v1::CHANNEL_CHAT) {
      // A retry: answered once the switch is durable.
      view = ViewFor(r.session, caller, now);
      pending = (*live)->last_write;
    } else {
      if (r.session.state() != v1::SESSION_STATE_QUEUED ||
          r.session.channel() != common::v1::CHANNEL_CHAT) {
        return WrongState(r.session, "only a waiting chat can continue by email");
      }
      if (caller.role != auth::Role::kCustomer) {
        return absl::PermissionDeniedError(
            "ContinueByEmail: only the session's customer may switch it to email");
      }
      if (absl::Status s = AdmitWrite(); !s.ok()) return s;
      // The category may have changed since routing was asked: then the
      // calendar target of the new category applies.
      if (!sla.has_value() || !options_.business_hours_sla_categories.contains(
                                  r.session.category())) {
        auto target = options_.email_sla_by_category.find(r.session.category());
        sla = EmailSla{target != options_.email_sla_by_category.end() ? target->second
                                                                      : options_.email_sla,
                       absl::InfinitePast(), false, ""};
        sla->due = now + sla->target;
      }
      SessionWrite write;
      r.session.set_channel(common::v1::CHANNEL_EMAIL);
      r.session.set_continued_from(common::v1::CHANNEL_CHAT);
      SetEmailSla(r.session, *sla);
      AddMessage(r, SystemMessage(Acknowledgement(r.session, *sla)), now, write);
      AddChannelChanged(r.session, common::v1::CHANNEL_CHAT, now, write);
      // Routing moves the waiting entry to the EMAIL queue.
      QueueFor(r, routing::v1::ENQUEUE_REASON_ESCALATED);
      write.sessions.push_back(r);
      view = ViewFor(r.session, caller, now);
      pending = Commit(std::move(write));
      switched = true;
    }
  }
  if (absl::Status s = switched ? commits_.Await(pending) : commits_.Await(pending); !s.ok()) return s;
  if (switched) ScheduleRouting(session_id);
  return view;
}

absl::StatusOr<v1::Session> Sessions::Close(const Caller& caller,
                                            const std::string& session_id,
                                            v1::CloseReason requested) {
  return AwaitAnswer(DecideClose(caller, session_id, requested));
}

void Sessions::CloseAsync(const Caller& caller, const std::string& session_id,
                          v1::CloseReason requested, Answer<v1::Session> done) {
  AnswerWhenDurable(DecideClose(caller, session_id, requested), std::move(done));
}

Sessions::Decision<v1::Session> Sessions::DecideClose(const Caller& caller,
                                                      const std::string& session_id,
                                                      v1::CloseReason requested) {
  absl::StatusOr<v1::CloseReason> reason = CloseReasonFor(caller, requested);
  if (!reason.ok()) return reason.status();
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  v1::Session view;
  std::shared_ptr<storage::PendingWrite> pending;
  bool in_memory = true;
  bool decided = false;
  bool routing = false;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id, /*past_agents=*/true);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& r = (*live)->record;
      const absl::Time now = clock_->Now();
      if (r.session.state() == v1::SESSION_STATE_CLOSED) {
        view = ViewFor(r.session, caller, now);
        pending = (*live)->last_write;
      } else {
        if ((caller.role == Role::kAgent || caller.role == Role::kService) &&
            r.session.state() != v1::SESSION_STATE_RESOLVED) {
          return WrongState(r.session, "agents and services close RESOLVED sessions only");
        }
        if (absl::Status st = AdmitWrite(); !st.ok()) return st;
        SessionWrite write;
        if (absl::Status st = CloseLocked(r, *reason, caller.id, now, write); !st.ok()) {
          return st;
        }
        routing = r.routing_pending;
        write.sessions.push_back(r);
        view = ViewFor(r.session, caller, now);
        pending = Commit(std::move(write));
        decided = true;
      }
    }
  }
  if (!in_memory) {
    absl::StatusOr<SessionRecord> record =
        ReadClosed(caller, session_id, /*past_agents=*/true);
    if (!record.ok()) return record.status();
    return ViewFor(record->session, caller, clock_->Now());
  }
  Decision<v1::Session> decision(std::move(view));
  decision.wait = std::move(pending);
  if (decided) {
    decision.on_durable = [this, routing, session_id] {
      if (routing) ScheduleRouting(session_id);
      MaybeEvict(session_id);
    };
  }
  return decision;
}

absl::StatusOr<Sessions::Callback> Sessions::RequestCallback(
    const Caller& caller, const std::string& session_id, const v1::CallbackDetails& details,
    const std::string& request_id) {
  if (absl::Status s = ValidateKey("request_id", request_id, false); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  Callback result;
  std::shared_ptr<storage::PendingWrite> pending;
  std::string phone_id;
  bool in_memory = true;
  bool decided = false;
  // The phone desk's hours, asked before deciding and without the lock, for
  // the origin's category and language as they are now.
  std::optional<routing::v1::QueueHours> phone_closed;
  {
    std::optional<std::pair<common::v1::Category, std::string>> queue;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      if (it != sessions_.end()) {
        queue.emplace(it->second.record.session.category(), it->second.record.session.language());
      }
    }
    if (queue.has_value()) phone_closed = ClosedPhoneHours(queue->first, queue->second);
  }
  while (true) {
    absl::StatusOr<TokenBindingRead> binding =
        ReadTokenBinding(details.verification_token(), now);
    if (!binding.ok()) return binding.status();
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Live*> live = FindLive(caller, session_id);
    if (!live.ok()) return live.status();
    in_memory = *live != nullptr;
    if (in_memory) {
      SessionRecord& origin = (*live)->record;
      // A retry: its PHONE session is remembered until the origin closes.
      if (SeenRequest(origin, request_id) && !origin.pending_callback_session_id.empty()) {
        phone_id = origin.pending_callback_session_id;
        pending = (*live)->last_write;
      } else {
        if (absl::Status s = ValidateCallbackDetails("callback", details, now); !s.ok()) {
          return s;
        }
        auth::VerificationClaims claims;
        absl::StatusOr<common::v1::VerificationState> verification =
            CheckVerification(*tokens_, details.verification_token(),
                              origin.session.customer_id(), session_id, now, &claims);
        if (!verification.ok()) {
          return absl::Status(verification.status().code(),
                              absl::StrCat("callback.", verification.status().message()));
        }
        if (origin.session.state() == v1::SESSION_STATE_CLOSED) {
          return WrongState(origin.session, "open a new session");
        }
        std::optional<absl::Status> usable = CheckTokenBinding(*binding, session_id);
        if (!usable.has_value()) continue;
        if (!usable->ok()) {
          return absl::Status(usable->code(), absl::StrCat("callback.", usable->message()));
        }
        if (!origin.pending_callback_id.empty()) {
          // The PHONE session serving it is open work, so it is in memory
          // if it is still open.
          auto phone = sessions_.find(origin.pending_callback_session_id);
          if (phone != sessions_.end() && Open(phone->second.record.session.state())) {
            return absl::FailedPreconditionError(
                "a callback is already pending for this session");
          }
        }
        if (absl::Status s = AdmitWrite(); !s.ok()) return s;
        phone_id = absl::StrCat("s-", events::RandomUuid());
        SessionRecord& phone = sessions_[phone_id].record;
        phone = CallbackSessionRecord(phone_id, absl::StrCat("cb-", events::RandomUuid()),
                                      origin.session, details, *verification, now);
        const v1::Session& p = phone.session;
        const v1::CallbackRequest* cb = &p.callback();
        SessionWrite write;
        Transition(phone, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_CREATED, caller.id,
                   now, write)
            .IgnoreError();  // a new session may enter any state
        QueueFor(phone, routing::v1::ENQUEUE_REASON_CALLBACK);
        if (phone_closed.has_value()) BookCallback(phone, *phone_closed, origin, now, write);
        AddSessionCreated(p, now, write);

        origin.pending_callback_id = cb->callback_id();
        origin.pending_callback_session_id = phone_id;
        RememberRequest(origin, request_id);
        *AddEvent(origin, now, write).mutable_callback_requested() = *cb;
        AddCallbackRequested(session_id, *cb, verification->level(), now, write);
        result.callback = *cb;
        result.phone_session = ViewFor(p, caller, now);
        WriteKeys keys;
        BindToken(*binding, claims, session_id, now, write, keys);
        write.sessions.push_back(phone);
        write.sessions.push_back(origin);
        pending = Commit(std::move(write), std::move(keys));
        decided = true;
      }
    }
    break;
  }
  if (!in_memory) {
    // CLOSED: nothing to replay (a closed origin forgets its callback).
    absl::StatusOr<SessionRecord> origin = ReadClosed(caller, session_id);
    if (!origin.ok()) return origin.status();
    if (absl::Status s = ValidateCallbackDetails("callback", details, now); !s.ok()) return s;
    absl::StatusOr<common::v1::VerificationState> verification =
        CheckVerification(*tokens_, details.verification_token(),
                          origin->session.customer_id(), session_id, now);
    if (!verification.ok()) {
      return absl::Status(verification.status().code(),
                          absl::StrCat("callback.", verification.status().message()));
    }
    return WrongState(origin->session, "open a new session");
  }
  if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
  if (decided) {
    ScheduleRouting(phone_id);
    return result;
  }
  absl::StatusOr<v1::Session> phone = ViewNow(caller, phone_id);
  if (!phone.ok()) return phone.status();
  result.callback = phone->callback();
  result.phone_session = *std::move(phone);
  return result;
}

void Sessions::SyncRouting(const std::string& session_id) {
  while (true) {
    RoutingCall call;
    int64_t version = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      if (it == sessions_.end() || !it->second.record.routing_pending ||
          routing_in_flight_.contains(session_id)) {
        return;
      }
      const SessionRecord& r = it->second.record;
      version = r.routing_version;
      call = PendingRoutingCall(r);
      routing_in_flight_.insert(session_id);
    }
    fault::Point("sessions.routing.before_call");
    routing::v1::EnqueueSessionResponse enqueued;
    if (absl::Status status = Tell(routing_, session_id, call, &enqueued); !status.ok()) {
      if (metrics_) metrics_->routing_failures->Increment();
      log::Warning("routing_call_failed",
                   {{"session_id", session_id},
                    {"call", call.kind == RoutingCall::Kind::kEnqueue ? "EnqueueSession"
                                                                      : "CancelSession"},
                    {"error", status.ToString()}});
      absl::MutexLock lock(&mu_);
      routing_in_flight_.erase(session_id);
      return;
    }
    std::shared_ptr<storage::PendingWrite> pending;
    {
      absl::MutexLock lock(&mu_);
      routing_in_flight_.erase(session_id);
      auto it = sessions_.find(session_id);
      if (it == sessions_.end()) return;
      SessionRecord& r = it->second.record;
      if (r.routing_version != version) continue;  // changed meanwhile: tell routing again
      r.routing_pending = false;
      if (!commits_.CheckWritable().ok()) return;
      SessionWrite write;
      // A chat escalated while the desk is closed: the customer learns when
      // it opens and may continue by email instead (ContinueByEmail). Only
      // on the first enqueue of this wait (a replay was told already).
      if (call.kind == RoutingCall::Kind::kEnqueue && !enqueued.replayed() &&
          enqueued.has_hours() && !enqueued.hours().open() &&
          r.session.channel() == common::v1::CHANNEL_CHAT &&
          r.session.state() == v1::SESSION_STATE_QUEUED) {
        const routing::v1::QueueHours& hours = enqueued.hours();
        auto target = options_.email_sla_by_category.find(r.session.category());
        AddMessage(r,
                   SystemMessage(DeskClosedNotice(
                       r.session.language(),
                       hours.has_next_opening_at()
                           ? protoutil::FromTimestamp(hours.next_opening_at())
                           : absl::InfiniteFuture(),
                       hours.time_zone(),
                       target != options_.email_sla_by_category.end() ? target->second
                                                                      : options_.email_sla,
                       options_.business_hours_sla_categories.contains(r.session.category()))),
                   clock_->Now(), write);
      }
      write.sessions.push_back(r);
      // Losing this write would only repeat an idempotent call; a CLOSED
      // session waits for it before it leaves memory.
      pending = Commit(std::move(write));
      if (r.session.state() != v1::SESSION_STATE_CLOSED) return;
    }
    if (commits_.Await(pending).ok()) MaybeEvict(session_id);
    return;
  }
}

int Sessions::RetryRouting() {
  std::vector<std::string> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.assign(routing_pending_.begin(), routing_pending_.end());
  }
  for (const std::string& id : pending) SyncRouting(id);
  return static_cast<int>(pending.size());
}

absl::StatusOr<int> Sessions::Sweep() {
  if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
  int changed = 0;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    // Rate windows and typing marks that can no longer matter: bounded by
    // the principals active within the last minute.
    absl::erase_if(send_rate_, [&](const auto& e) {
      return now - e.second.first >= absl::Seconds(1);
    });
    absl::erase_if(create_rate_, [&](const auto& e) {
      return now - e.second.first >= absl::Minutes(1);
    });
    absl::erase_if(typing_sent_, [&](const auto& e) {
      return now - e.second >= absl::Seconds(1);
    });
  }
  while (true) {
    std::vector<std::string> to_cancel;
    std::vector<std::string> lapsed_offers;
    std::vector<std::string> closed;
    std::shared_ptr<storage::PendingWrite> pending;
    size_t due_count = 0;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
      const absl::Time now = clock_->Now();
      const std::vector<std::string> due = deadlines_.Due(now, kSweepBatch);
      due_count = due.size();
      SessionWrite write;
      for (const std::string& id : due) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) {
          deadlines_.Remove(id);
          continue;
        }
        SessionRecord& r = it->second.record;
        v1::Session& s = r.session;
        bool touched = BreachIfDue(r, now, write);
        if (!s.offered_agent_id().empty() &&
            (s.state() != v1::SESSION_STATE_QUEUED || Ts(s.offer_expires_at()) <= now)) {
          s.clear_offered_agent_id();
          s.clear_offer_expires_at();
          lapsed_offers.push_back(id);
          touched = true;
        }
        if (IdleAt(r, idle_timeouts_, now) &&
            CloseLocked(r, v1::CLOSE_REASON_IDLE_TIMEOUT, "system", now, write).ok()) {
          touched = true;
          closed.push_back(id);
          if (r.routing_pending) to_cancel.push_back(id);
        }
        if (touched) {
          ++changed;
          write.sessions.push_back(r);
        } else {
          // Due but nothing to do (a due time that moved): index it anew.
          deadlines_.Set(id, NextDue(r, idle_timeouts_));
        }
      }
      if (!write.empty()) pending = Commit(std::move(write));
    }
    if (pending != nullptr) {
      if (absl::Status s = commits_.Await(pending); !s.ok()) return s;
    }
    for (const std::string& id : to_cancel) ScheduleRouting(id);
    for (const std::string& id : lapsed_offers) NotifyAccess(id);
    for (const std::string& id : closed) MaybeEvict(id);
    // A full batch that changed nothing would find the same sessions again.
    if (due_count < kSweepBatch || pending == nullptr) return changed;
  }
}

}  // namespace switchboard::sessions
