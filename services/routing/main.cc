// The routing server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <filesystem>

#include "libs/auth/service_keys.h"
#include "libs/client/peer.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/event_sink.h"
#include "libs/events/relay.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/routing/grpc_peers.h"
#include "services/routing/router.h"
#include "services/routing/routing_service.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  auth::KeyOptions keys;
  events::EventSinkOptions events;
  std::string presence_address = "localhost:7104";
  std::string sessions_address = "localhost:7101";
  client::ClientTlsOptions peer_tls;
  absl::Duration peer_timeout = absl::Seconds(5);
  absl::Duration dispatch_interval = absl::Seconds(1);
  RouterOptions router;
  RoutingService::Options service;
  absl::Duration relay_flush_deadline = absl::Seconds(5);
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed",
             {{"service", "routing"}, {"step", what}, {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "routing";
  config.server.port = 7102;
  config.server.metrics_port = 9102;
  config.server.grpc_service_names = {v1::RoutingService::service_full_name()};
  config::FlagSet flags("routing");
  server::AddServerFlags(flags, &config.server);
  flags.Add("data_dir", &config.data_dir,
            "folder of routing.db, the events file and the development keys");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/true);
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("presence_address", &config.presence_address, "presence service, host:port");
  flags.Add("sessions_address", &config.sessions_address, "sessions service, host:port");
  client::AddClientTlsFlags(flags, &config.peer_tls, "peer_");
  flags.Add("peer_timeout", &config.peer_timeout,
            "deadline of each call to presence and sessions");
  flags.Add("offer_timeout", &config.router.offer_timeout,
            "how long an agent has to accept an offer before the next agent is tried");
  flags.Add("dispatch_interval", &config.dispatch_interval,
            "longest pause of the dispatcher when nothing wakes it (gauges refresh at "
            "least this often)");
  flags.Add("reconcile_interval", &config.router.reconcile_interval,
            "how often presence's capacity reservations are reconciled with routing's "
            "offers and assignments (also at start)");
  flags.Add("closed_offer_retention", &config.router.closed_offer_retention,
            "how long closed offers are kept for idempotent AcceptOffer/DeclineOffer "
            "replies");
  int closed_offers_cached = static_cast<int>(config.router.closed_offers_cached);
  flags.Add("closed_offers_cached", &closed_offers_cached,
            "closed offers kept in memory for those replies (older ones are read from "
            "routing.db)");
  flags.Add("max_watch_streams_per_agent", &config.service.max_watch_streams_per_agent,
            "WatchOffers streams one agent or supervisor may hold at once");
  int max_watch_backlog = static_cast<int>(config.service.max_watch_backlog);
  flags.Add("max_watch_backlog", &max_watch_backlog,
            "messages a WatchOffers stream may lag behind before it is ended with "
            "RESOURCE_EXHAUSTED (the agent reconnects and gets the open offers)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "routing: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "routing: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<client::ChannelSecurity> peer_security =
      client::ChannelSecurity::Create(config.peer_tls, "peer_");
  if (!peer_security.ok()) {
    std::fprintf(stderr, "routing: %s\n",
                 std::string(peer_security.status().message()).c_str());
    return 2;
  }
  if (config.router.offer_timeout < absl::Seconds(1) ||
      config.router.offer_timeout > absl::Minutes(9) ||
      config.peer_timeout <= absl::ZeroDuration() ||
      config.dispatch_interval <= absl::ZeroDuration() ||
      config.router.reconcile_interval <= absl::ZeroDuration() ||
      config.router.closed_offer_retention <= absl::ZeroDuration() ||
      closed_offers_cached < 0 || config.service.max_watch_streams_per_agent < 1 ||
      max_watch_backlog < 1) {
    std::fprintf(stderr,
                 "routing: --offer_timeout must be 1s to 9m (presence holds at most 10m); "
                 "--peer_timeout, --dispatch_interval, --reconcile_interval and "
                 "--closed_offer_retention above 0; --closed_offers_cached at least 0; "
                 "--max_watch_streams_per_agent and --max_watch_backlog at least 1\n");
    return 2;
  }
  config.router.closed_offers_cached = static_cast<size_t>(closed_offers_cached);
  config.service.max_watch_backlog = static_cast<size_t>(max_watch_backlog);

  std::error_code error;
  std::filesystem::create_directories(config.data_dir + "/events", error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys = auth::LoadServiceKeys(
      config.keys, "routing", config.data_dir, /*signs_service_tokens=*/true);
  if (!keys.ok()) return Fail("keys", keys.status());

  const std::string db_path = config.data_dir + "/routing.db";
  auto db = storage::Database::OpenMigrated({db_path}, RoutingMigrations());
  if (!db.ok()) return Fail("open_database", db.status());
  auto reader = storage::Database::Open({db_path});
  if (!reader.ok()) return Fail("open_database", reader.status());
  auto sink = events::OpenEventSink(config.events, "routing", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter committer(db->get());
  events::Relay relay(std::move(*reader), &committer, sink->get(), *registry, {});
  SqliteRoutingStore store(&committer, events::TopicFor(config.events.topic_prefix, "routing"),
                           [&relay] { relay.Notify(); });
  RoutingMetrics metrics(*registry);
  client::ServiceToken presence_token(keys->signer.get(), "routing", "presence");
  client::ServiceToken sessions_token(keys->signer.get(), "routing", "sessions");
  auto presence_channel = client::PeerChannel(config.presence_address, *peer_security);
  GrpcPresence presence(presence_channel, &presence_token, config.peer_timeout);
  GrpcSessions sessions(client::PeerChannel(config.sessions_address, *peer_security),
                        &sessions_token, config.peer_timeout);
  // A schedule change wakes the dispatcher, so that queues open or close at
  // once; changes arrive only once the server is up, after `woken` is set.
  Router* woken = nullptr;
  ScheduleBook schedules(&store, RealClock(), [&woken] { woken->Wake(); });
  if (absl::Status s = schedules.Load(); !s.ok()) return Fail("load", s);
  Router router(&store, &presence, &sessions, RealClock(), &metrics, config.router, &schedules);
  woken = &router;
  if (absl::Status s = router.Load(); !s.ok()) return Fail("load", s);

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  RoutingService service(&router, &schedules, keys->verifier.get(), RealClock(), &pool,
                         config.service);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());
  (*server)->OnDrain([&service] { service.EndStreams(); });

  PresenceWatcher watcher(presence_channel, &presence_token, &router);
  watcher.Start();
  Dispatcher dispatcher(&router, config.dispatch_interval);

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "routing"}, {"signal", signal}});
  (*server)->Shutdown();
  watcher.Stop();
  dispatcher.Stop();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "routing"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::routing

int main(int argc, char** argv) { return switchboard::routing::Run(argc, argv); }
