#pragma once

#include "libs/host/host.h"
#include "services/sessions/server_config.h"
#include "services/sessions/sessions.h"

namespace switchboard::sessions {

// The sessions logic's periodic work while serving: the sweep (SLA breaches,
// lapsed offers, idle sessions) every --sweep_interval, and the routing
// calls left pending every --routing_retry_interval, at start too (those of
// the previous run).
void ScheduleLoops(host::Host& host, const ServerConfig& config, Sessions& sessions);

}  // namespace switchboard::sessions
