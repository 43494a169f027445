#include "services/bot/postgres_dialogues.h"

#include "absl/strings/str_cat.h"
#include "libs/events/postgres_outbox.h"
#include "services/bot/dialogue_record.pb.h"

namespace switchboard::bot {
namespace {

using storage::PostgresConnection;
using storage::PostgresParam;
using storage::PostgresRows;

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

store::DialogueRecord ToRecord(const Dialogue& dialogue) {
  store::DialogueRecord record;
  record.set_previous_intent(dialogue.previous_intent);
  record.set_previous_confidence(dialogue.previous_confidence);
  record.set_previous_category(dialogue.previous_category);
  record.set_not_understood_turns(dialogue.not_understood_turns);
  for (const common::v1::CollectedDetail& detail : dialogue.details) {
    *record.add_details() = detail;
  }
  for (const auto& [turn_id, answer] : dialogue.turns) {
    store::DialogueRecord::Turn* turn = record.add_turns();
    turn->set_turn_id(turn_id);
    *turn->mutable_answer() = answer;
  }
  return record;
}

Dialogue FromRecord(store::DialogueRecord record) {
  Dialogue dialogue;
  dialogue.previous_intent = std::move(*record.mutable_previous_intent());
  dialogue.previous_confidence = record.previous_confidence();
  dialogue.previous_category = record.previous_category();
  dialogue.not_understood_turns = record.not_understood_turns();
  for (common::v1::CollectedDetail& detail : *record.mutable_details()) {
    dialogue.details.push_back(std::move(detail));
  }
  for (store::DialogueRecord::Turn& turn : *record.mutable_turns()) {
    dialogue.turns.emplace_back(std::move(*turn.mutable_turn_id()),
                                std::move(*turn.mutable_answer()));
  }
  return dialogue;
}

}  // namespace

PostgresDialogueStore::PostgresDialogueStore(std::string uri, absl::Duration idle_expiry,
                                             std::string topic,
                                             std::function<void()> after_commit)
    : idle_expiry_(idle_expiry),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)),
      pool_(std::move(uri)) {}

absl::Status PostgresDialogueStore::WithRecord(const std::string& session_id, absl::Time now,
                                               absl::FunctionRef<void(Dialogue&, bool)> fn,
                                               const events::v1::Event* record) {
  bool appended = false;
  absl::Status status = pool_.InTransaction([&](PostgresConnection& db) -> absl::Status {
    appended = false;
    // Creates the row or locks the existing one (the no-op update), and
    // returns it either way; a new row has no last use yet.
    absl::StatusOr<PostgresRows> rows = db.Query(
        "INSERT INTO dialogues(session_id, context, last_used_micros) VALUES ($1, ''::bytea, NULL) "
        "ON CONFLICT (session_id) DO UPDATE SET session_id = excluded.session_id "
        "RETURNING context, last_used_micros",
        {session_id});
    if (!rows.ok()) return rows.status();
    const bool used = !rows->IsNull(0, 1);
    const bool existed = used && now - absl::FromUnixMicros(rows->Int(0, 1)) < idle_expiry_;
    Dialogue dialogue;
    if (existed) {
      store::DialogueRecord record;
      if (!record.ParseFromString(rows->Bytes(0, 0))) {
        return absl::DataLossError(
            absl::StrCat("the dialogue context of session ", session_id, " does not parse"));
      }
      dialogue = FromRecord(std::move(record));
    }
    dialogue.last_seen = now;
    fn(dialogue, existed);
    if (absl::Status written = db.Query(
            "UPDATE dialogues SET context = $2, last_used_micros = $3 WHERE session_id = $1",
            {session_id, PostgresParam::Bytes(ToRecord(dialogue).SerializeAsString()),
             Micros(now)})
            .status();
        !written.ok()) {
      return written;
    }
    if (record == nullptr || record->payload_case() == events::v1::Event::PAYLOAD_NOT_SET) {
      return absl::OkStatus();
    }
    appended = true;
    return events::AppendToOutbox(db, topic_, *record);
  });
  if (status.ok() && appended && after_commit_) after_commit_();
  return status;
}

absl::StatusOr<bool> PostgresDialogueStore::Erase(const std::string& session_id,
                                                  absl::Time now) {
  bool live = false;
  absl::Status status = pool_.Run([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> rows =
        db.Query("DELETE FROM dialogues WHERE session_id = $1 RETURNING last_used_micros",
                 {session_id});
    if (!rows.ok()) return rows.status();
    live = !rows->empty() && !rows->IsNull(0, 0) &&
           now - absl::FromUnixMicros(rows->Int(0, 0)) < idle_expiry_;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return live;
}

absl::StatusOr<int> PostgresDialogueStore::ExpireIdle(absl::Time now) {
  int expired = 0;
  absl::Status status = pool_.Run([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> deleted =
        db.Query("DELETE FROM dialogues WHERE last_used_micros <= $1",
                 {Micros(now - idle_expiry_)});
    if (!deleted.ok()) return deleted.status();
    expired = static_cast<int>(deleted->changed());
    absl::StatusOr<PostgresRows> count = db.Query("SELECT count(*) FROM dialogues", {});
    if (!count.ok()) return count.status();
    held_.store(static_cast<int>(count->Int(0, 0)));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return expired;
}

}  // namespace switchboard::bot
