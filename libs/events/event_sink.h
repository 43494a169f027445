#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"
#include "libs/events/sink.h"

namespace switchboard::events {

// Where a service's events go, as configured by flags: Kafka when brokers
// are given, else the embedded default, a JSON-lines file in the data folder.
struct EventSinkOptions {
  // bootstrap.servers; empty selects the JSON-lines file.
  std::string kafka_brokers;
  // client.id; empty means the service's name.
  std::string kafka_client_id;
  // More librdkafka settings, "key=value,key=value" (security.protocol,
  // sasl.mechanisms, sasl.username, sasl.password, ssl.ca.location, ...).
  std::string kafka_settings;
  // How long Kafka may take to acknowledge an event before the relay retries.
  absl::Duration kafka_delivery_timeout = absl::Seconds(30);
  // The JSON-lines file; empty means DATA_DIR/events/SERVICE.jsonl.
  std::string events_file;
  // Topic names are PREFIX + service + ".v1".
  std::string topic_prefix = "switchboard.";
};

// Registers --kafka_brokers, --kafka_client_id, --kafka_settings,
// --kafka_delivery_timeout, --events_file and --topic_prefix.
void AddEventSinkFlags(config::FlagSet& flags, EventSinkOptions* options);

// Opens the configured sink for `service` ("presence"). Errors name the
// setting at fault (never a secret's value).
absl::StatusOr<std::unique_ptr<Sink>> OpenEventSink(const EventSinkOptions& options,
                                                    const std::string& service,
                                                    const std::string& data_dir);

}  // namespace switchboard::events
