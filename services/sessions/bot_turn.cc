#include "services/sessions/bot_turn.h"

#include "libs/validation/validation.h"

namespace switchboard::sessions {
namespace {

constexpr size_t kMaxReplyText = 4000;
constexpr int kMaxQuickReplies = 6;

}  // namespace

bot::v1::AnswerRequest AnswerRequestFor(const v1::Session& s, const v1::Message& message) {
  bot::v1::AnswerRequest request;
  request.set_session_id(s.session_id());
  request.set_turn_id(message.message_id());
  request.set_text(message.text());
  request.set_quick_reply_id(message.quick_reply_id());
  request.set_language(s.language());
  request.set_category(s.category());
  request.set_channel(s.channel());
  *request.mutable_verification() = s.verification();
  return request;
}

BotPlan PlanBotTurn(const absl::StatusOr<bot::v1::AnswerResponse>& answer,
                    const v1::Session& session) {
  BotPlan plan;
  if (!answer.ok()) {
    plan.escalate = true;
    plan.handoff.set_reason(common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
    return plan;
  }
  if (!answer->reply_text().empty() &&
      validation::ValidateText("reply_text", answer->reply_text(), kMaxReplyText).ok()) {
    v1::Message& reply = plan.reply.emplace();
    reply.set_sender_role(common::v1::SENDER_ROLE_BOT);
    reply.set_sender_id("bot");
    reply.set_text(answer->reply_text());
    for (int i = 0; i < answer->quick_replies_size() && i < kMaxQuickReplies; ++i) {
      *reply.add_quick_replies() = answer->quick_replies(i);
    }
    reply.mutable_bot()->set_intent_id(answer->answered_intent_id());
    if (!answer->intent_guesses().empty()) {
      reply.mutable_bot()->set_confidence(answer->intent_guesses(0).confidence());
    }
    reply.mutable_bot()->set_knowledge_base_version(answer->knowledge_base_version());
  }
  if (answer->outcome() == bot::v1::ANSWER_OUTCOME_ANSWERED &&
      answer->category() != common::v1::CATEGORY_UNSPECIFIED &&
      common::v1::Category_IsValid(answer->category()) &&
      answer->category() != session.category()) {
    plan.category = answer->category();
  }
  if (answer->outcome() != bot::v1::ANSWER_OUTCOME_ESCALATED) return plan;
  plan.escalate = true;
  common::v1::HandoffContext& handoff = plan.handoff;
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
  return plan;
}

BotTurnQueue::Admission BotTurnQueue::Add(const v1::Message& message) {
  auto [it, first] = waiting_.try_emplace(message.session_id());
  if (first) return Admission::kRunNow;
  if (it->second.size() >= max_waiting_) return Admission::kFull;
  it->second.push_back(message);
  return Admission::kQueued;
}

std::optional<v1::Message> BotTurnQueue::Next(const std::string& session_id) {
  auto it = waiting_.find(session_id);
  if (it == waiting_.end()) return std::nullopt;
  if (it->second.empty()) {
    waiting_.erase(it);
    return std::nullopt;
  }
  v1::Message next = std::move(it->second.front());
  it->second.pop_front();
  return next;
}

}  // namespace switchboard::sessions
