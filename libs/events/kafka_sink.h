#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/events/sink.h"

namespace RdKafka {
class Producer;
}

namespace switchboard::events {

// Publishes outbox records to Kafka with librdkafka's idempotent producer
// (enable.idempotence=true, hence acks=all and ordered, de-duplicated
// retries per partition). Each record goes to its topic with the entity id as
// key (one entity's events stay in one partition, in order), the serialized
// Event as value, and headers event_id, event_type, schema
// ("switchboard.events.v1.Event") and producer.
//
// Publish produces every record, then serves delivery reports until each
// record is acknowledged by the in-sync replicas or failed (bounded by
// `delivery_timeout`). A failed record fails every later record of the same
// key in the call, as Sink requires. After a fatal producer error (possible
// with idempotence), or a call in which records timed out, the producer is
// rebuilt before the next call: librdkafka 2.0's idempotent producer can stay
// stuck after in-flight records time out across a broker restart, and a new
// producer (a new producer id) only risks duplicates, which carry their
// event ids.
//
// Crash tests: the libs/fault point "relay.after_produce" is reached in each
// Publish after every record was produced and before any delivery report.
//
// Threading: Publish from one thread at a time (the relay's).
class KafkaSink : public Sink {
 public:
  struct Options {
    // bootstrap.servers, e.g. "127.0.0.1:9092,127.0.0.1:9094". Required.
    std::string brokers;
    // client.id, shown in broker logs and quotas.
    std::string client_id = "switchboard";
    // Further librdkafka settings passed through as they are: security
    // (security.protocol, sasl.mechanisms, sasl.username, sasl.password,
    // ssl.ca.location, ...), compression, batching. Settings that would break
    // idempotent delivery are refused (see Create).
    std::map<std::string, std::string> settings;
    // How long a record may take to be acknowledged before it fails
    // (delivery.timeout.ms); the relay then retries it later.
    absl::Duration delivery_timeout = absl::Seconds(30);
  };

  // Errors: InvalidArgument for no brokers, a setting librdkafka rejects
  // (named, its value never echoed: it may be a password), or one that
  // breaks idempotence (enable.idempotence=false, acks other than all/-1,
  // max.in.flight.requests.per.connection above 5).
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const Options& options);

  ~KafkaSink() override;

  std::vector<absl::Status> Publish(const std::vector<OutboxRecord>& records) override;

 private:
  class DeliveryReports;
  KafkaSink(Options options, std::unique_ptr<DeliveryReports> reports,
            std::unique_ptr<RdKafka::Producer> producer);
  absl::Status RebuildIfNeeded();

  const Options options_;
  std::unique_ptr<DeliveryReports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  bool rebuild_ = false;
};

// Parses "key=value,key=value" (as given on a command line) into settings.
// InvalidArgument naming the malformed entry.
absl::StatusOr<std::map<std::string, std::string>> ParseKafkaSettings(
    absl::string_view text);

}  // namespace switchboard::events
