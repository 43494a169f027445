#include "services/sessions/metrics.h"

#include <string>

#include "absl/strings/ascii.h"

namespace switchboard::sessions {
namespace {

std::string Lower(const std::string& name, const std::string& prefix) {
  return absl::AsciiStrToLower(name.substr(prefix.size()));
}

SessionsMetrics::ByQueue MakeHistograms(prometheus::Registry& registry,
                                        const std::string& name, const std::string& help,
                                        const prometheus::Histogram::BucketBoundaries& buckets) {
  auto& family = prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
  SessionsMetrics::ByQueue out{};
  for (int ch = 0; ch < SessionsMetrics::kChannels; ++ch) {
    for (int ca = 0; ca < SessionsMetrics::kCategories; ++ca) {
      out[ch][ca] = &family.Add(
          {{"channel", Lower(common::v1::Channel_Name(ch), "CHANNEL_")},
           {"category", Lower(common::v1::Category_Name(ca), "CATEGORY_")}},
          buckets);
    }
  }
  return out;
}

}  // namespace

SessionsMetrics::SessionsMetrics(prometheus::Registry& registry) {
  const prometheus::Histogram::BucketBoundaries fast = {0.05, 0.1, 0.25, 0.5, 1, 2, 5};
  const prometheus::Histogram::BucketBoundaries human = {
      10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600};
  bot_turn_seconds = MakeHistograms(
      registry, "switchboard_sessions_bot_turn_seconds",
      "Bot turn latency: from a customer message in BOT state being durable to "
      "the bot's answer (or its failure or timeout) coming back, in seconds.",
      fast);
  queue_wait_seconds = MakeHistograms(
      registry, "switchboard_sessions_queue_wait_seconds",
      "Queue wait: from the session entering QUEUED to an agent being assigned "
      "(AssignAgent), per wait, in seconds.",
      human);
  first_response_seconds = MakeHistograms(
      registry, "switchboard_sessions_first_human_response_seconds",
      "Time to first human response: session creation to the first message of "
      "a human agent, once per session; bot and system messages never count.",
      human);
  resolution_seconds = MakeHistograms(
      registry, "switchboard_sessions_resolution_seconds",
      "Time to resolution: session creation to ResolveSession, per resolution, "
      "in seconds.",
      human);
  auto& breaches =
      prometheus::BuildCounter()
          .Name("switchboard_sessions_sla_breaches_total")
          .Help("Sessions whose first-response due time (EMAIL SLA) passed with no "
                "agent message, counted once per session when the breach is found.")
          .Register(registry);
  for (int ch = 0; ch < kChannels; ++ch) {
    for (int ca = 0; ca < kCategories; ++ca) {
      sla_breaches[ch][ca] =
          &breaches.Add({{"channel", Lower(common::v1::Channel_Name(ch), "CHANNEL_")},
                         {"category", Lower(common::v1::Category_Name(ca), "CATEGORY_")}});
    }
  }
  auto& states = prometheus::BuildGauge()
                     .Name("switchboard_sessions")
                     .Help("Sessions in each state now (CLOSED: every closed session "
                           "in the store, counted at start and as sessions close).")
                     .Register(registry);
  for (int s = 1; s < 6; ++s) {
    sessions_by_state[s] =
        &states.Add({{"state", Lower(v1::SessionState_Name(s), "SESSION_STATE_")}});
  }
  sessions_by_state[0] = sessions_by_state[1];  // never used: no state is UNSPECIFIED
  auto& outcomes = prometheus::BuildCounter()
                       .Name("switchboard_sessions_bot_outcomes_total")
                       .Help("Bot turns by outcome: answered, clarified, not_understood, "
                             "escalated (the bot handed over), unavailable (the bot was "
                             "not configured, timed out or failed; escalated to a human), "
                             "shed (the bot's pool was full, or the customer wrote faster "
                             "than the bot answered; escalated to a human without asking "
                             "the bot).")
                       .Register(registry);
  bot_answered = &outcomes.Add({{"outcome", "answered"}});
  bot_clarified = &outcomes.Add({{"outcome", "clarified"}});
  bot_not_understood = &outcomes.Add({{"outcome", "not_understood"}});
  bot_escalated = &outcomes.Add({{"outcome", "escalated"}});
  bot_unavailable = &outcomes.Add({{"outcome", "unavailable"}});
  bot_shed = &outcomes.Add({{"outcome", "shed"}});
  routing_failures = &prometheus::BuildCounter()
                          .Name("switchboard_sessions_routing_failures_total")
                          .Help("Calls to routing (EnqueueSession, CancelSession) that "
                                "failed; the session stays pending and is retried.")
                          .Register(registry)
                          .Add({});
  routing_pending = &prometheus::BuildGauge()
                         .Name("switchboard_sessions_routing_pending")
                         .Help("Sessions whose latest state routing has not acknowledged "
                               "yet (queued or cancelled while routing was unreachable).")
                         .Register(registry)
                         .Add({});
}

}  // namespace switchboard::sessions
