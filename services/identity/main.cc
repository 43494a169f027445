// The identity server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/auth/key_file.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/service_keys.h"
#include "libs/auth/verification_token.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/event_sink.h"
#include "libs/events/kafka_sink.h"
#include "libs/events/relay.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/identity/code_delivery.h"
#include "services/identity/crypto.h"
#include "services/identity/identity.h"
#include "services/identity/identity_service.h"
#include "services/identity/notifier.h"
#include "services/identity/sqlite_store.h"

namespace switchboard::identity {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  auth::KeyOptions keys;
  std::string verification_signing_key;
  std::string identity_key_file;
  events::EventSinkOptions events;
  std::string code_delivery = "development_file";
  std::string code_outbox_file;
  std::string code_delivery_brokers;
  std::string code_delivery_kafka_settings;
  std::string code_delivery_topic;
  IdentityOptions identity;
  IdentityService::Options service;
  absl::Duration sweep_interval = absl::Minutes(1);
  absl::Duration relay_flush_deadline = absl::Seconds(5);
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed", {{"service", "identity"},
                                {"step", what},
                                {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "identity";
  config.server.port = 7105;
  config.server.metrics_port = 9105;
  config.server.grpc_service_names = {v1::IdentityService::service_full_name()};
  config::FlagSet flags("identity");
  server::AddServerFlags(flags, &config.server);
  IdentityOptions& o = config.identity;
  flags.Add("data_dir", &config.data_dir,
            "folder of identity.db, the events file, identity.key, the development keys and "
            "the development code outbox");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/false);
  flags.Add("verification_signing_key", &config.verification_signing_key,
            "identity's private key (PEM, P-256) for verification tokens; its public key "
            "must be in --verification_keys. Default KEYS_DIR/verification.pem");
  flags.Add("identity_key_file", &config.identity_key_file,
            "identity's own key (hex, 32+ bytes): keys the hashes of one-time codes and "
            "encrypts TOTP secrets; default DATA_DIR/identity.key, created if missing. "
            "Losing it voids every enrolled authenticator");
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("code_delivery", &config.code_delivery,
            "where one-time codes go: development_file (plain text in --code_outbox_file, "
            "for local runs only) or kafka (sealed in the outbox, then published to "
            "--code_delivery_topic for the email/SMS gateway)");
  flags.Add("code_outbox_file", &config.code_outbox_file,
            "DEVELOPMENT ONLY: where --code_delivery=development_file writes codes in plain "
            "text; default DATA_DIR/DEVELOPMENT-ONLY-code-outbox.jsonl");
  flags.Add("code_delivery_brokers", &config.code_delivery_brokers,
            "Kafka bootstrap servers of the code delivery topic (--code_delivery=kafka)");
  flags.Add("code_delivery_kafka_settings", &config.code_delivery_kafka_settings,
            "more librdkafka settings for code delivery, key=value,key=value (security, "
            "SASL, TLS)");
  flags.Add("code_delivery_topic", &config.code_delivery_topic,
            "topic of code delivery requests; default TOPIC_PREFIX"
            "identity.code-delivery.v1");
  flags.Add("code_ttl", &o.code_ttl, "how long a one-time code is accepted (at most 10m)");
  flags.Add("max_attempts", &o.max_attempts, "attempts per challenge");
  flags.Add("resend_interval", &o.resend_interval,
            "least time between two StartVerification calls of a customer");
  flags.Add("max_starts_per_hour", &o.max_starts_per_hour,
            "StartVerification calls per customer per rolling hour");
  flags.Add("lockout_failures", &o.lockout_failures,
            "failed attempts within --failure_window that lock a customer out");
  flags.Add("failure_window", &o.failure_window, "window in which failures are counted");
  flags.Add("lockout", &o.lockout,
            "how long a first lockout lasts; each next one lasts twice the one before");
  flags.Add("max_lockout", &o.max_lockout, "the longest a lockout lasts");
  flags.Add("lockout_reset", &o.lockout_reset,
            "after this long without a lockout, the next one is a first one again");
  flags.Add("source_lockout_failures", &o.source_lockout_failures,
            "failed attempts from one client address (across customers) within "
            "--failure_window that lock that address out");
  flags.Add("client_address_header", &config.service.client_address_header,
            "request header naming the client's address, set by a trusted proxy (e.g. "
            "x-forwarded-for); empty: the connection's peer address");
  flags.Add("token_ttl", &o.token_ttl, "lifetime of verification tokens (at most 1h)");
  flags.Add("max_calls_per_customer", &o.max_calls_per_customer,
            "calls of one customer in progress at once (they run one at a time); more get "
            "RESOURCE_EXHAUSTED");
  flags.Add("sweep_interval", &config.sweep_interval,
            "how often finished challenges and enrollments are deleted, and account changes "
            "whose cool-down ended are applied");
  flags.Add("account_change_cooldown", &o.account_change_cooldown,
            "how long a supervisor's change of a customer's contact or authenticator waits "
            "for the customer (who is notified and may confirm or cancel it) before it "
            "applies");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "identity: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "identity: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (o.code_ttl <= absl::ZeroDuration() || o.code_ttl > kMaxCodeTtl ||
      o.token_ttl <= absl::ZeroDuration() || o.token_ttl > kMaxTokenTtl ||
      o.max_attempts < 1 || o.max_starts_per_hour < 1 || o.lockout_failures < 1 ||
      o.source_lockout_failures < 1 || o.max_lockout < o.lockout ||
      o.lockout_reset <= absl::ZeroDuration() ||
      o.account_change_cooldown < absl::ZeroDuration() ||
      o.max_calls_per_customer < 1 ||
      o.resend_interval < absl::ZeroDuration() || o.failure_window <= absl::ZeroDuration() ||
      o.lockout <= absl::ZeroDuration() || config.sweep_interval <= absl::ZeroDuration()) {
    std::fprintf(stderr,
                 "identity: --code_ttl must be in (0, 10m], --token_ttl in (0, 1h], counts "
                 "at least 1, durations positive, and --max_lockout at least --lockout\n");
    return 2;
  }
  if (config.code_delivery != "development_file" && config.code_delivery != "kafka") {
    std::fprintf(stderr, "identity: --code_delivery must be development_file or kafka\n");
    return 2;
  }
  if (config.code_delivery == "kafka" && config.code_delivery_brokers.empty()) {
    std::fprintf(stderr, "identity: --code_delivery=kafka needs --code_delivery_brokers\n");
    return 2;
  }

  std::error_code error;
  std::filesystem::create_directories(config.data_dir + "/events", error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  const bool default_identity_key = config.identity_key_file.empty();
  if (default_identity_key) config.identity_key_file = config.data_dir + "/identity.key";
  if (config.code_delivery_topic.empty()) {
    config.code_delivery_topic = CodeDeliveryTopic(config.events.topic_prefix);
  }
  if (config.code_outbox_file.empty()) {
    config.code_outbox_file =
        config.data_dir + "/" + DevelopmentCodeOutbox::kFileName;
  }

  absl::StatusOr<auth::ServiceKeys> keys = auth::LoadServiceKeys(
      config.keys, "identity", config.data_dir, /*signs_service_tokens=*/false);
  if (!keys.ok()) return Fail("keys", keys.status());
  if (config.verification_signing_key.empty()) {
    config.verification_signing_key = absl::StrCat(auth::KeysDir(config.keys, config.data_dir),
                                                   "/", auth::kVerificationKeyFile);
  }
  absl::StatusOr<auth::SigningKey> verification_key =
      auth::ReadSigningKeyFile(config.verification_signing_key);
  if (!verification_key.ok()) return Fail("verification_signing_key", verification_key.status());
  const auth::TokenSigner verification_signer(*std::move(verification_key),
                                              std::string(auth::kVerificationIssuer));
  if (absl::Status s = auth::CheckVerificationSigner(verification_signer, *keys->verifier,
                                                     config.identity.token_ttl);
      !s.ok()) {
    return Fail("verification_signing_key", s);
  }
  absl::StatusOr<std::string> identity_key =
      auth::LoadOrCreateKey(config.identity_key_file, default_identity_key);
  if (!identity_key.ok()) return Fail("identity_key", identity_key.status());
  const CodeHasher hasher(DeriveKey(*identity_key, "switchboard identity code hash v1"));
  const SecretBox box(DeriveKey(*identity_key, "switchboard identity totp secret v1"));
  const SecretBox delivery_box(
      DeriveKey(*identity_key, "switchboard identity code delivery v1"));

  const std::string db_path = config.data_dir + "/identity.db";
  auto db = storage::Database::OpenMigrated({db_path}, IdentityMigrations());
  if (!db.ok()) return Fail("open_database", db.status());
  auto reader = storage::Database::Open({db_path});
  if (!reader.ok()) return Fail("open_database", reader.status());
  auto sink = events::OpenEventSink(config.events, "identity", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter committer(db->get());
  // With Kafka delivery, the relay's sink routes the sealed delivery requests
  // to the gateway's topic and everything else to the event sink.
  std::unique_ptr<events::KafkaSink> delivery_sink;
  std::unique_ptr<CodeDeliverySink> routing_sink;
  events::Sink* relay_sink = sink->get();
  if (config.code_delivery == "kafka") {
    events::KafkaSink::Options kafka;
    kafka.brokers = config.code_delivery_brokers;
    kafka.client_id = "switchboard-identity-code-delivery";
    auto settings = events::ParseKafkaSettings(config.code_delivery_kafka_settings);
    if (!settings.ok()) return Fail("code_delivery_kafka_settings", settings.status());
    kafka.settings = std::move(*settings);
    auto created = events::KafkaSink::Create(kafka);
    if (!created.ok()) return Fail("code_delivery_kafka", created.status());
    delivery_sink = std::move(*created);
    routing_sink = std::make_unique<CodeDeliverySink>(
        sink->get(), delivery_sink.get(), &delivery_box, config.code_delivery_topic, RealClock(),
        *registry);
    relay_sink = routing_sink.get();
  }
  events::Relay relay(std::move(*reader), &committer, relay_sink, *registry, {});

  std::unique_ptr<CodeNotifier> notifier;
  if (config.code_delivery == "kafka") {
    notifier = std::make_unique<OutboxCodeNotifier>(&committer, &delivery_box,
                                                    config.code_delivery_topic,
                                                    RealClock(), [&relay] { relay.Notify(); });
  } else {
    auto file = DevelopmentCodeOutbox::Open(config.code_outbox_file);
    if (!file.ok()) return Fail("code_outbox_file", file.status());
    notifier = std::move(*file);
    log::Warning("development_code_outbox",
                 {{"path", config.code_outbox_file},
                  {"note", "one-time codes are written there in plain text: development "
                           "only; use --code_delivery=kafka in production"}});
  }

  SqliteIdentityStore store(&committer, db_path,
                            events::TopicFor(config.events.topic_prefix, "identity"),
                            [&relay] { relay.Notify(); });
  IdentityMetrics metrics(*registry);
  Identity identity(&store, RealClock(), &metrics, &hasher, &box, &verification_signer,
                    notifier.get(), config.identity);

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  IdentityService service(&identity, keys->verifier.get(), RealClock(), &pool, config.service);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());

  absl::Notification stop_sweeping;
  std::thread sweeper([&] {
    while (!stop_sweeping.WaitForNotificationWithTimeout(config.sweep_interval)) {
      if (absl::StatusOr<int> swept = identity.Sweep(); !swept.ok()) {
        log::Error("sweep_failed", {{"error", swept.status().ToString()}});
      }
      if (absl::StatusOr<int> applied = identity.ApplyDueChanges(); !applied.ok()) {
        log::Error("account_changes_failed", {{"error", applied.status().ToString()}});
      }
    }
  });

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "identity"}, {"signal", signal}});
  (*server)->Shutdown();
  stop_sweeping.Notify();
  sweeper.join();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "identity"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::identity

int main(int argc, char** argv) { return switchboard::identity::Run(argc, argv); }
