#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "switchboard/feedback/v1/feedback_service.pb.h"

namespace switchboard::feedback {

// Every domain metric of the feedback service, created once. Labels are
// bounded: a rating dimension, a complaint state, a peer or an outcome.
struct FeedbackMetrics {
  explicit FeedbackMetrics(prometheus::Registry& registry);

  // switchboard_feedback_rating{dimension}: the scores (1 to 5) of ratings
  // accepted, one observation per rating and dimension (response_speed,
  // professionalism, problem_resolution, overall_satisfaction). Buckets
  // le=1..5, so bucket differences give the distribution.
  prometheus::Histogram* response_speed;
  prometheus::Histogram* professionalism;
  prometheus::Histogram* problem_resolution;
  prometheus::Histogram* overall_satisfaction;
  // switchboard_feedback_ratings_rejected_total{reason}: SubmitFeedback
  // refusals decided by the sessions check: not_resolved (the session was
  // never resolved), duplicate (a different rating exists).
  prometheus::Counter* rejected_not_resolved;
  prometheus::Counter* rejected_duplicate;

  // switchboard_feedback_complaints{state}: complaints in each state now.
  prometheus::Gauge& complaints(v1::ComplaintState state) {
    return *complaints_by_state[state];
  }
  std::array<prometheus::Gauge*, 4> complaints_by_state{};
  // switchboard_feedback_complaints_filed_total: complaints filed (not
  // counting retries).
  prometheus::Counter* complaints_filed;

  // switchboard_feedback_peer_unavailable_total{peer}: calls to sessions or
  // routing that failed because the peer was down or too slow.
  prometheus::Counter* sessions_unavailable;
  prometheus::Counter* routing_unavailable;
  // switchboard_feedback_routing_pending: complaints whose enqueue or cancel
  // has not reached routing yet, as of the last sweep.
  prometheus::Gauge* routing_pending;
};

}  // namespace switchboard::feedback
