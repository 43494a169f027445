// The sessions server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <filesystem>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "libs/auth/service_keys.h"
#include "libs/client/peer.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/event_sink.h"
#include "libs/events/relay.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/sessions/grpc_peers.h"
#include "services/sessions/sessions.h"
#include "services/sessions/sessions_service.h"
#include "services/sessions/sqlite_store.h"

namespace switchboard::sessions {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  auth::KeyOptions keys;
  events::EventSinkOptions events;
  std::string bot_address = "localhost:7103";
  std::string routing_address = "localhost:7102";
  client::ClientTlsOptions peer_tls;
  absl::Duration bot_deadline = absl::Seconds(2);
  absl::Duration routing_timeout = absl::Seconds(2);
  std::string email_sla_by_category;
  std::string business_hours_sla_categories;
  SessionsOptions sessions;
  absl::Duration sweep_interval = absl::Seconds(5);
  absl::Duration routing_retry_interval = absl::Seconds(2);
  absl::Duration relay_flush_deadline = absl::Seconds(5);
  // Bot turns: their own pool, so a slow bot never holds the RPC workers.
  int bot_threads = 8;
  int bot_queue = 256;
  int closed_cache_size = 10'000;
  int reader_connections = 4;
  int max_queued_writes = 4096;
  int stream_backlog = 256;
  SessionsService::Options service;
  int reads_per_second = 5;
  int reads_burst = 20;
  int staff_reads_per_second = 100;
  int staff_reads_burst = 200;
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed", {{"service", "sessions"},
                                {"step", what},
                                {"error", status.ToString()}});
  return 1;
}

// "ACCOUNT_SECURITY=4h,DEPOSIT=24h" -> per-category SLA targets.
absl::Status ParseSlaByCategory(absl::string_view text,
                                absl::flat_hash_map<int, absl::Duration>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    common::v1::Category category;
    absl::Duration target;
    const std::string name = absl::StrCat(
        "CATEGORY_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(kv.first)));
    if (!common::v1::Category_Parse(name, &category) ||
        category == common::v1::CATEGORY_UNSPECIFIED ||
        !absl::ParseDuration(absl::StripAsciiWhitespace(kv.second), &target) ||
        target <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--email_sla_by_category: \"", item,
          "\" is not CATEGORY=DURATION, e.g. ACCOUNT_SECURITY=4h"));
    }
    (*out)[category] = target;
  }
  return absl::OkStatus();
}

// "deposit,withdrawal" -> those categories.
absl::Status ParseCategories(absl::string_view text, absl::flat_hash_set<int>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    common::v1::Category category;
    const std::string name =
        absl::StrCat("CATEGORY_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(item)));
    if (!common::v1::Category_Parse(name, &category) ||
        category == common::v1::CATEGORY_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--business_hours_sla_categories: \"", item,
          "\" is not a category, e.g. deposit,withdrawal"));
    }
    out->insert(category);
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "sessions";
  config.server.port = 7101;
  config.server.metrics_port = 9101;
  config.server.grpc_service_names = {v1::SessionsService::service_full_name()};
  config::FlagSet flags("sessions");
  server::AddServerFlags(flags, &config.server);
  flags.Add("data_dir", &config.data_dir,
            "folder of sessions.db, the events file and the development keys");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/true);
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("bot_address", &config.bot_address,
            "bot service host:port; empty: no bot, chats go straight to a human");
  flags.Add("routing_address", &config.routing_address,
            "routing service host:port; empty: sessions wait QUEUED-pending");
  client::AddClientTlsFlags(flags, &config.peer_tls, "peer_");
  flags.Add("bot_deadline", &config.bot_deadline,
            "a bot turn slower than this escalates the session to a human");
  flags.Add("routing_timeout", &config.routing_timeout,
            "deadline of calls to routing (failed calls are retried)");
  flags.Add("email_sla", &config.sessions.email_sla,
            "first-response target of EMAIL sessions");
  flags.Add("business_hours_sla_categories", &config.business_hours_sla_categories,
            "EMAIL categories whose target counts only the open hours of the EMAIL "
            "queue's schedule (routing), e.g. deposit,withdrawal; routing unreachable: "
            "the calendar target applies");
  flags.Add("email_sla_by_category", &config.email_sla_by_category,
            "per-category EMAIL targets, e.g. ACCOUNT_SECURITY=4h,DEPOSIT=24h");
  flags.Add("reopen_window", &config.sessions.reopen_window,
            "how long after resolution a session may be reopened");
  flags.Add("idle_timeout", &config.sessions.idle_timeout,
            "BOT and ASSIGNED sessions without a message this long are closed");
  flags.Add("resolved_idle_timeout", &config.sessions.resolved_idle_timeout,
            "RESOLVED sessions are closed this long after resolution");
  flags.Add("sweep_interval", &config.sweep_interval,
            "how often SLA breaches and idle sessions are checked");
  flags.Add("routing_retry_interval", &config.routing_retry_interval,
            "how often calls to routing that failed are retried");
  flags.Add("bot_threads", &config.bot_threads,
            "threads running bot turns (apart from the RPC workers)");
  flags.Add("bot_queue", &config.bot_queue,
            "bot turns that may wait for a bot thread; beyond it a turn escalates "
            "to a human at once");
  flags.Add("closed_cache_size", &config.closed_cache_size,
            "CLOSED sessions kept in memory after a read; others come from the store");
  flags.Add("reader_connections", &config.reader_connections,
            "SQLite connections that serve reads (lists, transcripts, key look-ups)");
  flags.Add("max_queued_writes", &config.max_queued_writes,
            "writes waiting for the group commit beyond which client writes are "
            "refused with RESOURCE_EXHAUSTED and a retry-after");
  flags.Add("stream_backlog", &config.stream_backlog,
            "events a StreamSessionEvents stream may hold unsent before it is ended "
            "with RESOURCE_EXHAUSTED (the client resumes from its last sequence)");
  flags.Add("max_streams_per_user", &config.service.max_streams_per_user,
            "open StreamSessionEvents per customer or agent");
  flags.Add("max_streams_per_staff", &config.service.max_streams_per_staff,
            "open StreamSessionEvents per supervisor or service");
  flags.Add("max_calls_per_user", &config.service.max_calls_per_user,
            "unary calls a customer or agent may have queued or running at once");
  flags.Add("max_calls_per_staff", &config.service.max_calls_per_staff,
            "unary calls a supervisor or service may have queued or running at once");
  flags.Add("reads_per_second", &config.reads_per_second,
            "ListSessions and ListMessages per second per customer or agent");
  flags.Add("reads_burst", &config.reads_burst,
            "ListSessions and ListMessages a customer or agent may make at once");
  flags.Add("staff_reads_per_second", &config.staff_reads_per_second,
            "ListSessions and ListMessages per second per supervisor or service");
  flags.Add("staff_reads_burst", &config.staff_reads_burst,
            "ListSessions and ListMessages a supervisor or service may make at once");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "sessions: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "sessions: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<client::ChannelSecurity> peer_security =
      client::ChannelSecurity::Create(config.peer_tls, "peer_");
  if (!peer_security.ok()) {
    std::fprintf(stderr, "sessions: %s\n",
                 std::string(peer_security.status().message()).c_str());
    return 2;
  }
  if (absl::Status s = ParseCategories(config.business_hours_sla_categories,
                                       &config.sessions.business_hours_sla_categories);
      !s.ok()) {
    std::fprintf(stderr, "sessions: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = ParseSlaByCategory(config.email_sla_by_category,
                                          &config.sessions.email_sla_by_category);
      !s.ok()) {
    std::fprintf(stderr, "sessions: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.bot_threads < 1 || config.bot_queue < 0 || config.closed_cache_size < 0 ||
      config.reader_connections < 1 || config.max_queued_writes < 1 ||
      config.stream_backlog < 1 || config.service.max_streams_per_user < 1 ||
      config.service.max_streams_per_staff < 1 || config.service.max_calls_per_user < 1 ||
      config.service.max_calls_per_staff < 1 || config.reads_per_second < 1 ||
      config.reads_burst < 1 || config.staff_reads_per_second < 1 ||
      config.staff_reads_burst < 1) {
    std::fprintf(stderr,
                 "sessions: --bot_threads, --reader_connections, --max_queued_writes, "
                 "--stream_backlog and the per-caller limits must be at least 1; "
                 "--bot_queue and --closed_cache_size at least 0\n");
    return 2;
  }
  config.sessions.closed_cache_size = static_cast<size_t>(config.closed_cache_size);
  config.service.max_stream_backlog = static_cast<size_t>(config.stream_backlog);
  config.service.reads_per_second = config.reads_per_second;
  config.service.reads_burst = config.reads_burst;
  config.service.staff_reads_per_second = config.staff_reads_per_second;
  config.service.staff_reads_burst = config.staff_reads_burst;
  if (config.sweep_interval <= absl::ZeroDuration() ||
      config.routing_retry_interval <= absl::ZeroDuration() ||
      config.bot_deadline <= absl::ZeroDuration() ||
      config.routing_timeout <= absl::ZeroDuration() ||
      config.sessions.email_sla <= absl::ZeroDuration()) {
    std::fprintf(stderr,
                 "sessions: --sweep_interval, --routing_retry_interval, --bot_deadline, "
                 "--routing_timeout and --email_sla must be above 0\n");
    return 2;
  }

  std::error_code error;
  std::filesystem::create_directories(config.data_dir + "/events", error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys = auth::LoadServiceKeys(
      config.keys, "sessions", config.data_dir, /*signs_service_tokens=*/true);
  if (!keys.ok()) return Fail("keys", keys.status());

  const std::string db_path = config.data_dir + "/sessions.db";
  auto db = OpenSessionsDatabase({db_path});
  if (!db.ok()) return Fail("open_database", db.status());
  auto relay_reader = storage::Database::Open({db_path});
  if (!relay_reader.ok()) return Fail("open_database", relay_reader.status());
  std::vector<std::unique_ptr<storage::Database>> store_readers;
  for (int i = 0; i < config.reader_connections; ++i) {
    auto reader = storage::Database::Open({db_path});
    if (!reader.ok()) return Fail("open_database", reader.status());
    store_readers.push_back(*std::move(reader));
  }
  auto sink = events::OpenEventSink(config.events, "sessions", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter::Options commit_options;
  commit_options.max_queue = config.max_queued_writes;
  storage::GroupCommitter committer(db->get(), commit_options);
  events::Relay relay(std::move(*relay_reader), &committer, sink->get(), *registry, {});
  SqliteSessionStore store(&committer, std::move(store_readers),
                           events::TopicFor(config.events.topic_prefix, "sessions"),
                           [&relay] { relay.Notify(); });
  SessionsMetrics metrics(*registry);

  client::ServiceToken bot_token(keys->signer.get(), "sessions", "bot");
  client::ServiceToken routing_token(keys->signer.get(), "sessions", "routing");
  std::unique_ptr<GrpcBotClient> bot;
  if (!config.bot_address.empty()) {
    bot = std::make_unique<GrpcBotClient>(config.bot_address, *peer_security, &bot_token,
                                          config.bot_deadline);
  }
  std::unique_ptr<GrpcRoutingClient> routing;
  if (!config.routing_address.empty()) {
    routing = std::make_unique<GrpcRoutingClient>(config.routing_address, *peer_security,
                                                  &routing_token, config.routing_timeout);
  }

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  server::BlockingPool bot_pool(config.bot_threads, config.bot_queue);
  Sessions sessions(
      &store, RealClock(), &metrics, keys->verifier.get(), bot.get(), routing.get(),
      [&pool](std::function<void()> task) { pool.Run(std::move(task)); },
      [&bot_pool](std::function<void()> task) { return bot_pool.TryRun(std::move(task)); },
      config.sessions);
  if (absl::Status s = sessions.Load(); !s.ok()) return Fail("load", s);
  pool.Run([&sessions] { sessions.ResumeBotTurns(); });

  SessionsService service(&sessions, keys->verifier.get(), RealClock(), &pool, config.service);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());
  (*server)->OnDrain([&service] { service.EndStreams(); });

  absl::Notification stop;
  std::thread sweeper([&] {
    while (!stop.WaitForNotificationWithTimeout(config.sweep_interval)) {
      if (absl::StatusOr<int> changed = sessions.Sweep(); !changed.ok()) {
        log::Error("sweep_failed", {{"error", changed.status().ToString()}});
      }
    }
  });
  std::thread retrier([&] {
    // At start too: sessions left pending by the previous run.
    do {
      sessions.RetryRouting();
    } while (!stop.WaitForNotificationWithTimeout(config.routing_retry_interval));
  });

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "sessions"}, {"signal", signal}});
  (*server)->Shutdown();
  stop.Notify();
  sweeper.join();
  retrier.join();
  bot_pool.Stop();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "sessions"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::sessions

int main(int argc, char** argv) { return switchboard::sessions::Run(argc, argv); }
