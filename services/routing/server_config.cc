#include "services/routing/server_config.h"

namespace switchboard::routing {

void AddServerFlags(config::FlagSet& flags, ServerConfig* config) {
  flags.Add("presence_address", &config->presence_address, "presence service, host:port");
  flags.Add("sessions_address", &config->sessions_address, "sessions service, host:port");
  flags.Add("peer_timeout", &config->peer_timeout,
            "deadline of each call to presence and sessions");
  flags.Add("offer_timeout", &config->router.offer_timeout,
            "how long an agent has to accept an offer before the next agent is tried");
  flags.Add("dispatch_interval", &config->dispatch_interval,
            "longest pause of the dispatcher when nothing wakes it (gauges refresh at "
            "least this often)");
  flags.Add("concurrent_offers", &config->router.concurrent_offers,
            "session offers decided at once (each waits on presence's reservation and "
            "sessions' record of the offer; the peers commit them together)");
  flags.Add("reconcile_interval", &config->router.reconcile_interval,
            "how often presence's capacity reservations are reconciled with routing's "
            "offers and assignments (also at start)");
  flags.Add("closed_offer_retention", &config->router.closed_offer_retention,
            "how long closed offers are kept for idempotent AcceptOffer/DeclineOffer "
            "replies");
  flags.Add("closed_offers_cached", &config->closed_offers_cached,
            "closed offers kept in memory for those replies (older ones are read from "
            "routing.db)");
  flags.Add("max_watch_streams_per_agent", &config->service.max_watch_streams_per_agent,
            "WatchOffers streams one agent or supervisor may hold at once");
  flags.Add("max_watch_backlog", &config->max_watch_backlog,
            "messages a WatchOffers stream may lag behind before it is ended with "
            "RESOURCE_EXHAUSTED (the agent reconnects and gets the open offers)");
}

absl::Status CheckServerConfig(ServerConfig& config) {
  if (config.router.offer_timeout < absl::Seconds(1) ||
      config.router.offer_timeout > absl::Minutes(9) ||
      config.peer_timeout <= absl::ZeroDuration() ||
      config.dispatch_interval <= absl::ZeroDuration() ||
      config.router.reconcile_interval <= absl::ZeroDuration() ||
      config.router.closed_offer_retention <= absl::ZeroDuration() ||
      config.closed_offers_cached < 0 || config.service.max_watch_streams_per_agent < 1 ||
      config.max_watch_backlog < 1 || config.router.concurrent_offers < 1 ||
      config.router.concurrent_offers > 256) {
    return absl::InvalidArgumentError(
        "--offer_timeout must be 1s to 9m (presence holds at most 10m); "
        "--peer_timeout, --dispatch_interval, --reconcile_interval and "
        "--closed_offer_retention above 0; --closed_offers_cached at least 0; "
        "--max_watch_streams_per_agent and --max_watch_backlog at least 1; "
        "--concurrent_offers 1 to 256");
  }
  config.router.closed_offers_cached = static_cast<size_t>(config.closed_offers_cached);
  config.service.max_watch_backlog = static_cast<size_t>(config.max_watch_backlog);
  return absl::OkStatus();
}

}  // namespace switchboard::routing
