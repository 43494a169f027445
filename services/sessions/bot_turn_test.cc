#include "services/sessions/bot_turn.h"

#include "gtest/gtest.h"

namespace switchboard::sessions {
namespace {

v1::Session Chat(common::v1::Category category) {
  v1::Session s;
  s.set_session_id("s-1");
  s.set_state(v1::SESSION_STATE_BOT);
  s.set_category(category);
  s.set_language("en");
  return s;
}

TEST(BotTurnTest, TheQuestionCarriesTheSessionsContext) {
  v1::Session s = Chat(common::v1::CATEGORY_DEPOSIT);
  s.mutable_verification()->set_level(common::v1::VERIFICATION_LEVEL_STRONG);
  v1::Message m;
  m.set_message_id("m4");
  m.set_text("where is my USDT");
  m.set_quick_reply_id("intent:deposit");
  const bot::v1::AnswerRequest r = AnswerRequestFor(s, m);
  EXPECT_EQ(r.turn_id(), "m4");
  EXPECT_EQ(r.text(), "where is my USDT");
  EXPECT_EQ(r.quick_reply_id(), "intent:deposit");
  EXPECT_EQ(r.category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(r.verification().level(), common::v1::VERIFICATION_LEVEL_STRONG);
}

TEST(BotTurnTest, AFailedBotEscalates) {
  BotPlan plan = PlanBotTurn(absl::DeadlineExceededError("slow"),
                             Chat(common::v1::CATEGORY_GENERAL));
  EXPECT_TRUE(plan.escalate);
  EXPECT_EQ(plan.handoff.reason(), common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
  EXPECT_FALSE(plan.reply.has_value());
}

TEST(BotTurnTest, AnAnswerIsPostedAndItsCategoryFollowed) {
  bot::v1::AnswerResponse answer;
  answer.set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
  answer.set_reply_text("Deposits need 12 confirmations.");
  answer.set_answered_intent_id("deposit_not_credited");
  answer.set_category(common::v1::CATEGORY_DEPOSIT);
  auto* guess = answer.add_intent_guesses();
  guess->set_confidence(0.9f);
  for (int i = 0; i < 8; ++i) answer.add_quick_replies()->set_id("q");
  BotPlan plan = PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL));
  EXPECT_FALSE(plan.escalate);
  ASSERT_TRUE(plan.reply.has_value());
  EXPECT_EQ(plan.reply->sender_role(), common::v1::SENDER_ROLE_BOT);
  EXPECT_EQ(plan.reply->quick_replies_size(), 6);
  EXPECT_FLOAT_EQ(plan.reply->bot().confidence(), 0.9f);
  ASSERT_TRUE(plan.category.has_value());
  EXPECT_EQ(*plan.category, common::v1::CATEGORY_DEPOSIT);
  // Same category, no category, or not ANSWERED: the session keeps its own.
  EXPECT_FALSE(PlanBotTurn(answer, Chat(common::v1::CATEGORY_DEPOSIT)).category.has_value());
  answer.set_category(common::v1::CATEGORY_UNSPECIFIED);
  EXPECT_FALSE(PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL)).category.has_value());
  answer.set_category(static_cast<common::v1::Category>(99));
  EXPECT_FALSE(PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL)).category.has_value());
  answer.set_category(common::v1::CATEGORY_DEPOSIT);
  answer.set_outcome(bot::v1::ANSWER_OUTCOME_CLARIFIED);
  EXPECT_FALSE(PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL)).category.has_value());
  // A reply the sessions rules would refuse is not posted.
  answer.set_reply_text(std::string(4001, 'x'));
  EXPECT_FALSE(PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL)).reply.has_value());
}

TEST(BotTurnTest, AnEscalationKeepsTheBotsContextAndFillsGaps) {
  bot::v1::AnswerResponse answer;
  answer.set_outcome(bot::v1::ANSWER_OUTCOME_ESCALATED);
  answer.set_reply_text("Connecting you to an agent.");
  answer.set_category(common::v1::CATEGORY_WITHDRAWAL);
  answer.set_detected_language("zh-CN");
  answer.set_not_understood_turns(2);
  answer.set_verification_required(true);
  answer.add_intent_guesses()->set_intent_id("withdrawal_pending");
  answer.mutable_handoff()->add_collected_details()->set_key("txid");
  BotPlan plan = PlanBotTurn(answer, Chat(common::v1::CATEGORY_GENERAL));
  EXPECT_TRUE(plan.escalate);
  EXPECT_TRUE(plan.reply.has_value());
  EXPECT_FALSE(plan.category.has_value());  // the escalation carries it
  EXPECT_EQ(plan.handoff.reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(plan.handoff.category(), common::v1::CATEGORY_WITHDRAWAL);
  EXPECT_EQ(plan.handoff.language(), "zh-CN");
  EXPECT_EQ(plan.handoff.intent_guesses(0).intent_id(), "withdrawal_pending");
  EXPECT_EQ(plan.handoff.collected_details(0).key(), "txid");
  EXPECT_EQ(plan.handoff.not_understood_turns(), 2);
  EXPECT_TRUE(plan.handoff.verification_required());
}

TEST(BotTurnTest, ASessionsTurnsRunOneAtATimeWithABoundedWait) {
  BotTurnQueue queue(2);
  auto message = [](const std::string& session, const std::string& id) {
    v1::Message m;
    m.set_session_id(session);
    m.set_message_id(id);
    return m;
  };
  EXPECT_EQ(queue.Add(message("s-1", "m1")), BotTurnQueue::Admission::kRunNow);
  EXPECT_EQ(queue.Add(message("s-2", "m1")), BotTurnQueue::Admission::kRunNow);
  EXPECT_EQ(queue.Add(message("s-1", "m2")), BotTurnQueue::Admission::kQueued);
  EXPECT_EQ(queue.Add(message("s-1", "m3")), BotTurnQueue::Admission::kQueued);
  EXPECT_EQ(queue.Add(message("s-1", "m4")), BotTurnQueue::Admission::kFull);
  EXPECT_EQ(queue.Next("s-1")->message_id(), "m2");
  EXPECT_EQ(queue.Next("s-1")->message_id(), "m3");
  EXPECT_FALSE(queue.Next("s-1").has_value());
  EXPECT_FALSE(queue.Next("s-2").has_value());
  EXPECT_EQ(queue.sessions(), 0u);
  EXPECT_EQ(queue.Add(message("s-1", "m5")), BotTurnQueue::Admission::kRunNow);
}

}  // namespace
}  // namespace switchboard::sessions
