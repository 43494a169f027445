// The identity server: its parts; libs/host opens, serves and stops.
#include "libs/events/kafka_sink.h"
#include "libs/host/host.h"
#include "libs/log/log.h"
#include "libs/storage/postgres_pool.h"
#include "services/identity/code_delivery.h"
#include "services/identity/identity.h"
#include "services/identity/identity_service.h"
#include "services/identity/server_config.h"
#include "services/identity/open_store.h"

namespace switchboard::identity {
namespace {

int Run(int argc, char** argv) {
  host::Host host({"identity", v1::IdentityService::service_full_name(), 7105, 9105,
                   "folder of identity.db, the events file, identity.key, the development "
                   "keys and the development code outbox"});
  ServerConfig config;
  AddServerFlags(host.flags(), &config);
  if (auto exit = host.ParseFlags(argc, argv, [&] { return CheckServerConfig(config); })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  SetDefaultPaths(config, host.data_dir(), auth::KeysDir(host.key_options(), host.data_dir()),
                  host.event_options().topic_prefix);
  std::string step;
  absl::StatusOr<IdentityKeys> loaded = LoadIdentityKeys(config, *host.keys().verifier, &step);
  if (!loaded.ok()) return host.Fail(step, loaded.status());
  IdentityKeys& keys = host.Make<IdentityKeys>(*std::move(loaded));

  // With Kafka delivery, the relay routes the sealed delivery requests to
  // the gateway's topic and everything else to the event sink.
  host::StoreOptions store_options;
  if (config.code_delivery == "kafka") {
    auto settings = events::ParseKafkaSettings(config.code_delivery_kafka_settings);
    if (!settings.ok()) return host.Fail("code_delivery_kafka_settings", settings.status());
    auto kafka = events::KafkaSink::Create(
        {config.code_delivery_brokers, "switchboard-identity-code-delivery", *settings});
    if (!kafka.ok()) return host.Fail("code_delivery_kafka", kafka.status());
    events::Sink* deliveries =
        host.Make<std::unique_ptr<events::KafkaSink>>(*std::move(kafka)).get();
    store_options.relay_sink = [&](events::Sink* sink) -> absl::StatusOr<events::Sink*> {
      return &host.Make<CodeDeliverySink>(sink, deliveries, keys.delivery_box.get(),
                                          config.code_delivery_topic, RealClock(), host.registry());
    };
  }
  IdentityStore* store = nullptr;
  if (auto exit = OpenIdentityStore(host, std::move(store_options), &store)) return *exit;
  // Sealed codes go to the outbox of the store's database.
  auto notifier =
      host.on_postgres()
          ? OpenCodeNotifier(config, nullptr, &host.Make<storage::PostgresPool>(host.database_uri()),
                             keys.delivery_box.get(), host.relay_notifier())
          : OpenCodeNotifier(config, &host.committer(), nullptr, keys.delivery_box.get(),
                             host.relay_notifier());
  if (!notifier.ok()) return host.Fail("code_outbox_file", notifier.status());
  CodeNotifier& codes = *host.Make<std::unique_ptr<CodeNotifier>>(*std::move(notifier));
  auto& metrics = host.Make<IdentityMetrics>(host.registry());
  auto& identity = host.Make<Identity>(store, RealClock(), &metrics, keys.hasher.get(),
                                       keys.box.get(), keys.verification_signer.get(),
                                       &codes, config.identity);
  auto& service = host.Make<IdentityService>(&identity, host.keys().verifier.get(), RealClock(),
                                             &host.pool(), config.service);
  host.Every(config.sweep_interval, [&identity] {
    if (absl::StatusOr<int> swept = identity.Sweep(); !swept.ok()) {
      log::Error("sweep_failed", {{"error", swept.status().ToString()}});
    }
    if (absl::StatusOr<int> applied = identity.ApplyDueChanges(); !applied.ok()) {
      log::Error("account_changes_failed", {{"error", applied.status().ToString()}});
    }
  });
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::identity

int main(int argc, char** argv) { return switchboard::identity::Run(argc, argv); }
