#pragma once

// The routing server's own settings and flags; libs/host adds the shared
// ones (ports, data folder, keys, events, TLS).

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"
#include "services/routing/router.h"
#include "services/routing/routing_service.h"

namespace switchboard::routing {

struct ServerConfig {
  std::string presence_address = "localhost:7104";
  std::string sessions_address = "localhost:7101";
  absl::Duration peer_timeout = absl::Seconds(5);
  absl::Duration dispatch_interval = absl::Seconds(1);
  RouterOptions router;
  RoutingService::Options service;
  // Flags held as ints, copied into `router` and `service` by Check.
  int closed_offers_cached = static_cast<int>(RouterOptions().closed_offers_cached);
  int max_watch_backlog = static_cast<int>(RoutingService::Options().max_watch_backlog);
};

// Registers routing's own flags, with `config`'s values as defaults.
void AddServerFlags(config::FlagSet& flags, ServerConfig* config);

// Checks the values the flags gave and completes `config`. INVALID_ARGUMENT
// naming the flags at fault.
absl::Status CheckServerConfig(ServerConfig& config);

}  // namespace switchboard::routing
