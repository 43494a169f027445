// The bot server: its flags and parts; libs/host opens, serves and stops.
#include "libs/host/host.h"
#include "services/bot/bot.h"
#include "services/bot/bot_service.h"
#include "services/bot/postgres_dialogues.h"
#include "services/bot/postgres_event_log.h"
#include "services/bot/sqlite_event_log.h"

namespace switchboard::bot {
namespace {

int Run(int argc, char** argv) {
  host::Host host(
      {"bot", v1::BotService::service_full_name(), 7103, 9103,
       "folder of bot.db (the event outbox), the events file and the development keys"});
  std::string knowledge_base;
  absl::Duration knowledge_base_check_interval = absl::Seconds(30);
  BotOptions options;
  config::FlagSet& flags = host.flags();
  flags.Add("knowledge_base", &knowledge_base,
            "the knowledge base file, read at start, by ReloadKnowledgeBase and every check "
            "interval; empty (the default): services/bot/kb/intents.kb as built in");
  flags.Add("knowledge_base_check_interval", &knowledge_base_check_interval,
            "how often --knowledge_base is read and, if its content changed, loaded as "
            "ReloadKnowledgeBase would, so that every replica follows it; 0 turns this off");
  flags.Add("not_understood_limit", &options.not_understood_limit,
            "consecutive not-understood turns that escalate to a human");
  flags.Add("dialogue_idle_expiry", &options.dialogues.idle_expiry,
            "a session's dialogue context is forgotten after this long without a turn");
  flags.Add("max_dialogues", &options.dialogues.max_dialogues,
            "most dialogue contexts in memory (least recently used go first); on PostgreSQL "
            "replicas share them in a table that only --dialogue_idle_expiry bounds");
  if (auto exit = host.ParseFlags(argc, argv, [&]() -> absl::Status {
        if (options.not_understood_limit < 1 || options.dialogues.max_dialogues < 1 ||
            options.dialogues.idle_expiry <= absl::ZeroDuration()) {
          return absl::InvalidArgumentError(
              "--not_understood_limit and --max_dialogues must be at least 1, "
              "--dialogue_idle_expiry above 0");
        }
        return absl::OkStatus();
      })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  host::StoreOptions store_options{host::Migrated(BotMigrations())};
  store_options.postgres_migrations = &PostgresBotMigrations();
  if (auto exit = host.OpenStore(std::move(store_options))) return *exit;

  // Null dialogues: in the bot's memory. On PostgreSQL see docs/scaling.md.
  EventLog* event_log = nullptr;
  DialogueStore* dialogues = nullptr;
  if (host.on_postgres()) {
    event_log =
        &host.Make<PostgresEventLog>(host.database_uri(), host.topic(), host.relay_notifier());
    dialogues = &host.Make<PostgresDialogueStore>(
        host.database_uri(), options.dialogues.idle_expiry, host.topic(), host.relay_notifier());
  } else {
    event_log =
        &host.Make<SqliteEventLog>(&host.committer(), host.topic(), host.relay_notifier());
  }
  auto& metrics = host.Make<BotMetrics>(host.registry());
  auto& bot = host.Make<Bot>(knowledge_base, event_log, RealClock(), &metrics, options, dialogues);
  if (absl::StatusOr<Bot::ReloadResult> loaded = bot.Reload("startup"); !loaded.ok()) {
    return host.Fail("knowledge_base", loaded.status());
  }
  auto& service = host.Make<BotService>(&bot, host.keys().verifier.get(), RealClock(),
                                        &host.pool(), host.on_postgres());
  // A failed sweep is logged by the bot and tried again at the next.
  host.Every(absl::Seconds(30), [&bot] { bot.ExpireDialogues().IgnoreError(); });
  // The built-in base has no file to watch.
  if (!knowledge_base.empty() && knowledge_base_check_interval > absl::ZeroDuration()) {
    host.Every(knowledge_base_check_interval, [&bot] { bot.ReloadIfChanged("file_changed"); });
  }
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::bot

int main(int argc, char** argv) { return switchboard::bot::Run(argc, argv); }
