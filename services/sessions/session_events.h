#pragma once

// Event building: how a change to a session is written down. Each function
// appends to a SessionWrite what participants stream (numbered session
// events: messages and state changes) or what data teams read on Kafka
// (outbox events, see proto/switchboard/events/v1/sessions_events.proto),
// from the session's record. They decide nothing: the Sessions facade calls
// them once it has decided a change, under its lock.

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/sessions/model.h"

namespace switchboard::sessions {

// The producer name of sessions' events.
inline constexpr char kProducer[] = "sessions";

// Appends the session's next numbered event (last_sequence + 1, updated_at
// = now) to `write`; the caller fills its kind.
v1::SessionEvent& AddEvent(SessionRecord& record, absl::Time now, SessionWrite& write);

// Moves the session to `to` if the state machine allows it (a session
// without a state yet may enter any), with its StateChange event; the
// bookkeeping of the move (state_since, queued_at, first_queued_at, offers
// cleared, the pending bot turn forgotten). FAILED_PRECONDITION (nothing
// changed) otherwise.
absl::Status Transition(SessionRecord& record, v1::SessionState to,
                        v1::StateChangeReason reason, const std::string& actor,
                        absl::Time now, SessionWrite& write);

// Appends a message of any sender with its MessageSent outbox event: sets
// its id, sequence and time, and the session's message
// count and last_message_at. Returns the stored message.
v1::Message& AddMessage(SessionRecord& record, v1::Message message, absl::Time now,
                        SessionWrite& write);

// Records an attachment's change: an `attachment_updated` event on the
// session's stream and its AttachmentChanged outbox event (metadata only).
void AddAttachmentUpdated(SessionRecord& record, const v1::Attachment& attachment,
                          absl::Time now, SessionWrite& write);
// The outbox event alone, for a session that takes no more events (CLOSED).
void AddAttachmentChanged(const v1::Attachment& attachment, absl::Time now,
                          SessionWrite& write);
void AddAttachmentDownloaded(const v1::Attachment& attachment, const std::string& actor_id,
                             const std::string& actor_role, bool signed_url, absl::Time now,
                             SessionWrite& write);

// Outbox events, one per function, named after the payload they add.
void AddSessionCreated(const v1::Session& session, absl::Time now, SessionWrite& write);
void AddSessionEscalated(const SessionRecord& record, v1::SessionState from,
                         absl::Time now, SessionWrite& write);
void AddAgentAssigned(const SessionRecord& record, const std::string& offer_id,
                      absl::Time queued_at, absl::Time now, SessionWrite& write);
void AddSessionTransferred(const v1::Session& session, const std::string& from_agent,
                           common::v1::Category from_category, const std::string& actor,
                           const v1::TransferSessionRequest& request, absl::Time now,
                           SessionWrite& write);
void AddSessionRequeued(const v1::Session& session, const std::string& agent_id,
                        absl::Time assigned_at, absl::Time now, SessionWrite& write);
void AddSessionResolved(const SessionRecord& record, v1::SessionState from,
                        const std::string& agent, const std::string& actor,
                        const std::string& actor_role, absl::Time now, SessionWrite& write);
void AddSessionReopened(const SessionRecord& record, const std::string& actor,
                        absl::Time resolved_at, absl::Time now, SessionWrite& write);
void AddSessionClosed(const v1::Session& session, v1::SessionState from,
                      v1::CloseReason reason, const std::string& actor, absl::Time now,
                      SessionWrite& write);
void AddFirstResponse(const SessionRecord& record, const std::string& agent_id,
                      const std::string& message_id, bool within_sla, absl::Time now,
                      SessionWrite& write);
void AddSlaBreached(const v1::Session& session, absl::Time now, SessionWrite& write);
void AddCallbackRequested(const std::string& session_id, const v1::CallbackRequest& callback,
                          common::v1::VerificationLevel level, absl::Time now,
                          SessionWrite& write);
// The session's category moved from `previous` to its current one.
void AddCategoryChanged(const v1::Session& session, common::v1::Category previous,
                        events::v1::CategorySource source, const std::string& intent_id,
                        float confidence, absl::Time now, SessionWrite& write);
// The session moved from `previous` to its current channel
// (ContinueByEmail).
void AddChannelChanged(const v1::Session& session, common::v1::Channel previous,
                       absl::Time now, SessionWrite& write);
void AddVerificationAttached(const v1::Session& session,
                             const common::v1::VerificationState& verification,
                             absl::Time now, SessionWrite& write);

}  // namespace switchboard::sessions
