#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "switchboard/bot/v1/bot_service.pb.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::bot {

// Every domain metric of the bot service, created once (no label lookups on
// the answer path).
struct BotMetrics {
  explicit BotMetrics(prometheus::Registry& registry);

  // switchboard_bot_answers_total{outcome,category}: turns answered (not
  // retries), by what the bot did and the category it believed; category
  // "unknown" when it had none.
  prometheus::Counter& answers(v1::AnswerOutcome outcome, common::v1::Category category) {
    return *answers_by[outcome][category];
  }
  std::array<std::array<prometheus::Counter*, 9>, 5> answers_by{};
  // switchboard_bot_escalations_total{reason}: turns that handed the session
  // to a human, by reason.
  std::array<prometheus::Counter*, 6> escalations_by_reason{};
  // switchboard_bot_answer_confidence: the top guess's confidence per turn
  // answered from text (0 when nothing matched).
  prometheus::Histogram* confidence;
  // switchboard_bot_knowledge_base_reloads_total{result}: load attempts
  // (start, ReloadKnowledgeBase and a changed file), "ok" or "failed".
  prometheus::Counter* reloads_ok;
  prometheus::Counter* reloads_failed;
  // switchboard_bot_knowledge_base_intents: intents in service.
  prometheus::Gauge* intents;
  // switchboard_bot_dialogues: dialogue contexts held (in memory, or in the
  // store replicas share), set by each expiry sweep and reset (counting
  // takes every shard's lock, too much per turn).
  prometheus::Gauge* dialogues;
  // switchboard_bot_event_failures_total: turns whose event could not be
  // committed to the outbox (the caller got UNAVAILABLE).
  prometheus::Counter* event_failures;
  // switchboard_bot_dialogue_failures_total: turns refused because the
  // dialogue store could not keep them (on PostgreSQL, with their event;
  // the caller got UNAVAILABLE).
  prometheus::Counter* dialogue_failures;
};

}  // namespace switchboard::bot
