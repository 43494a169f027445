#include "services/identity/code_delivery.h"

#include <openssl/crypto.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "libs/events/postgres_outbox.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"

namespace switchboard::identity {

std::string CodeDeliveryTopic(absl::string_view prefix) {
  return absl::StrCat(prefix, "identity.code-delivery.v1");
}

OutboxCodeNotifier::OutboxCodeNotifier(storage::GroupCommitter* committer,
                                       const SecretBox* box, std::string topic,
                                       Clock* clock, std::function<void()> after_commit)
    : OutboxCodeNotifier(
          [committer](const events::OutboxRow& row) {
            return committer->Commit(
                [&](storage::Database& db) { return events::AppendRowToOutbox(db, row); });
          },
          box, std::move(topic), clock, std::move(after_commit)) {}

OutboxCodeNotifier::OutboxCodeNotifier(storage::PostgresPool* postgres, const SecretBox* box,
                                       std::string topic, Clock* clock,
                                       std::function<void()> after_commit)
    : OutboxCodeNotifier(
          [postgres](const events::OutboxRow& row) {
            return postgres->InTransaction([&](storage::PostgresConnection& db) {
              return events::AppendRowToOutbox(db, row);
            });
          },
          box, std::move(topic), clock, std::move(after_commit)) {}

OutboxCodeNotifier::OutboxCodeNotifier(CommitRow commit_row, const SecretBox* box,
                                       std::string topic, Clock* clock,
                                       std::function<void()> after_commit)
    : commit_row_(std::move(commit_row)),
      box_(box),
      topic_(std::move(topic)),
      clock_(clock),
      after_commit_(std::move(after_commit)) {}

absl::Status OutboxCodeNotifier::Deliver(const v1::CodeDeliveryRequest& request) {
  std::string plain = request.SerializeAsString();
  events::OutboxRow row;
  row.topic = topic_;
  row.key = request.customer_id();
  row.event_id = request.delivery_id();
  row.type = kCodeDeliveryType;
  row.value = box_->Seal(plain, request.delivery_id());
  row.created_at_micros = absl::ToUnixMicros(clock_->Now());
  OPENSSL_cleanse(plain.data(), plain.size());
  if (absl::Status s = commit_row_(row); !s.ok()) return s;
  if (after_commit_) after_commit_();
  return absl::OkStatus();
}

CodeDeliverySink::CodeDeliverySink(events::Sink* events, events::Sink* deliveries,
                                   const SecretBox* box, std::string delivery_topic,
                                   Clock* clock, prometheus::Registry& registry)
    : events_(events),
      deliveries_(deliveries),
      box_(box),
      delivery_topic_(std::move(delivery_topic)),
      clock_(clock) {
  auto& dropped = prometheus::BuildCounter()
                      .Name("switchboard_identity_code_deliveries_dropped_total")
                      .Help("Code delivery requests dropped from the outbox instead of "
                            "being published, by reason: expired (the code expired before "
                            "it could be published, e.g. during a Kafka outage) or "
                            "unreadable (the row no longer decrypts, e.g. after a key "
                            "change).")
                      .Register(registry);
  dropped_expired_ = &dropped.Add({{"reason", "expired"}});
  dropped_unreadable_ = &dropped.Add({{"reason", "unreadable"}});
}

std::vector<absl::Status> CodeDeliverySink::Publish(
    const std::vector<events::OutboxRecord>& records) {
  std::vector<absl::Status> statuses(records.size());
  std::vector<events::OutboxRecord> event_batch, delivery_batch;
  std::vector<size_t> event_index, delivery_index;
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < records.size(); ++i) {
    const events::OutboxRecord& record = records[i];
    if (record.topic != delivery_topic_) {
      event_batch.push_back(record);
      event_index.push_back(i);
      continue;
    }
    absl::StatusOr<std::string> plain = box_->Open(record.value, record.event_id);
    v1::CodeDeliveryRequest request;
    if (!plain.ok() || !request.ParseFromString(*plain)) {
      dropped_unreadable_->Increment();
      log::Error("code_delivery_dropped",
                 {{"delivery_id", record.event_id}, {"reason", "unreadable"}});
      continue;
    }
    if (request.has_expires_at() && protoutil::FromTimestamp(request.expires_at()) <= now) {
      dropped_expired_->Increment();
      log::Warning("code_delivery_dropped",
                   {{"delivery_id", record.event_id}, {"reason", "expired"}});
      OPENSSL_cleanse(plain->data(), plain->size());
      continue;
    }
    events::OutboxRecord opened = record;
    opened.value = std::move(*plain);
    delivery_batch.push_back(std::move(opened));
    delivery_index.push_back(i);
  }
  if (!event_batch.empty()) {
    std::vector<absl::Status> out = events_->Publish(event_batch);
    for (size_t j = 0; j < event_index.size(); ++j) {
      statuses[event_index[j]] =
          j < out.size() ? out[j] : absl::InternalError("sink returned too few statuses");
    }
  }
  if (!delivery_batch.empty()) {
    std::vector<absl::Status> out = deliveries_->Publish(delivery_batch);
    for (size_t j = 0; j < delivery_index.size(); ++j) {
      statuses[delivery_index[j]] =
          j < out.size() ? out[j] : absl::InternalError("sink returned too few statuses");
    }
    for (events::OutboxRecord& r : delivery_batch) OPENSSL_cleanse(r.value.data(), r.value.size());
  }
  // Per-key order across the two sinks: nothing after a failure of its key.
  absl::flat_hash_set<std::string> failed_keys;
  for (size_t i = 0; i < records.size(); ++i) {
    if (failed_keys.contains(records[i].key)) {
      if (statuses[i].ok()) {
        statuses[i] = absl::UnavailableError("an earlier record of this key failed");
      }
    } else if (!statuses[i].ok()) {
      failed_keys.insert(records[i].key);
    }
  }
  return statuses;
}

}  // namespace switchboard::identity
