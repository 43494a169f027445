// The routing server: its parts; libs/host opens, serves and stops.
#include "libs/client/peer.h"
#include "libs/host/host.h"
#include "services/routing/grpc_peers.h"
#include "services/routing/open_store.h"
#include "services/routing/router.h"
#include "services/routing/routing_service.h"
#include "services/routing/server_config.h"

namespace switchboard::routing {
namespace {

int Run(int argc, char** argv) {
  host::Host host({"routing", v1::RoutingService::service_full_name(), 7102, 9102,
                   "folder of routing.db, the events file and the development keys",
                   /*calls_peers=*/true});
  ServerConfig config;
  AddServerFlags(host.flags(), &config);
  if (auto exit = host.ParseFlags(argc, argv, [&] { return CheckServerConfig(config); })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  RoutingStore* store = nullptr;
  if (auto exit = OpenRoutingStore(host, &store)) return *exit;

  auto& metrics = host.Make<RoutingMetrics>(host.registry());
  auto* signer = host.keys().signer.get();
  auto& presence_token = host.Make<client::ServiceToken>(signer, "routing", "presence");
  auto presence_channel = client::PeerChannel(config.presence_address, host.peer_security());
  auto& presence =
      host.Make<GrpcPresence>(presence_channel, &presence_token, config.peer_timeout);
  auto& sessions = host.Make<GrpcSessions>(
      client::PeerChannel(config.sessions_address, host.peer_security()),
      &host.Make<client::ServiceToken>(signer, "routing", "sessions"), config.peer_timeout);
  // A schedule change wakes the dispatcher, so that queues open or close at
  // once; changes arrive only once the server is up, after `woken` is set.
  Router* woken = nullptr;
  auto& schedules = host.Make<ScheduleBook>(store, RealClock(), [&woken] { woken->Wake(); });
  if (absl::Status s = schedules.Load(); !s.ok()) return host.Fail("load", s);
  auto& router = host.Make<Router>(store, &presence, &sessions, RealClock(), &metrics,
                                   config.router, &schedules);
  woken = &router;
  if (absl::Status s = router.Load(); !s.ok()) return host.Fail("load", s);
  auto& service = host.Make<RoutingService>(&router, &schedules, host.keys().verifier.get(),
                                            RealClock(), &host.pool(), config.service);
  host.OnDrain([&service] { service.EndStreams(); });

  auto& watcher = host.Make<PresenceWatcher>(presence_channel, &presence_token, &router);
  std::unique_ptr<Dispatcher> dispatcher;
  host.OnServing([&] {
    watcher.Start();
    dispatcher = std::make_unique<Dispatcher>(&router, config.dispatch_interval);
  });
  host.OnStop([&] {
    watcher.Stop();
    dispatcher->Stop();
  });
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::routing

int main(int argc, char** argv) { return switchboard::routing::Run(argc, argv); }
