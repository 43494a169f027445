#include "services/sessions/session_events.h"

#include "absl/strings/str_cat.h"
#include "libs/events/envelope.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"
#include "services/sessions/rules.h"

namespace switchboard::sessions {
namespace {

absl::Time Ts(const google::protobuf::Timestamp& t) { return protoutil::FromTimestamp(t); }
void SetTs(absl::Time t, google::protobuf::Timestamp* out) { protoutil::ToTimestamp(t, out); }

// Seals `event` (its payload set) for the session and appends it.
void Append(events::v1::Event event, const std::string& session_id, absl::Time now,
            SessionWrite& write) {
  // Seal fails only without a payload, producer or entity, which every
  // caller here provides.
  events::Seal(event, kProducer, session_id, now).IgnoreError();
  write.events.push_back(std::move(event));
}

}  // namespace

v1::SessionEvent& AddEvent(SessionRecord& record, absl::Time now, SessionWrite& write) {
  v1::Session& s = record.session;
  s.set_last_sequence(s.last_sequence() + 1);
  SetTs(now, s.mutable_updated_at());
  v1::SessionEvent& event = write.session_events.emplace_back();
  event.set_session_id(s.session_id());
  event.set_sequence(s.last_sequence());
  SetTs(now, event.mutable_occurred_at());
  return event;
}

absl::Status Transition(SessionRecord& record, v1::SessionState to,
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

v1::Message& AddMessage(SessionRecord& record, v1::Message message, absl::Time now,
                        SessionWrite& write) {
  v1::Session& s = record.session;
  v1::SessionEvent& event = AddEvent(record, now, write);
  message.set_session_id(s.session_id());
  message.set_sequence(event.sequence());
  message.set_message_id(absl::StrCat("m", event.sequence()));
  SetTs(now, message.mutable_created_at());
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
  Append(std::move(out), s.session_id(), now, write);
  *event.mutable_message() = std::move(message);
  return *event.mutable_message();
}

void AddSessionCreated(const v1::Session& s, absl::Time now, SessionWrite& write) {
  events::v1::Event out;
  events::v1::SessionCreated* e = out.mutable_session_created();
  e->set_session_id(s.session_id());
  e->set_customer_id(s.customer_id());
  e->set_channel(s.channel());
  e->set_category(s.category());
  e->set_language(s.language());
  e->set_social_network(s.social().network());
  e->set_state(s.state());
  e->set_parent_session_id(s.parent_session_id());
  if (s.has_sla()) {
    *e->mutable_sla_target() = s.sla().target();
    *e->mutable_first_response_due_at() = s.sla().due_at();
  }
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionEscalated(const SessionRecord& record, v1::SessionState from, absl::Time now,
                         SessionWrite& write) {
  const v1::Session& s = record.session;
  const common::v1::HandoffContext& handoff = s.handoff();
  events::v1::Event out;
  events::v1::SessionEscalated* e = out.mutable_session_escalated();
  e->set_session_id(s.session_id());
  e->set_previous_state(from);
  e->set_state(s.state());
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
  Append(std::move(out), s.session_id(), now, write);
}

void AddAgentAssigned(const SessionRecord& record, const std::string& offer_id,
                      absl::Time queued_at, absl::Time now, SessionWrite& write) {
  const v1::Session& s = record.session;
  events::v1::Event out;
  events::v1::AgentAssigned* e = out.mutable_agent_assigned();
  e->set_session_id(s.session_id());
  e->set_previous_state(v1::SESSION_STATE_QUEUED);
  e->set_state(v1::SESSION_STATE_ASSIGNED);
  e->set_agent_id(s.assigned_agent_id());
  e->set_offer_id(offer_id);
  e->set_channel(s.channel());
  e->set_category(s.category());
  protoutil::ToDuration(now - queued_at, e->mutable_queue_wait());
  e->set_assignment_number(record.assignments);
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionTransferred(const v1::Session& s, const std::string& from_agent,
                           common::v1::Category from_category, const std::string& actor,
                           const v1::TransferSessionRequest& request, absl::Time now,
                           SessionWrite& write) {
  events::v1::Event out;
  events::v1::SessionTransferred* e = out.mutable_session_transferred();
  e->set_session_id(s.session_id());
  e->set_previous_state(v1::SESSION_STATE_ASSIGNED);
  e->set_state(s.state());
  e->set_from_agent_id(from_agent);
  e->set_actor_id(actor);
  e->set_from_category(from_category);
  e->set_to_category(s.category());
  e->set_to_language(s.language());
  if (request.target_case() == v1::TransferSessionRequest::kAgentId) {
    e->set_to_agent_id(request.agent_id());
  }
  e->set_to_bot(request.to_bot());
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionRequeued(const v1::Session& s, const std::string& agent_id,
                        absl::Time assigned_at, absl::Time now, SessionWrite& write) {
  events::v1::Event out;
  events::v1::SessionRequeued* e = out.mutable_session_requeued();
  e->set_session_id(s.session_id());
  e->set_previous_state(v1::SESSION_STATE_ASSIGNED);
  e->set_state(v1::SESSION_STATE_QUEUED);
  e->set_agent_id(agent_id);
  protoutil::ToDuration(now - assigned_at, e->mutable_assigned_duration());
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionResolved(const SessionRecord& record, v1::SessionState from,
                        const std::string& agent, const std::string& actor,
                        const std::string& actor_role, absl::Time now, SessionWrite& write) {
  const v1::Session& s = record.session;
  events::v1::Event out;
  events::v1::SessionResolved* e = out.mutable_session_resolved();
  e->set_session_id(s.session_id());
  e->set_previous_state(from);
  e->set_state(v1::SESSION_STATE_RESOLVED);
  e->set_agent_id(agent);
  e->set_actor_id(actor);
  e->set_actor_role(actor_role);
  e->set_channel(s.channel());
  e->set_category(s.category());
  protoutil::ToDuration(now - Ts(s.created_at()), e->mutable_resolution_time());
  e->set_customer_messages(record.customer_messages);
  e->set_bot_messages(record.bot_messages);
  e->set_agent_messages(record.agent_messages);
  e->set_transfer_count(s.transfer_count());
  e->set_reopen_count(s.reopen_count());
  e->set_resolved_by_bot(!s.has_first_assigned_at());
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionReopened(const SessionRecord& record, const std::string& actor,
                        absl::Time resolved_at, absl::Time now, SessionWrite& write) {
  const v1::Session& s = record.session;
  events::v1::Event out;
  events::v1::SessionReopened* e = out.mutable_session_reopened();
  e->set_session_id(s.session_id());
  e->set_previous_state(v1::SESSION_STATE_RESOLVED);
  e->set_state(v1::SESSION_STATE_QUEUED);
  e->set_actor_id(actor);
  e->set_previous_agent_id(record.resolved_by);
  protoutil::ToDuration(now - resolved_at, e->mutable_since_resolved());
  Append(std::move(out), s.session_id(), now, write);
}

void AddSessionClosed(const v1::Session& s, v1::SessionState from, v1::CloseReason reason,
                      const std::string& actor, absl::Time now, SessionWrite& write) {
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
  Append(std::move(out), s.session_id(), now, write);
}

void AddFirstResponse(const SessionRecord& record, const std::string& agent_id,
                      const std::string& message_id, bool within_sla, absl::Time now,
                      SessionWrite& write) {
  const v1::Session& s = record.session;
  events::v1::Event out;
  events::v1::FirstResponseRecorded* e = out.mutable_first_response_recorded();
  e->set_session_id(s.session_id());
  e->set_agent_id(agent_id);
  e->set_message_id(message_id);
  e->set_channel(s.channel());
  e->set_category(s.category());
  protoutil::ToDuration(now - Ts(s.created_at()), e->mutable_since_created());
  if (record.first_queued_at != absl::InfinitePast()) {
    protoutil::ToDuration(now - record.first_queued_at, e->mutable_since_queued());
  }
  e->set_within_sla(within_sla);
  Append(std::move(out), s.session_id(), now, write);
}

void AddSlaBreached(const v1::Session& s, absl::Time now, SessionWrite& write) {
  events::v1::Event out;
  events::v1::SlaBreached* e = out.mutable_sla_breached();
  e->set_session_id(s.session_id());
  e->set_channel(s.channel());
  e->set_category(s.category());
  *e->mutable_sla_target() = s.sla().target();
  *e->mutable_due_at() = s.sla().due_at();
  e->set_state(s.state());
  e->set_agent_id(s.assigned_agent_id());
  Append(std::move(out), s.session_id(), now, write);
}

void AddCallbackRequested(const std::string& session_id, const v1::CallbackRequest& cb,
                          common::v1::VerificationLevel level, absl::Time now,
                          SessionWrite& write) {
  events::v1::Event out;
  events::v1::CallbackRequested* e = out.mutable_callback_requested();
  e->set_session_id(session_id);
  e->set_callback_id(cb.callback_id());
  e->set_phone_session_id(cb.phone_session_id());
  if (cb.has_window_start()) *e->mutable_window_start() = cb.window_start();
  *e->mutable_window_end() = cb.window_end();
  e->set_verification_level(level);
  if (cb.has_scheduled_for()) *e->mutable_scheduled_for() = cb.scheduled_for();
  Append(std::move(out), session_id, now, write);
}

void AddCategoryChanged(const v1::Session& s, common::v1::Category previous,
                        events::v1::CategorySource source, const std::string& intent_id,
                        float confidence, absl::Time now, SessionWrite& write) {
  events::v1::Event out;
  events::v1::CategoryChanged* e = out.mutable_category_changed();
  e->set_session_id(s.session_id());
  e->set_previous_category(previous);
  e->set_category(s.category());
  e->set_source(source);
  e->set_intent_id(intent_id);
  e->set_confidence(confidence);
  e->set_state(s.state());
  e->set_channel(s.channel());
  Append(std::move(out), s.session_id(), now, write);
}

void AddChannelChanged(const v1::Session& s, common::v1::Channel previous, absl::Time now,
                       SessionWrite& write) {
  events::v1::Event out;
  events::v1::ChannelChanged* e = out.mutable_channel_changed();
  e->set_session_id(s.session_id());
  e->set_previous_channel(previous);
  e->set_channel(s.channel());
  e->set_category(s.category());
  if (s.has_sla()) *e->mutable_first_response_due_at() = s.sla().due_at();
  Append(std::move(out), s.session_id(), now, write);
}

void AddVerificationAttached(const v1::Session& s,
                             const common::v1::VerificationState& verification,
                             absl::Time now, SessionWrite& write) {
  events::v1::Event out;
  events::v1::VerificationAttached* e = out.mutable_verification_attached();
  e->set_session_id(s.session_id());
  e->set_customer_id(s.customer_id());
  *e->mutable_verification() = verification;
  e->set_session_state(s.state());
  Append(std::move(out), s.session_id(), now, write);
}

void AddAttachmentChanged(const v1::Attachment& attachment, absl::Time now,
                          SessionWrite& write) {
  events::v1::Event out;
  events::v1::AttachmentChanged* e = out.mutable_attachment_changed();
  e->set_session_id(attachment.session_id());
  e->set_attachment_id(attachment.attachment_id());
  e->set_content_type(attachment.content_type());
  e->set_size_bytes(attachment.size_bytes());
  e->set_state(attachment.state());
  e->set_reason(attachment.rejection_reason());
  e->set_uploader_role(attachment.uploader_role());
  Append(std::move(out), attachment.session_id(), now, write);
}

void AddAttachmentUpdated(SessionRecord& record, const v1::Attachment& attachment,
                          absl::Time now, SessionWrite& write) {
  *AddEvent(record, now, write).mutable_attachment_updated() = attachment;
  AddAttachmentChanged(attachment, now, write);
}

void AddAttachmentDownloaded(const v1::Attachment& attachment, const std::string& actor_id,
                             const std::string& actor_role, bool signed_url, absl::Time now,
                             SessionWrite& write) {
  events::v1::Event out;
  events::v1::AttachmentDownloaded* e = out.mutable_attachment_downloaded();
  e->set_session_id(attachment.session_id());
  e->set_attachment_id(attachment.attachment_id());
  e->set_actor_id(actor_id);
  e->set_actor_role(actor_role);
  e->set_signed_url(signed_url);
  Append(std::move(out), attachment.session_id(), now, write);
}

}  // namespace switchboard::sessions
