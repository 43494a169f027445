// The sessions server: its parts; libs/host opens, serves and stops.
#include <memory>
#include <vector>

#include "libs/host/host.h"
#include "services/sessions/attachments_wiring.h"
#include "services/sessions/grpc_peers.h"
#include "services/sessions/loops.h"
#include "services/sessions/open_store.h"
#include "services/sessions/server_config.h"
#include "services/sessions/sessions.h"
#include "services/sessions/sessions_service.h"

namespace switchboard::sessions {
namespace {

int Run(int argc, char** argv) {
  host::Host host({"sessions", v1::SessionsService::service_full_name(), 7101, 9101,
                   "folder of sessions.db, the events file and the development keys",
                   /*calls_peers=*/true});
  ServerConfig config;
  AddServerFlags(host.flags(), &config);
  if (auto exit = host.ParseFlags(argc, argv, [&] { return CheckServerConfig(config); })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  SessionStore* store = nullptr;
  if (auto exit = OpenSessionStore(host, config, &store)) return *exit;
  auto& metrics = host.Make<SessionsMetrics>(host.registry());
  auto* signer = host.keys().signer.get();
  GrpcBotClient* bot = nullptr;
  if (!config.bot_address.empty()) {
    bot = &host.Make<GrpcBotClient>(config.bot_address, host.peer_security(),
                                    &host.Make<client::ServiceToken>(signer, "sessions", "bot"),
                                    config.bot_deadline);
  }
  GrpcRoutingClient* routing = nullptr;
  if (!config.routing_address.empty()) {
    routing = &host.Make<GrpcRoutingClient>(
        config.routing_address, host.peer_security(),
        &host.Make<client::ServiceToken>(signer, "sessions", "routing"), config.routing_timeout);
  }
  server::BlockingPool& pool = host.pool();
  auto& bot_pool = host.Make<server::BlockingPool>(config.bot_threads, config.bot_queue);
  // Not the RPC pool: routing's calls here (RecordOffer, AssignAgent) need
  // its workers while these wait on routing.
  auto& peer_pool = host.Make<server::BlockingPool>(config.peer_threads);
  // One thread keeps the answers in commit order. Once it has stopped (the
  // ordered stop, before the committer's last commits), they run in place.
  auto& answer_pool = host.Make<server::BlockingPool>(1);
  auto& sessions = host.Make<Sessions>(
      store, RealClock(), &metrics, host.keys().verifier.get(), bot, routing,
      [&peer_pool](std::function<void()> task) { peer_pool.Run(std::move(task)); },
      [&bot_pool](std::function<void()> task) { return bot_pool.TryRun(std::move(task)); },
      config.sessions, [&answer_pool](std::function<void()> task) {
        if (!answer_pool.Run(task)) task();
      });
  if (absl::Status s = sessions.Load(); !s.ok()) return host.Fail("load", s);
  pool.Run([&sessions] { sessions.ResumeBotTurns(); });
  Attachments* files = nullptr;
  if (auto exit = MakeAttachments(host, config, &sessions, &metrics, &files)) return *exit;
  auto& service = host.Make<SessionsService>(&sessions, files, host.keys().verifier.get(),
                                             RealClock(), &pool, config.service);
  host.OnDrain([&service] { service.EndStreams(); });
  ScheduleLoops(host, config, sessions);
  host.OnStop([&bot_pool, &peer_pool, &answer_pool] {
    bot_pool.Stop();
    peer_pool.Stop();
    answer_pool.Stop();
  });
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::sessions

int main(int argc, char** argv) { return switchboard::sessions::Run(argc, argv); }
