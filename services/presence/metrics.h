#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "switchboard/presence/v1/presence_service.pb.h"

namespace switchboard::presence {

// Every domain metric of the presence service, created once.
struct PresenceMetrics {
  explicit PresenceMetrics(prometheus::Registry& registry);

  // switchboard_presence_agents{status}: agents in each status now.
  prometheus::Gauge& agents(v1::AgentStatus status) {
    return *agents_by_status[status];
  }
  std::array<prometheus::Gauge*, 5> agents_by_status{};
  // switchboard_presence_leases_expired_total: agents that went OFFLINE
  // because no device renewed their lease in time.
  prometheus::Counter* leases_expired;
  // switchboard_presence_reservations_total: capacity reservations granted.
  prometheus::Counter* reservations_granted;
  // switchboard_presence_reservations_rejected_total{reason}: reservations
  // refused because the agent was at capacity, not online, or had no
  // capacity on the channel.
  prometheus::Counter* rejected_at_capacity;
  prometheus::Counter* rejected_not_online;
  prometheus::Counter* rejected_no_channel;
  // switchboard_presence_reservations_expired_total: reservations that lapsed
  // unconfirmed (the offer was not accepted in time and nobody released it).
  prometheus::Counter* reservations_expired;
  // switchboard_presence_reservations_reconciled_total{outcome}: reservations
  // ReconcileReservations released (nobody held them any more: a crash or a
  // lost release had left them behind) or restored (an assignment's
  // reservation was missing). Above zero means capacity was leaking.
  prometheus::Counter* reconciled_released;
  prometheus::Counter* reconciled_restored;
};

}  // namespace switchboard::presence
