#pragma once

// The production path of one-time codes: delivery requests for the email/SMS
// gateway go through identity's transactional outbox to their own topic
// (switchboard.identity.code-delivery.v1, see code_delivery.proto), never
// into the Event stream.
//
// The code must not rest in the database in plaintext, so the outbox row
// holds the CodeDeliveryRequest sealed with SecretBox (AES-256-GCM, the
// delivery id as associated data); CodeDeliverySink, wrapped around the
// service's event sink, opens it on the way out and hands the plain request
// to the gateway's sink (Kafka).
//
//   OutboxCodeNotifier notifier(&committer, &box, delivery_topic, clock, notify_relay);
//   CodeDeliverySink sink(event_sink, kafka_sink, &box, delivery_topic, clock);
//   Relay relay(reader, &committer, &sink, registry, {});

#include <functional>
#include <string>
#include <vector>

#include "libs/clock/clock.h"
#include "libs/events/outbox.h"
#include "libs/events/sink.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/postgres_pool.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/identity/crypto.h"
#include "services/identity/notifier.h"

namespace switchboard::identity {

// The outbox row type of a sealed delivery request.
inline constexpr char kCodeDeliveryType[] = "identity.code_delivery_request";

// The topic of delivery requests: prefix + "identity.code-delivery.v1".
std::string CodeDeliveryTopic(absl::string_view prefix);

// Queues each request, sealed, in the outbox (one commit of its own;
// Deliver returns once it is durable), keyed by customer id, then runs
// `after_commit` (the relay's Notify). On SQLite the commit goes through
// the service's GroupCommitter; on PostgreSQL through a connection pool,
// under the key's outbox lock like every append there. Thread-safe;
// Deliver blocks, so call it from worker threads.
class OutboxCodeNotifier : public CodeNotifier {
 public:
  // None owned; all must outlive the notifier.
  OutboxCodeNotifier(storage::GroupCommitter* committer, const SecretBox* box,
                     std::string topic, Clock* clock, std::function<void()> after_commit);
  OutboxCodeNotifier(storage::PostgresPool* postgres, const SecretBox* box, std::string topic,
                     Clock* clock, std::function<void()> after_commit);
  absl::Status Deliver(const v1::CodeDeliveryRequest& request) override;

 private:
  // Commits one outbox row.
  using CommitRow = std::function<absl::Status(const events::OutboxRow&)>;
  OutboxCodeNotifier(CommitRow commit_row, const SecretBox* box, std::string topic,
                     Clock* clock, std::function<void()> after_commit);

  const CommitRow commit_row_;
  const SecretBox* const box_;
  const std::string topic_;
  Clock* const clock_;
  const std::function<void()> after_commit_;
};

// Routes the relay's records: those on the delivery topic are opened and
// published through `deliveries` as serialized CodeDeliveryRequest values;
// all others go to `events` unchanged. Requests past their expiry, or that
// no longer open (e.g. the identity key was replaced), are dropped (counted
// and logged without their content) and confirmed, so they never block the
// outbox. A failed record fails every later record with the same key, as
// events::Sink requires. Publish from one thread at a time (the relay's).
class CodeDeliverySink : public events::Sink {
 public:
  // None owned; all must outlive the sink.
  CodeDeliverySink(events::Sink* events, events::Sink* deliveries, const SecretBox* box,
                   std::string delivery_topic, Clock* clock,
                   prometheus::Registry& registry);

  std::vector<absl::Status> Publish(const std::vector<events::OutboxRecord>& records) override;

 private:
  events::Sink* const events_;
  events::Sink* const deliveries_;
  const SecretBox* const box_;
  const std::string delivery_topic_;
  Clock* const clock_;
  // switchboard_identity_code_deliveries_dropped_total{reason}.
  prometheus::Counter* dropped_expired_;
  prometheus::Counter* dropped_unreadable_;
};

}  // namespace switchboard::identity
