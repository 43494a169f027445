#include "services/identity/server_config.h"

#include "absl/strings/str_cat.h"
#include "libs/auth/key_file.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "libs/log/log.h"
#include "services/identity/code_delivery.h"
#include "services/identity/notifier.h"

namespace switchboard::identity {

void AddServerFlags(config::FlagSet& flags, ServerConfig* config) {
  IdentityOptions& o = config->identity;
  flags.Add("verification_signing_key", &config->verification_signing_key,
            "identity's private key (PEM, P-256) for verification tokens; its public key "
            "must be in --verification_keys. Default KEYS_DIR/verification.pem");
  flags.Add("identity_key_file", &config->identity_key_file,
            "identity's own key (hex, 32+ bytes): keys the hashes of one-time codes and "
            "encrypts TOTP secrets; default DATA_DIR/identity.key, created if missing. "
            "Losing it voids every enrolled authenticator");
  flags.Add("code_delivery", &config->code_delivery,
            "where one-time codes go: development_file (plain text in --code_outbox_file, "
            "for local runs only) or kafka (sealed in the outbox, then published to "
            "--code_delivery_topic for the email/SMS gateway)");
  flags.Add("code_outbox_file", &config->code_outbox_file,
            "DEVELOPMENT ONLY: where --code_delivery=development_file writes codes in plain "
            "text; default DATA_DIR/DEVELOPMENT-ONLY-code-outbox.jsonl");
  flags.Add("code_delivery_brokers", &config->code_delivery_brokers,
            "Kafka bootstrap servers of the code delivery topic (--code_delivery=kafka)");
  flags.Add("code_delivery_kafka_settings", &config->code_delivery_kafka_settings,
            "more librdkafka settings for code delivery, key=value,key=value (security, "
            "SASL, TLS)");
  flags.Add("code_delivery_topic", &config->code_delivery_topic,
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
  flags.Add("client_address_header", &config->service.client_address_header,
            "request header naming the client's address, set by a trusted proxy (e.g. "
            "x-forwarded-for); empty: the connection's peer address");
  flags.Add("token_ttl", &o.token_ttl, "lifetime of verification tokens (at most 1h)");
  flags.Add("max_calls_per_customer", &o.max_calls_per_customer,
            "calls of one customer in progress at once (they run one at a time); more get "
            "RESOURCE_EXHAUSTED");
  flags.Add("sweep_interval", &config->sweep_interval,
            "how often finished challenges and enrollments are deleted, and account changes "
            "whose cool-down ended are applied");
  flags.Add("account_change_cooldown", &o.account_change_cooldown,
            "how long a supervisor's change of a customer's contact or authenticator waits "
            "for the customer (who is notified and may confirm or cancel it) before it "
            "applies");
}

absl::Status CheckServerConfig(const ServerConfig& config) {
  const IdentityOptions& o = config.identity;
  if (o.code_ttl <= absl::ZeroDuration() || o.code_ttl > kMaxCodeTtl ||
      o.token_ttl <= absl::ZeroDuration() || o.token_ttl > kMaxTokenTtl ||
      o.max_attempts < 1 || o.max_starts_per_hour < 1 || o.lockout_failures < 1 ||
      o.source_lockout_failures < 1 || o.max_lockout < o.lockout ||
      o.lockout_reset <= absl::ZeroDuration() ||
      o.account_change_cooldown < absl::ZeroDuration() ||
      o.max_calls_per_customer < 1 ||
      o.resend_interval < absl::ZeroDuration() || o.failure_window <= absl::ZeroDuration() ||
      o.lockout <= absl::ZeroDuration() || config.sweep_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--code_ttl must be in (0, 10m], --token_ttl in (0, 1h], counts at least 1, "
        "durations positive, and --max_lockout at least --lockout");
  }
  if (config.code_delivery != "development_file" && config.code_delivery != "kafka") {
    return absl::InvalidArgumentError("--code_delivery must be development_file or kafka");
  }
  if (config.code_delivery == "kafka" && config.code_delivery_brokers.empty()) {
    return absl::InvalidArgumentError("--code_delivery=kafka needs --code_delivery_brokers");
  }
  return absl::OkStatus();
}

void SetDefaultPaths(ServerConfig& config, const std::string& data_dir,
                     const std::string& keys_dir, const std::string& topic_prefix) {
  config.default_identity_key = config.identity_key_file.empty();
  if (config.default_identity_key) config.identity_key_file = data_dir + "/identity.key";
  if (config.code_delivery_topic.empty()) {
    config.code_delivery_topic = CodeDeliveryTopic(topic_prefix);
  }
  if (config.code_outbox_file.empty()) {
    config.code_outbox_file = data_dir + "/" + DevelopmentCodeOutbox::kFileName;
  }
  if (config.verification_signing_key.empty()) {
    config.verification_signing_key =
        absl::StrCat(keys_dir, "/", auth::kVerificationKeyFile);
  }
}

absl::StatusOr<IdentityKeys> LoadIdentityKeys(const ServerConfig& config,
                                              const auth::TokenVerifier& verifier,
                                              std::string* failed_step) {
  *failed_step = "verification_signing_key";
  absl::StatusOr<auth::SigningKey> signing_key =
      auth::ReadSigningKeyFile(config.verification_signing_key);
  if (!signing_key.ok()) return signing_key.status();
  IdentityKeys keys;
  keys.verification_signer = std::make_unique<auth::TokenSigner>(
      *std::move(signing_key), std::string(auth::kVerificationIssuer));
  if (absl::Status s = auth::CheckVerificationSigner(*keys.verification_signer, verifier,
                                                     config.identity.token_ttl);
      !s.ok()) {
    return s;
  }
  *failed_step = "identity_key";
  absl::StatusOr<std::string> key =
      auth::LoadOrCreateKey(config.identity_key_file, config.default_identity_key);
  if (!key.ok()) return key.status();
  keys.hasher = std::make_unique<CodeHasher>(DeriveKey(*key, "switchboard identity code hash v1"));
  keys.box = std::make_unique<SecretBox>(DeriveKey(*key, "switchboard identity totp secret v1"));
  keys.delivery_box =
      std::make_unique<SecretBox>(DeriveKey(*key, "switchboard identity code delivery v1"));
  failed_step->clear();
  return keys;
}

absl::StatusOr<std::unique_ptr<CodeNotifier>> OpenCodeNotifier(
    const ServerConfig& config, storage::GroupCommitter* committer,
    storage::PostgresPool* postgres, const SecretBox* delivery_box,
    std::function<void()> after_commit) {
  if (config.code_delivery == "kafka") {
    if (postgres != nullptr) {
      return std::make_unique<OutboxCodeNotifier>(postgres, delivery_box,
                                                  config.code_delivery_topic, RealClock(),
                                                  std::move(after_commit));
    }
    return std::make_unique<OutboxCodeNotifier>(committer, delivery_box,
                                                config.code_delivery_topic, RealClock(),
                                                std::move(after_commit));
  }
  absl::StatusOr<std::unique_ptr<DevelopmentCodeOutbox>> file =
      DevelopmentCodeOutbox::Open(config.code_outbox_file);
  if (!file.ok()) return file.status();
  log::Warning("development_code_outbox",
               {{"path", config.code_outbox_file},
                {"note", "one-time codes are written there in plain text: development only; "
                         "use --code_delivery=kafka in production"}});
  return std::unique_ptr<CodeNotifier>(*std::move(file));
}

}  // namespace switchboard::identity
