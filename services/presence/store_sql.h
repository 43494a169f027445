#pragma once

// The SQL both presence stores share: the columns of their tables, in the
// order each store binds and reads them.

namespace switchboard::presence {

// agents: AgentRecord's fields (the profile serialized).
inline constexpr char kAgentColumns[] =
    "agent_id, status, profile, lease_expires_at_micros, status_changed_at_micros, "
    "idle_since_micros, revision, profile_set_by, profile_set_at_micros";

// reservations: ReservationRecord's fields.
inline constexpr char kReservationColumns[] =
    "session_id, agent_id, channel, assigned, created_at_micros, expires_at_micros, holder_id";

}  // namespace switchboard::presence
