#pragma once

// The routing hand-off: what a session carries to routing when it leaves
// the bot or needs an agent (the handoff context, the transcript excerpt,
// the EnqueueSessionRequest), and telling routing about it. The Sessions
// facade commits every change routing must learn of with `routing_pending`
// set before it calls routing (see RoutingCall), so a session is never lost
// while routing is down.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/sessions/model.h"
#include "services/sessions/peers.h"

namespace switchboard::sessions {

// Lines of transcript a handoff carries, and the characters kept of each.
inline constexpr int kExcerptLines = 10;
inline constexpr size_t kExcerptChars = 500;

// Messages (as read, newest first) as transcript lines, oldest first, at
// most kExcerptLines, each text cut at a code point boundary to
// kExcerptChars (with "…" when cut).
std::vector<common::v1::TranscriptLine> TranscriptExcerpt(
    const std::vector<v1::Message>& newest_first);

// What routing is asked to queue for the session now (its channel,
// category, language, handoff and first-response due time), for `reason`.
routing::v1::EnqueueSessionRequest EnqueueRequest(const v1::Session& session,
                                                  routing::v1::EnqueueReason reason);

// BOT -> QUEUED with `handoff` (from the bot, or just a reason) completed by
// the session's own knowledge: a valid category and language (the
// session's when the bot gave none), the excerpt, the verification state and
// the time. The session takes the handoff's category. Writes the StateChange
// and SessionEscalated events. FAILED_PRECONDITION (nothing changed) unless
// the session is in BOT.
absl::Status Escalate(SessionRecord& record, common::v1::HandoffContext handoff,
                      std::vector<common::v1::TranscriptLine> excerpt,
                      const std::string& actor, absl::Time now, SessionWrite& write);

// The call routing is owed for a session with routing_pending: EnqueueSession
// while QUEUED, CancelSession otherwise, nothing once ASSIGNED (routing
// acted on an earlier request already).
struct RoutingCall {
  enum class Kind { kNone, kEnqueue, kCancel };
  Kind kind = Kind::kNone;
  routing::v1::EnqueueSessionRequest enqueue;
  routing::v1::CancelReason cancel_reason = routing::v1::CANCEL_REASON_UNSPECIFIED;
};
RoutingCall PendingRoutingCall(const SessionRecord& record);

// Makes `call` (blocking; `routing` may be null: UNAVAILABLE). Calls carry
// the client's own timeout: they are background work, after the change was
// committed and its RPC answered. An enqueue's response goes to `enqueued`
// if given.
absl::Status Tell(RoutingClient* routing, const std::string& session_id,
                  const RoutingCall& call,
                  routing::v1::EnqueueSessionResponse* enqueued = nullptr);

}  // namespace switchboard::sessions
