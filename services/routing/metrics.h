#pragma once

#include <array>
#include <map>

#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/routing/model.h"

namespace switchboard::routing {

// Every domain metric of the routing service, created once. Per-queue gauges
// are created the first time a queue is seen, cached, and removed when the
// router forgets the queue; histograms by channel and category are created
// up front.
struct RoutingMetrics {
  explicit RoutingMetrics(prometheus::Registry& registry);

  struct QueueGauges {
    prometheus::Gauge* depth;
    prometheus::Gauge* oldest_wait_seconds;
    prometheus::Gauge* eligible_agents;
    prometheus::Gauge* available_agents;
    // 1 while the queue's schedule has it open, 0 while closed.
    prometheus::Gauge* open;
  };
  // The gauges of `queue` (created on first use). Thread-safe.
  QueueGauges& ForQueue(const QueueId& queue);
  // Removes `queue`'s gauges (it has been idle longest), so that the series
  // stay bounded whatever languages customers choose. Invalidates what
  // ForQueue returned for it. Thread-safe.
  void Forget(const QueueId& queue);

  // switchboard_routing_offer_latency_seconds{channel,category}
  prometheus::Histogram& offer_latency(common::v1::Channel channel,
                                       common::v1::Category category) {
    return *offer_latency_[channel][category];
  }
  // switchboard_routing_queue_wait_seconds{channel,category}
  prometheus::Histogram& queue_wait(common::v1::Channel channel,
                                    common::v1::Category category) {
    return *queue_wait_[channel][category];
  }

  prometheus::Counter* entries_enqueued;
  prometheus::Counter* entries_cancelled;
  prometheus::Counter* entries_requeued;
  prometheus::Counter* offers_made;
  prometheus::Counter* offers_accepted;
  prometheus::Counter* offers_auto_accepted;
  prometheus::Counter* offers_declined;
  prometheus::Counter* offers_expired;
  prometheus::Counter* offers_withdrawn;
  prometheus::Counter* reservations_refused;
  prometheus::Counter* peer_failures;
  // switchboard_routing_releases_owed: capacity routing owes presence and is
  // retrying to release (durable; presence unreachable while it grows).
  prometheus::Gauge* releases_owed;
  // switchboard_routing_accepts_in_progress: accepted offers routing is
  // still confirming in presence and assigning in sessions.
  prometheus::Gauge* accepts_in_progress;
  // switchboard_routing_reconciliations_total{outcome}: passes of
  // ReconcileReservations, ok or failed.
  prometheus::Counter* reconciliations_ok;
  prometheus::Counter* reconciliations_failed;
  // switchboard_routing_capacity_reconciled_total{outcome}: reservations a
  // reconciliation released (held by nobody) or restored (an assignment's).
  prometheus::Counter* capacity_reconciled_released;
  prometheus::Counter* capacity_reconciled_restored;

 private:
  prometheus::Family<prometheus::Gauge>* depth_family_;
  prometheus::Family<prometheus::Gauge>* oldest_family_;
  prometheus::Family<prometheus::Gauge>* eligible_family_;
  prometheus::Family<prometheus::Gauge>* available_family_;
  prometheus::Family<prometheus::Gauge>* open_family_;
  std::array<std::array<prometheus::Histogram*, 9>, 5> offer_latency_{};
  std::array<std::array<prometheus::Histogram*, 9>, 5> queue_wait_{};
  absl::Mutex mu_;
  std::map<QueueId, QueueGauges> queues_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::routing
