#include "services/sessions/session_events.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

SessionRecord Chat() {
  SessionRecord r;
  r.session.set_session_id("s-1");
  r.session.set_customer_id("cust-1");
  r.session.set_channel(common::v1::CHANNEL_CHAT);
  r.session.set_category(common::v1::CATEGORY_GENERAL);
  protoutil::ToTimestamp(kNow - absl::Minutes(5), r.session.mutable_created_at());
  return r;
}

TEST(SessionEventsTest, EventsAreNumberedWithoutGaps) {
  SessionRecord r = Chat();
  SessionWrite write;
  ASSERT_TRUE(Transition(r, v1::SESSION_STATE_BOT, v1::STATE_CHANGE_REASON_CREATED, "cust-1",
                         kNow, write)
                  .ok());
  v1::Message m;
  m.set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
  m.set_sender_id("cust-1");
  m.set_text("héllo");
  v1::Attachment* screenshot = m.add_attachments();
  screenshot->set_attachment_id("att_1");
  screenshot->set_size_bytes(10);
  const v1::Message& stored = AddMessage(r, m, kNow, write);
  EXPECT_EQ(stored.sequence(), 2);
  EXPECT_EQ(stored.message_id(), "m2");
  EXPECT_EQ(stored.attachments(0).attachment_id(), "att_1");
  ASSERT_EQ(write.session_events.size(), 2u);
  EXPECT_EQ(write.session_events[0].sequence(), 1);
  EXPECT_EQ(write.session_events[1].sequence(), 2);
  EXPECT_EQ(r.session.last_sequence(), 2);
  EXPECT_EQ(r.session.message_count(), 1);
  EXPECT_EQ(r.customer_messages, 1);
  // The Kafka event carries sizes, never the text.
  ASSERT_EQ(write.events.size(), 1u);
  const events::v1::Event& sent = write.events[0];
  EXPECT_EQ(sent.type(), "sessions.message_sent");
  EXPECT_EQ(sent.entity_id(), "s-1");
  EXPECT_EQ(sent.message_sent().text_length(), 5);
  EXPECT_EQ(sent.message_sent().attachment_bytes(), 10);
  EXPECT_EQ(sent.message_sent().session_state(), v1::SESSION_STATE_BOT);
}

TEST(SessionEventsTest, ForbiddenTransitionsChangeNothing) {
  SessionRecord r = Chat();
  SessionWrite write;
  ASSERT_TRUE(Transition(r, v1::SESSION_STATE_BOT, v1::STATE_CHANGE_REASON_CREATED, "c", kNow,
                         write)
                  .ok());
  const std::string before = r.session.SerializeAsString();
  EXPECT_EQ(Transition(r, v1::SESSION_STATE_ASSIGNED, v1::STATE_CHANGE_REASON_ASSIGNED, "x",
                       kNow, write)
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.session.SerializeAsString(), before);
  EXPECT_EQ(write.session_events.size(), 1u);
}

TEST(SessionEventsTest, QueueingKeepsTheFirstQueueTimeAndDropsOffersElsewhere) {
  SessionRecord r = Chat();
  r.session.set_state(v1::SESSION_STATE_BOT);
  SessionWrite write;
  ASSERT_TRUE(Transition(r, v1::SESSION_STATE_QUEUED, v1::STATE_CHANGE_REASON_ESCALATED, "bot",
                         kNow, write)
                  .ok());
  EXPECT_EQ(r.first_queued_at, kNow);
  EXPECT_EQ(protoutil::FromTimestamp(r.session.queued_at()), kNow);
  r.session.set_offered_agent_id("agent-1");
  r.session.set_assigned_agent_id("agent-1");
  v1::Participant* p = r.session.add_participants();
  p->set_id("agent-1");
  p->set_display_name("Ana");
  ASSERT_TRUE(Transition(r, v1::SESSION_STATE_ASSIGNED, v1::STATE_CHANGE_REASON_ASSIGNED,
                         "routing", kNow + absl::Minutes(1), write)
                  .ok());
  EXPECT_TRUE(r.session.offered_agent_id().empty());
  const v1::StateChange& change = write.session_events.back().state_changed();
  EXPECT_EQ(change.agent_id(), "agent-1");
  EXPECT_EQ(change.agent_display_name(), "Ana");
  EXPECT_EQ(r.first_queued_at, kNow);
}

TEST(SessionEventsTest, OutboxEventsAreSealedForTheSession) {
  SessionRecord r = Chat();
  r.session.set_state(v1::SESSION_STATE_CLOSED);
  r.session.set_assigned_agent_id("");
  SessionWrite write;
  AddSessionClosed(r.session, v1::SESSION_STATE_ASSIGNED, v1::CLOSE_REASON_STAFF, "sup-1", kNow,
                   write);
  AddSlaBreached(r.session, kNow, write);
  ASSERT_EQ(write.events.size(), 2u);
  EXPECT_EQ(write.events[0].type(), "sessions.session_closed");
  EXPECT_EQ(write.events[0].producer(), "sessions");
  EXPECT_EQ(write.events[0].session_closed().previous_state(), v1::SESSION_STATE_ASSIGNED);
  EXPECT_EQ(protoutil::FromDuration(write.events[0].session_closed().session_duration()),
            absl::Minutes(5));
  EXPECT_FALSE(write.events[0].event_id().empty());
  EXPECT_NE(write.events[0].event_id(), write.events[1].event_id());
  EXPECT_EQ(write.events[1].type(), "sessions.sla_breached");
  EXPECT_TRUE(write.session_events.empty());  // Kafka only
}

}  // namespace
}  // namespace switchboard::sessions
