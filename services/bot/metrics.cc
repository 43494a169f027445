#include "services/bot/metrics.h"

#include <cctype>
#include <string>

namespace switchboard::bot {
namespace {

std::string Lower(std::string name, size_t prefix) {
  name = name.substr(prefix);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

BotMetrics::BotMetrics(prometheus::Registry& registry) {
  auto& answers_family =
      prometheus::BuildCounter()
          .Name("switchboard_bot_answers_total")
          .Help("Customer turns the bot answered (retries of a turn not counted), by "
                "outcome (answered, clarified, not_understood, escalated) and the "
                "category the bot believed (unknown when none).")
          .Register(registry);
  for (int o = v1::ANSWER_OUTCOME_ANSWERED; o <= v1::ANSWER_OUTCOME_ESCALATED; ++o) {
    const std::string outcome = Lower(v1::AnswerOutcome_Name(o), sizeof("ANSWER_OUTCOME_") - 1);
    for (int c = common::v1::CATEGORY_UNSPECIFIED; c <= common::v1::CATEGORY_GENERAL; ++c) {
      const std::string category =
          c == common::v1::CATEGORY_UNSPECIFIED
              ? "unknown"
              : Lower(common::v1::Category_Name(c), sizeof("CATEGORY_") - 1);
      answers_by[o][c] = &answers_family.Add({{"outcome", outcome}, {"category", category}});
    }
  }
  answers_by[v1::ANSWER_OUTCOME_UNSPECIFIED] = answers_by[v1::ANSWER_OUTCOME_NOT_UNDERSTOOD];
  auto& escalations = prometheus::BuildCounter()
                          .Name("switchboard_bot_escalations_total")
                          .Help("Turns on which the bot handed the session to a human, by "
                                "reason (customer_requested, not_understood, sensitive_topic).")
                          .Register(registry);
  for (int r = common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED;
       r <= common::v1::ESCALATION_REASON_SENSITIVE_TOPIC; ++r) {
    escalations_by_reason[r] = &escalations.Add(
        {{"reason", Lower(common::v1::EscalationReason_Name(r), sizeof("ESCALATION_REASON_") - 1)}});
  }
  confidence = &prometheus::BuildHistogram()
                    .Name("switchboard_bot_answer_confidence")
                    .Help("Calibrated confidence of the top intent guess per customer turn "
                          "answered from text (0 when nothing matched).")
                    .Register(registry)
                    .Add({}, prometheus::Histogram::BucketBoundaries{
                                 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0});
  auto& reloads = prometheus::BuildCounter()
                      .Name("switchboard_bot_knowledge_base_reloads_total")
                      .Help("Knowledge base loads attempted (at start and by "
                            "ReloadKnowledgeBase), by result: ok, or failed (the old base "
                            "stayed in service).")
                      .Register(registry);
  reloads_ok = &reloads.Add({{"result", "ok"}});
  reloads_failed = &reloads.Add({{"result", "failed"}});
  intents = &prometheus::BuildGauge()
                 .Name("switchboard_bot_knowledge_base_intents")
                 .Help("Intents in the knowledge base in service.")
                 .Register(registry)
                 .Add({});
  dialogues = &prometheus::BuildGauge()
                   .Name("switchboard_bot_dialogues")
                   .Help("Session dialogue contexts held in memory (bounded; idle ones "
                         "expire), as of the last expiry sweep or reset. On PostgreSQL "
                         "the rows every replica shares: each replica reports the same "
                         "table, so take the max across replicas, not the sum.")
                   .Register(registry)
                   .Add({});
  event_failures = &prometheus::BuildCounter()
                        .Name("switchboard_bot_event_failures_total")
                        .Help("Turns whose bot.turn_completed event could not be committed "
                              "to the outbox after the turn (memory dialogue contexts; on "
                              "PostgreSQL such turns count as dialogue failures); the caller "
                              "got UNAVAILABLE and may retry.")
                        .Register(registry)
                        .Add({});
  dialogue_failures = &prometheus::BuildCounter()
                           .Name("switchboard_bot_dialogue_failures_total")
                           .Help("Turns refused because the dialogue store (PostgreSQL) "
                                 "could not keep them with their event; the caller got "
                                 "UNAVAILABLE and may retry.")
                           .Register(registry)
                           .Add({});
}

}  // namespace switchboard::bot
