#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// Every domain metric of the sessions service, created once; the per-label
// handles are cached so that hot paths do no label lookups. Labels are the
// session's channel and category (low cardinality, never an id).
struct SessionsMetrics {
  explicit SessionsMetrics(prometheus::Registry& registry);

  static constexpr int kChannels = 5;    // common.v1.Channel values
  static constexpr int kCategories = 9;  // common.v1.Category values
  using ByQueue = std::array<std::array<prometheus::Histogram*, kCategories>, kChannels>;

  prometheus::Histogram& bot_turn(common::v1::Channel ch, common::v1::Category ca) {
    return *bot_turn_seconds[ch][ca];
  }
  prometheus::Histogram& queue_wait(common::v1::Channel ch, common::v1::Category ca) {
    return *queue_wait_seconds[ch][ca];
  }
  prometheus::Histogram& first_response(common::v1::Channel ch, common::v1::Category ca) {
    return *first_response_seconds[ch][ca];
  }
  prometheus::Histogram& resolution(common::v1::Channel ch, common::v1::Category ca) {
    return *resolution_seconds[ch][ca];
  }
  prometheus::Counter& sla_breach(common::v1::Channel ch, common::v1::Category ca) {
    return *sla_breaches[ch][ca];
  }
  prometheus::Gauge& sessions(v1::SessionState state) { return *sessions_by_state[state]; }

  // switchboard_sessions_bot_turn_seconds{channel,category}: from the
  // moment a customer message in BOT state is durable to the bot's answer
  // (or its failure) coming back.
  ByQueue bot_turn_seconds{};
  // switchboard_sessions_queue_wait_seconds{channel,category}: entering
  // QUEUED to AssignAgent (each wait, including after transfers).
  ByQueue queue_wait_seconds{};
  // switchboard_sessions_first_human_response_seconds{channel,category}:
  // session creation to the first message of a human agent (bot and system
  // messages never count); once per session.
  ByQueue first_response_seconds{};
  // switchboard_sessions_resolution_seconds{channel,category}: session
  // creation to ResolveSession (each resolution, including after reopens).
  ByQueue resolution_seconds{};
  // switchboard_sessions_sla_breaches_total{channel,category}: sessions
  // whose first-response due time passed with no agent message; once each.
  std::array<std::array<prometheus::Counter*, kCategories>, kChannels> sla_breaches{};
  // switchboard_sessions{state}: sessions in each state now.
  std::array<prometheus::Gauge*, 6> sessions_by_state{};
  // switchboard_sessions_bot_outcomes_total{outcome}: bot turns by outcome
  // (answered, clarified, not_understood, escalated, unavailable, shed).
  prometheus::Counter* bot_answered;
  prometheus::Counter* bot_clarified;
  prometheus::Counter* bot_not_understood;
  prometheus::Counter* bot_escalated;
  prometheus::Counter* bot_unavailable;
  prometheus::Counter* bot_shed;
  // switchboard_sessions_routing_failures_total: calls to routing
  // (EnqueueSession, CancelSession) that failed and will be retried.
  prometheus::Counter* routing_failures;
  // switchboard_sessions_routing_pending: sessions whose latest state
  // routing has not acknowledged yet.
  prometheus::Gauge* routing_pending;
};

}  // namespace switchboard::sessions
