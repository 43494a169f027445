#include "libs/events/event_sink.h"

#include <filesystem>

#include "libs/events/json_lines_sink.h"
#include "libs/events/kafka_sink.h"
#include "libs/log/log.h"

namespace switchboard::events {

void AddEventSinkFlags(config::FlagSet& flags, EventSinkOptions* options) {
  flags.Add("kafka_brokers", &options->kafka_brokers,
            "Kafka bootstrap servers; empty writes events as JSON lines instead");
  flags.Add("kafka_client_id", &options->kafka_client_id,
            "Kafka client.id; default the service's name");
  flags.Add("kafka_settings", &options->kafka_settings,
            "more librdkafka settings, key=value,key=value (security, SASL, TLS)");
  flags.Add("kafka_delivery_timeout", &options->kafka_delivery_timeout,
            "time Kafka has to acknowledge an event before the relay retries it");
  flags.Add("events_file", &options->events_file,
            "JSON-lines event file when Kafka is off; default DATA_DIR/events/SERVICE.jsonl");
  flags.Add("topic_prefix", &options->topic_prefix, "prefix of event topic names");
}

absl::StatusOr<std::unique_ptr<Sink>> OpenEventSink(const EventSinkOptions& options,
                                                    const std::string& service,
                                                    const std::string& data_dir) {
  if (!options.kafka_brokers.empty()) {
    absl::StatusOr<std::map<std::string, std::string>> settings =
        ParseKafkaSettings(options.kafka_settings);
    if (!settings.ok()) return settings.status();
    KafkaSink::Options kafka;
    kafka.brokers = options.kafka_brokers;
    kafka.client_id = options.kafka_client_id.empty() ? service : options.kafka_client_id;
    kafka.settings = std::move(*settings);
    kafka.delivery_timeout = options.kafka_delivery_timeout;
    absl::StatusOr<std::unique_ptr<KafkaSink>> sink = KafkaSink::Create(kafka);
    if (!sink.ok()) return sink.status();
    return std::unique_ptr<Sink>(std::move(*sink));
  }
  std::string path = options.events_file;
  if (path.empty()) {
    std::error_code error;
    std::filesystem::create_directories(data_dir + "/events", error);
    path = data_dir + "/events/" + service + ".jsonl";
  }
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink = JsonLinesSink::Open(path);
  if (!sink.ok()) return sink.status();
  log::Info("event_sink_json_lines", {{"service", service}, {"path", path}});
  return std::unique_ptr<Sink>(std::move(*sink));
}

}  // namespace switchboard::events
