#include "services/presence/metrics.h"

namespace switchboard::presence {

PresenceMetrics::PresenceMetrics(prometheus::Registry& registry) {
  auto& agents_family =
      prometheus::BuildGauge()
          .Name("switchboard_presence_agents")
          .Help("Agents known to presence, by current status (online, away, "
                "busy, offline).")
          .Register(registry);
  for (int s = v1::AGENT_STATUS_ONLINE; s <= v1::AGENT_STATUS_OFFLINE; ++s) {
    std::string name = v1::AgentStatus_Name(s).substr(sizeof("AGENT_STATUS_") - 1);
    for (char& c : name) c = static_cast<char>(tolower(c));
    agents_by_status[s] = &agents_family.Add({{"status", name}});
  }
  agents_by_status[v1::AGENT_STATUS_UNSPECIFIED] =
      agents_by_status[v1::AGENT_STATUS_OFFLINE];
  leases_expired = &prometheus::BuildCounter()
                        .Name("switchboard_presence_leases_expired_total")
                        .Help("Agents set OFFLINE because no device renewed "
                              "their presence lease in time.")
                        .Register(registry)
                        .Add({});
  reservations_granted =
      &prometheus::BuildCounter()
           .Name("switchboard_presence_reservations_total")
           .Help("Capacity reservations granted (one per offer routing makes).")
           .Register(registry)
           .Add({});
  auto& rejected = prometheus::BuildCounter()
                       .Name("switchboard_presence_reservations_rejected_total")
                       .Help("Capacity reservations refused, by reason: "
                             "at_capacity, not_online, no_channel.")
                       .Register(registry);
  rejected_at_capacity = &rejected.Add({{"reason", "at_capacity"}});
  rejected_not_online = &rejected.Add({{"reason", "not_online"}});
  rejected_no_channel = &rejected.Add({{"reason", "no_channel"}});
  reservations_expired =
      &prometheus::BuildCounter()
           .Name("switchboard_presence_reservations_expired_total")
           .Help("Reservations that lapsed unconfirmed after their hold time.")
           .Register(registry)
           .Add({});
  auto& reconciled =
      prometheus::BuildCounter()
          .Name("switchboard_presence_reservations_reconciled_total")
          .Help("Reservations ReconcileReservations changed, by outcome: released "
                "(held by nobody any more) or restored (an assignment's reservation "
                "was missing). Above zero means capacity had leaked.")
          .Register(registry);
  reconciled_released = &reconciled.Add({{"outcome", "released"}});
  reconciled_restored = &reconciled.Add({{"outcome", "restored"}});
}

}  // namespace switchboard::presence
