#include "services/sessions/handoff.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"
#include "services/sessions/rules.h"
#include "services/sessions/session_events.h"

namespace switchboard::sessions {

std::vector<common::v1::TranscriptLine> TranscriptExcerpt(
    const std::vector<v1::Message>& newest_first) {
  std::vector<common::v1::TranscriptLine> lines;
  const size_t n = std::min(newest_first.size(), static_cast<size_t>(kExcerptLines));
  for (size_t i = n; i-- > 0;) {
    const v1::Message& m = newest_first[i];
    common::v1::TranscriptLine& line = lines.emplace_back();
    line.set_sequence(m.sequence());
    line.set_sender_role(m.sender_role());
    *line.mutable_sent_at() = m.created_at();
    if (validation::CountCodePoints(m.text()) <= kExcerptChars) {
      line.set_text(m.text());
      continue;
    }
    size_t bytes = 0;
    for (size_t points = 0; points < kExcerptChars - 1 && bytes < m.text().size(); ++points) {
      const unsigned char c = m.text()[bytes];
      bytes += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    }
    line.set_text(absl::StrCat(m.text().substr(0, bytes), "…"));
  }
  return lines;
}

routing::v1::EnqueueSessionRequest EnqueueRequest(const v1::Session& s,
                                                  routing::v1::EnqueueReason reason) {
  routing::v1::EnqueueSessionRequest e;
  e.set_session_id(s.session_id());
  e.set_customer_id(s.customer_id());
  e.set_channel(s.channel());
  e.set_category(s.category());
  e.set_language(s.language());
  e.set_reason(reason);
  if (s.has_handoff()) *e.mutable_handoff() = s.handoff();
  if (s.has_sla()) *e.mutable_first_response_due_at() = s.sla().due_at();
  return e;
}

absl::Status Escalate(SessionRecord& record, common::v1::HandoffContext handoff,
                      std::vector<common::v1::TranscriptLine> excerpt,
                      const std::string& actor, absl::Time now, SessionWrite& write) {
  v1::Session& s = record.session;
  const v1::SessionState from = s.state();
  if (from != v1::SESSION_STATE_BOT) return WrongState(s, "cannot escalate");
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
  protoutil::ToTimestamp(now, handoff.mutable_escalated_at());
  s.set_category(handoff.category());
  *s.mutable_handoff() = std::move(handoff);
  // BOT -> QUEUED is always allowed.
  Transition(record, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_ESCALATED, actor, now,
             write)
      .IgnoreError();
  AddSessionEscalated(record, from, now, write);
  return absl::OkStatus();
}

RoutingCall PendingRoutingCall(const SessionRecord& record) {
  RoutingCall call;
  switch (record.session.state()) {
    case v1::SESSION_STATE_ASSIGNED:
      break;
    case v1::SESSION_STATE_QUEUED:
      call.kind = RoutingCall::Kind::kEnqueue;
      call.enqueue = record.enqueue;
      break;
    default:
      call.kind = RoutingCall::Kind::kCancel;
      call.cancel_reason = record.cancel_reason;
      break;
  }
  return call;
}

absl::Status Tell(RoutingClient* routing, const std::string& session_id,
                  const RoutingCall& call, routing::v1::EnqueueSessionResponse* enqueued) {
  if (call.kind == RoutingCall::Kind::kNone) return absl::OkStatus();
  if (routing == nullptr) return absl::UnavailableError("routing not configured");
  if (call.kind == RoutingCall::Kind::kCancel) {
    return routing->Cancel(session_id, call.cancel_reason);
  }
  absl::StatusOr<routing::v1::EnqueueSessionResponse> response = routing->Enqueue(call.enqueue);
  if (!response.ok()) return response.status();
  if (enqueued != nullptr) *enqueued = *std::move(response);
  return absl::OkStatus();
}

}  // namespace switchboard::sessions
