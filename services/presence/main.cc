// The presence server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/synchronization/notification.h"
#include "libs/auth/service_keys.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/event_sink.h"
#include "libs/events/relay.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/presence/presence.h"
#include "services/presence/presence_service.h"
#include "services/presence/sqlite_store.h"

namespace switchboard::presence {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  auth::KeyOptions keys;
  events::EventSinkOptions events;
  PresenceOptions presence;
  PresenceService::Options service;
  absl::Duration sweep_interval = absl::Seconds(1);
  absl::Duration relay_flush_deadline = absl::Seconds(5);
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed", {{"service", "presence"},
                                {"step", what},
                                {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "presence";
  config.server.port = 7104;
  config.server.metrics_port = 9104;
  config.server.grpc_service_names = {v1::PresenceService::service_full_name()};
  config::FlagSet flags("presence");
  server::AddServerFlags(flags, &config.server);
  flags.Add("data_dir", &config.data_dir,
            "folder of presence.db, the events file and the development keys");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/false);
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("lease", &config.presence.lease,
            "an agent goes OFFLINE when no device renews presence this long");
  flags.Add("reservation_hold", &config.presence.default_hold,
            "hold time of a capacity reservation whose request gives none");
  flags.Add("sweep_interval", &config.sweep_interval,
            "how often lapsed leases and reservations are expired");
  flags.Add("max_watch_streams_per_principal", &config.service.max_watch_streams_per_principal,
            "WatchPresence streams one caller may hold at once; more get "
            "RESOURCE_EXHAUSTED with a retry-after");
  int max_watch_backlog = static_cast<int>(config.service.max_watch_backlog);
  flags.Add("max_watch_backlog", &max_watch_backlog,
            "changes a WatchPresence stream may lag behind before it is ended with "
            "RESOURCE_EXHAUSTED (the watcher subscribes again)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "presence: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "presence: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.presence.lease < absl::Seconds(1) || config.sweep_interval <= absl::ZeroDuration()) {
    std::fprintf(stderr, "presence: --lease must be at least 1s and --sweep_interval above 0\n");
    return 2;
  }
  if (config.service.max_watch_streams_per_principal < 1 || max_watch_backlog < 1) {
    std::fprintf(stderr,
                 "presence: --max_watch_streams_per_principal and --max_watch_backlog must be "
                 "at least 1\n");
    return 2;
  }
  config.service.max_watch_backlog = static_cast<size_t>(max_watch_backlog);

  std::error_code error;
  std::filesystem::create_directories(config.data_dir, error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys = auth::LoadServiceKeys(
      config.keys, "presence", config.data_dir, /*signs_service_tokens=*/false);
  if (!keys.ok()) return Fail("keys", keys.status());

  const std::string db_path = config.data_dir + "/presence.db";
  auto db = storage::Database::OpenMigrated({db_path}, PresenceMigrations());
  if (!db.ok()) return Fail("open_database", db.status());
  auto reader = storage::Database::Open({db_path});
  if (!reader.ok()) return Fail("open_database", reader.status());
  auto sink = events::OpenEventSink(config.events, "presence", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter committer(db->get());
  events::Relay relay(std::move(*reader), &committer, sink->get(), *registry, {});
  SqlitePresenceStore store(&committer, events::TopicFor(config.events.topic_prefix, "presence"),
                            [&relay] { relay.Notify(); });
  PresenceMetrics metrics(*registry);
  Presence presence(&store, RealClock(), &metrics, config.presence);
  if (absl::Status s = presence.Load(); !s.ok()) return Fail("load", s);

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  PresenceService service(&presence, keys->verifier.get(), RealClock(), &pool, config.service);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());
  (*server)->OnDrain([&service] { service.EndStreams(); });

  absl::Notification stop_sweeping;
  std::thread sweeper([&] {
    while (!stop_sweeping.WaitForNotificationWithTimeout(config.sweep_interval)) {
      if (absl::StatusOr<int> lapsed = presence.ExpireDue(); !lapsed.ok()) {
        log::Error("expire_failed", {{"error", lapsed.status().ToString()}});
      }
    }
  });

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "presence"}, {"signal", signal}});
  (*server)->Shutdown();
  stop_sweeping.Notify();
  sweeper.join();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "presence"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::presence

int main(int argc, char** argv) { return switchboard::presence::Run(argc, argv); }
