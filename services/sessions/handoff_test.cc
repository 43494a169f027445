#include "services/sessions/handoff.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

v1::Message Line(int64_t sequence, const std::string& text) {
  v1::Message m;
  m.set_sequence(sequence);
  m.set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
  m.set_text(text);
  return m;
}

TEST(HandoffTest, TheExcerptIsTheLastLinesOldestFirstCutAtCodePoints) {
  std::vector<v1::Message> newest_first;
  for (int i = 12; i >= 1; --i) newest_first.push_back(Line(i, "line"));
  newest_first[0].set_text(std::string(600, 'x'));
  newest_first[1].set_text(std::string(300, 'a') + std::string("充值") + std::string(300, 'b'));
  std::vector<common::v1::TranscriptLine> lines = TranscriptExcerpt(newest_first);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kExcerptLines));
  EXPECT_EQ(lines.front().sequence(), 3);
  EXPECT_EQ(lines.back().sequence(), 12);
  EXPECT_EQ(lines.back().text(), std::string(499, 'x') + "…");
  // 300 + 2 + 197 code points, the Chinese characters kept whole.
  EXPECT_EQ(lines[8].text(), std::string(300, 'a') + "充值" + std::string(197, 'b') + "…");
}

TEST(HandoffTest, EscalationCompletesTheBotsHandoff) {
  SessionRecord r;
  v1::Session& s = r.session;
  s.set_session_id("s-1");
  s.set_state(v1::SESSION_STATE_BOT);
  s.set_category(common::v1::CATEGORY_GENERAL);
  s.set_language("zh-CN");
  s.set_channel(common::v1::CHANNEL_CHAT);
  s.mutable_verification()->set_level(common::v1::VERIFICATION_LEVEL_BASIC);
  s.mutable_sla();
  r.bot_since = kNow - absl::Minutes(2);
  r.bot_turns = 3;
  common::v1::HandoffContext handoff;
  handoff.set_reason(common::v1::ESCALATION_REASON_SENSITIVE_TOPIC);
  handoff.set_category(common::v1::CATEGORY_FROZEN_FUNDS);
  handoff.add_collected_details()->set_key("asset");
  SessionWrite write;
  ASSERT_TRUE(Escalate(r, handoff, {common::v1::TranscriptLine()}, "bot", kNow, write).ok());
  EXPECT_EQ(s.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(s.category(), common::v1::CATEGORY_FROZEN_FUNDS);
  EXPECT_EQ(s.handoff().language(), "zh-CN");  // the bot gave none
  EXPECT_EQ(s.handoff().verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
  EXPECT_EQ(s.handoff().transcript_excerpt_size(), 1);
  EXPECT_EQ(protoutil::FromTimestamp(s.handoff().escalated_at()), kNow);
  ASSERT_EQ(write.events.size(), 1u);
  const events::v1::SessionEscalated& e = write.events[0].session_escalated();
  EXPECT_EQ(e.handoff().category(), common::v1::CATEGORY_FROZEN_FUNDS);
  EXPECT_EQ(e.handoff().collected_detail_keys(0), "asset");
  EXPECT_EQ(e.bot_turns(), 3);
  EXPECT_EQ(protoutil::FromDuration(e.bot_duration()), absl::Minutes(2));

  // What routing is asked carries all of it.
  const routing::v1::EnqueueSessionRequest enqueue =
      EnqueueRequest(s, routing::v1::ENQUEUE_REASON_ESCALATED);
  EXPECT_EQ(enqueue.category(), common::v1::CATEGORY_FROZEN_FUNDS);
  EXPECT_EQ(enqueue.handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC);
  EXPECT_EQ(enqueue.language(), "zh-CN");

  // Only a session in BOT escalates.
  EXPECT_EQ(Escalate(r, handoff, {}, "bot", kNow, write).code(),
            absl::StatusCode::kFailedPrecondition);
}

class RecordingRouting : public RoutingClient {
 public:
  absl::StatusOr<routing::v1::EnqueueSessionResponse> Enqueue(
      const routing::v1::EnqueueSessionRequest& r) override {
    calls.push_back("enqueue " + r.session_id());
    routing::v1::EnqueueSessionResponse response;
    response.mutable_hours()->set_schedule_id("phone-hours");
    return response;
  }
  absl::Status Cancel(const std::string& id, routing::v1::CancelReason reason) override {
    calls.push_back("cancel " + id + " " + routing::v1::CancelReason_Name(reason));
    return absl::OkStatus();
  }
  absl::StatusOr<routing::v1::GetQueueHoursResponse> QueueHours(
      const routing::v1::GetQueueHoursRequest&) override {
    return routing::v1::GetQueueHoursResponse();
  }
  std::vector<std::string> calls;
};

TEST(HandoffTest, RoutingIsToldWhatTheStateOwes) {
  SessionRecord r;
  r.session.set_session_id("s-1");
  r.enqueue.set_session_id("s-1");
  r.cancel_reason = routing::v1::CANCEL_REASON_RESOLVED;
  RecordingRouting routing;
  r.session.set_state(v1::SESSION_STATE_QUEUED);
  routing::v1::EnqueueSessionResponse enqueued;
  ASSERT_TRUE(Tell(&routing, "s-1", PendingRoutingCall(r), &enqueued).ok());
  // The enqueue's answer (the queue's hours) comes back to the caller.
  EXPECT_EQ(enqueued.hours().schedule_id(), "phone-hours");
  r.session.set_state(v1::SESSION_STATE_RESOLVED);
  ASSERT_TRUE(Tell(&routing, "s-1", PendingRoutingCall(r)).ok());
  r.session.set_state(v1::SESSION_STATE_ASSIGNED);  // routing acted already
  ASSERT_TRUE(Tell(&routing, "s-1", PendingRoutingCall(r)).ok());
  EXPECT_EQ(routing.calls,
            (std::vector<std::string>{"enqueue s-1", "cancel s-1 CANCEL_REASON_RESOLVED"}));
  r.session.set_state(v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(Tell(nullptr, "s-1", PendingRoutingCall(r)).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace switchboard::sessions
