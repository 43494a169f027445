// The bot server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <cstdio>
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
#include "services/bot/bot.h"
#include "services/bot/bot_service.h"
#include "services/bot/sqlite_event_log.h"

namespace switchboard::bot {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  // Empty: the base compiled into the binary.
  std::string knowledge_base;
  auth::KeyOptions keys;
  events::EventSinkOptions events;
  BotOptions bot;
  absl::Duration dialogue_idle_expiry = absl::Minutes(30);
  int max_dialogues = 100'000;
  absl::Duration sweep_interval = absl::Seconds(30);
  absl::Duration relay_flush_deadline = absl::Seconds(5);
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed",
             {{"service", "bot"}, {"step", what}, {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "bot";
  config.server.port = 7103;
  config.server.metrics_port = 9103;
  config.server.grpc_service_names = {v1::BotService::service_full_name()};
  config::FlagSet flags("bot");
  server::AddServerFlags(flags, &config.server);
  flags.Add("data_dir", &config.data_dir,
            "folder of bot.db (the event outbox), the events file and the development keys");
  flags.Add("knowledge_base", &config.knowledge_base,
            "the knowledge base file, read at start and by ReloadKnowledgeBase; empty (the "
            "default) uses the base compiled into the binary (services/bot/kb/intents.kb as "
            "built)");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/false);
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("not_understood_limit", &config.bot.not_understood_limit,
            "consecutive not-understood turns that escalate to a human");
  flags.Add("dialogue_idle_expiry", &config.dialogue_idle_expiry,
            "a session's dialogue context is forgotten after this long without a turn");
  flags.Add("max_dialogues", &config.max_dialogues,
            "most session dialogue contexts held in memory (least recently used go first)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "bot: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "bot: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.bot.not_understood_limit < 1 || config.max_dialogues < 1 ||
      config.dialogue_idle_expiry <= absl::ZeroDuration()) {
    std::fprintf(stderr,
                 "bot: --not_understood_limit and --max_dialogues must be at least 1, "
                 "--dialogue_idle_expiry above 0\n");
    return 2;
  }
  config.bot.dialogues.idle_expiry = config.dialogue_idle_expiry;
  config.bot.dialogues.max_dialogues = config.max_dialogues;

  std::error_code error;
  std::filesystem::create_directories(config.data_dir + "/events", error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys =
      auth::LoadServiceKeys(config.keys, "bot", config.data_dir, /*signs_service_tokens=*/false);
  if (!keys.ok()) return Fail("keys", keys.status());

  const std::string db_path = config.data_dir + "/bot.db";
  auto db = storage::Database::OpenMigrated({db_path}, BotMigrations());
  if (!db.ok()) return Fail("open_database", db.status());
  auto reader = storage::Database::Open({db_path});
  if (!reader.ok()) return Fail("open_database", reader.status());
  auto sink = events::OpenEventSink(config.events, "bot", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter committer(db->get());
  events::Relay relay(std::move(*reader), &committer, sink->get(), *registry, {});
  SqliteEventLog event_log(&committer, events::TopicFor(config.events.topic_prefix, "bot"),
                           [&relay] { relay.Notify(); });
  BotMetrics metrics(*registry);
  Bot bot(config.knowledge_base, &event_log, RealClock(), &metrics, config.bot);
  if (absl::StatusOr<Bot::ReloadResult> loaded = bot.Reload("startup"); !loaded.ok()) {
    relay.Stop(config.relay_flush_deadline);
    committer.Stop();
    return Fail("knowledge_base", loaded.status());
  }

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  BotService service(&bot, keys->verifier.get(), RealClock(), &pool);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());

  absl::Notification stop_sweeping;
  std::thread sweeper([&] {
    while (!stop_sweeping.WaitForNotificationWithTimeout(config.sweep_interval)) {
      bot.ExpireDialogues();
    }
  });

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "bot"}, {"signal", signal}});
  (*server)->Shutdown();
  stop_sweeping.Notify();
  sweeper.join();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "bot"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::bot

int main(int argc, char** argv) { return switchboard::bot::Run(argc, argv); }
