#pragma once

// Where the Relay (relay.h) publishes outbox rows: Kafka in production, a
// JSON-lines file (json_lines_sink.h) by default and in local runs, a fake
// in tests.
//
// Threading: the Relay calls Publish from its one thread only, so an
// implementation needs no locking of its own for Publish.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace switchboard::events {

// One outbox row, as the Relay hands it to a Sink.
struct OutboxRecord {
  // The outbox row's id; records come in increasing id order.
  int64_t outbox_id = 0;
  // The topic, e.g. "switchboard.presence.v1".
  std::string topic;
  // The record key: the event's entity_id (one entity's events stay
  // ordered).
  std::string key;
  // The event's id and type, for headers and logs.
  std::string event_id;
  std::string type;
  // The serialized switchboard.events.v1.Event.
  std::string value;
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Publishes `records` (in outbox order) and returns one status per record,
  // in the same order, once each is confirmed durable (OK: the Relay then
  // deletes its row) or failed (the row stays and is retried later, with
  // the records after it). Contract: never confirm a record after failing an
  // earlier record with the same key in the same call, so that per-key order
  // holds on retry. A Kafka implementation produces all records
  // (idempotent producer, acks=all), flushes, and reads the delivery
  // reports; a failed report fails that record and every later record with
  // the same key. Blocking; called from the relay thread only; should bound
  // its own time (e.g. a delivery timeout) so that Relay::Stop can finish.
  virtual std::vector<absl::Status> Publish(
      const std::vector<OutboxRecord>& records) = 0;
};

}  // namespace switchboard::events
