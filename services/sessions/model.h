#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "switchboard/events/v1/event.pb.h"
#include "switchboard/routing/v1/routing_service.pb.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// A session as the sessions logic keeps it: the API's Session (what clients
// read, with every stage timestamp) plus the bookkeeping clients never see.
struct SessionRecord {
  v1::Session session;
  // The idempotency key CreateSession was called with (empty if none).
  std::string create_request_id;
  // Recent request ids of TransferSession, ResolveSession, ReopenSession and
  // RequestCallback on this session, and the offers AssignAgent applied
  // (Sessions::AppliedOfferKey), newest last (at most 16).
  std::deque<std::string> request_ids;
  // Routing has not been told about the latest state yet: EnqueueSession
  // (`enqueue`) when QUEUED, CancelSession (`cancel_reason`) otherwise.
  // Kept until routing acknowledges, and retried in the background, so that
  // a session is never lost while routing is down.
  bool routing_pending = false;
  // Bumped whenever routing_pending is set, so an acknowledgement of an older
  // request does not clear a newer one.
  int64_t routing_version = 0;
  routing::v1::EnqueueSessionRequest enqueue;
  routing::v1::CancelReason cancel_reason = routing::v1::CANCEL_REASON_UNSPECIFIED;
  // The current bot stretch: when it started and its turns.
  absl::Time bot_since = absl::InfinitePast();
  int32_t bot_turns = 0;
  // When the session entered its current state (drives idle timeouts).
  absl::Time state_since = absl::InfinitePast();
  // When the session first entered QUEUED; InfinitePast if never.
  absl::Time first_queued_at = absl::InfinitePast();
  int32_t customer_messages = 0;
  int32_t bot_messages = 0;
  int32_t agent_messages = 0;
  // Agents assigned so far (AgentAssigned.assignment_number).
  int32_t assignments = 0;
  // The agent who last resolved it (offered first on reopen).
  std::string resolved_by;
  // The sequence of the customer message whose bot turn has not finished
  // (0: none); a restart runs that turn again.
  int64_t bot_turn_sequence = 0;
  // The id of the callback pending from this session, if any, and the PHONE
  // session serving it.
  std::string pending_callback_id;
  std::string pending_callback_session_id;
};

// A stored message with what its idempotency check needs.
struct StoredMessage {
  v1::Message message;
  // Serialized NewMessage the client sent: a retry must match it exactly.
  std::string fingerprint;
};

// A verification token put to use on a session (AttachVerification,
// RequestCallback, or a PHONE session's creation): from then on the token
// counts for that session only.
struct TokenBinding {
  // The token's "tid" claim.
  std::string token_id;
  std::string session_id;
  std::string customer_id;
  absl::Time bound_at = absl::UnixEpoch();
  // The token's expiry: after it the binding no longer matters.
  absl::Time expires_at = absl::UnixEpoch();
};

// A file uploaded to a session (UploadAttachment), with what clients never
// see.
struct AttachmentRecord {
  // What clients see: id, name, sniffed type, size, SHA-256, state,
  // session, uploader, time.
  v1::Attachment attachment;
  // The uploader's idempotency key (UploadHeader.upload_id): unique per
  // (session, uploader).
  std::string upload_id;
  // The header the upload declared, serialized: a retry must match it.
  std::string fingerprint;
  // Where the bytes are in the blob store (their content address; equal to
  // attachment.sha256). Several attachments may share one blob.
  std::string blob_key;
  // The last change (upload, verdict, deletion).
  absl::Time updated_at = absl::UnixEpoch();
  // PENDING_SCAN: scans tried and failed so far (the scanner was down).
  int32_t scan_attempts = 0;
};

// What a message changes in a session's row: the serialized Session (its
// sequence, counters and times), the message counters and the pending bot
// turn. Serialized when the message is decided, so that the write carries
// one string instead of a copy of the whole record.
struct MessagedSession {
  std::string session_id;
  std::string session;  // serialized switchboard.sessions.v1.Session
  int32_t customer_messages = 0;
  int32_t bot_messages = 0;
  int32_t agent_messages = 0;
  int64_t bot_turn_sequence = 0;
};
MessagedSession Messaged(const SessionRecord& record);

// Everything one operation changes, committed atomically: the session, its
// numbered events (the transcript and state changes clients stream), and
// the outbox events for Kafka.
struct SessionWrite {
  std::vector<SessionRecord> sessions;
  // Sessions whose only change is what new messages make (AddMessage: the
  // Session's sequence, counters and times; the message counters; the
  // pending bot turn). The store rewrites just those columns, leaving the
  // rest of the row and its indexes alone: a message costs a fraction of a
  // whole row's writes. A session is never in both lists.
  std::vector<MessagedSession> messaged_sessions;
  std::vector<v1::SessionEvent> session_events;
  // Fingerprints of the messages among session_events, by message_id.
  std::vector<std::pair<std::string, std::string>> fingerprints;
  std::vector<events::v1::Event> events;
  // Tokens bound by this write (see TokenBinding). A token is bound once:
  // binding it again to the same session changes nothing.
  std::vector<TokenBinding> token_bindings;
  // Attachments inserted or updated (by attachment id).
  std::vector<AttachmentRecord> attachments;

  bool empty() const {
    return sessions.empty() && messaged_sessions.empty() && session_events.empty() &&
           events.empty() &&
           token_bindings.empty() && attachments.empty();
  }
};

}  // namespace switchboard::sessions
