#include "services/routing/sqlite_store.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/events/outbox.h"
#include "libs/storage/time_column.h"

namespace switchboard::routing {
namespace {

using storage::FromMicros;
using storage::ToMicros;

// Agent ids never contain a comma (validation::ValidateId).
std::string JoinIds(const std::vector<std::string>& ids) { return absl::StrJoin(ids, ","); }

std::vector<std::string> SplitIds(const std::string& joined) {
  if (joined.empty()) return {};
  return absl::StrSplit(joined, ',');
}

absl::Status WriteAll(storage::Database& db, const RoutingWrite& write,
                      const std::string& topic) {
  for (const std::string& key : write.deleted_entries) {
    auto del = db.Prepare("DELETE FROM entries WHERE entry_key = ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, key).Run(); !s.ok()) return s;
  }
  for (const EntryRecord& e : write.upserted_entries) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO entries(entry_key, entry, order_key, excluded, "
        "timed_out, offer_id, offered_at_micros, offer_expires_at_micros, "
        "auto_accept, assigned_agent_id, accepted_offer_id, accepted_at_micros, "
        "requeued_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!upsert.ok()) return upsert.status();
    v1::QueueEntry entry = e.entry;
    entry.clear_position();
    absl::Status s = upsert->Bind(1, e.key)
                         .BindBlob(2, entry.SerializeAsString())
                         .Bind(3, e.order)
                         .Bind(4, JoinIds(e.excluded))
                         .Bind(5, JoinIds(e.timed_out))
                         .Bind(6, e.offer_id)
                         .Bind(7, ToMicros(e.offered_at))
                         .Bind(8, ToMicros(e.offer_expires_at))
                         .Bind(9, static_cast<int64_t>(e.auto_accept))
                         .Bind(10, e.assigned_agent_id)
                         .Bind(11, e.accepted_offer_id)
                         .Bind(12, ToMicros(e.accepted_at))
                         .Bind(13, e.requeued_from)
                         .Run();
    if (!s.ok()) return s;
  }
  for (const SettingsRecord& r : write.settings) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO agent_settings(agent_id, settings, updated_at_micros) "
        "VALUES (?, ?, ?)");
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, r.agent_id)
                         .BindBlob(2, r.settings.SerializeAsString())
                         .Bind(3, ToMicros(r.updated_at))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& RoutingMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: queue entries (waiting, offered, assigned) and agents' settings.
      "CREATE TABLE entries("
      "  entry_key TEXT PRIMARY KEY,"  // session:<id> or complaint:<id>
      "  entry BLOB NOT NULL,"         // serialized switchboard.routing.v1.QueueEntry
      "  order_key INTEGER NOT NULL,"
      "  excluded TEXT NOT NULL,"      // comma-separated agent ids
      "  timed_out TEXT NOT NULL,"
      "  offer_id TEXT NOT NULL,"
      "  offered_at_micros INTEGER NOT NULL,"
      "  offer_expires_at_micros INTEGER NOT NULL,"
      "  auto_accept INTEGER NOT NULL,"
      "  assigned_agent_id TEXT NOT NULL,"
      "  accepted_offer_id TEXT NOT NULL,"
      "  accepted_at_micros INTEGER NOT NULL,"
      "  requeued_from TEXT NOT NULL);"
      "CREATE TABLE agent_settings("
      "  agent_id TEXT PRIMARY KEY,"
      "  settings BLOB NOT NULL,"  // serialized switchboard.routing.v1.AgentSettings
      "  updated_at_micros INTEGER NOT NULL);",
      // 2: the event outbox.
      events::kOutboxMigration,
  };
  return *migrations;
}

SqliteRoutingStore::SqliteRoutingStore(storage::GroupCommitter* committer,
                                       std::string topic,
                                       std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)) {}

absl::StatusOr<RoutingStore::Contents> SqliteRoutingStore::Load() {
  Contents contents;
  // Through the committer: its thread owns the connection.
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto entries = db.Prepare(
        "SELECT entry_key, entry, order_key, excluded, timed_out, offer_id, "
        "offered_at_micros, offer_expires_at_micros, auto_accept, "
        "assigned_agent_id, accepted_offer_id, accepted_at_micros, "
        "requeued_from FROM entries");
    if (!entries.ok()) return entries.status();
    while (true) {
      absl::StatusOr<bool> row = entries->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      EntryRecord e;
      e.key = entries->ColumnText(0);
      if (!e.entry.ParseFromString(entries->ColumnBlob(1))) {
        return absl::DataLossError("routing.db: unreadable entry " + e.key);
      }
      e.order = entries->ColumnInt(2);
      e.excluded = SplitIds(entries->ColumnText(3));
      e.timed_out = SplitIds(entries->ColumnText(4));
      e.offer_id = entries->ColumnText(5);
      e.offered_at = FromMicros(entries->ColumnInt(6));
      e.offer_expires_at = FromMicros(entries->ColumnInt(7));
      e.auto_accept = entries->ColumnInt(8) != 0;
      e.assigned_agent_id = entries->ColumnText(9);
      e.accepted_offer_id = entries->ColumnText(10);
      e.accepted_at = FromMicros(entries->ColumnInt(11));
      e.requeued_from = entries->ColumnText(12);
      contents.entries.push_back(std::move(e));
    }
    auto settings = db.Prepare(
        "SELECT agent_id, settings, updated_at_micros FROM agent_settings");
    if (!settings.ok()) return settings.status();
    while (true) {
      absl::StatusOr<bool> row = settings->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      SettingsRecord r;
      r.agent_id = settings->ColumnText(0);
      if (!r.settings.ParseFromString(settings->ColumnBlob(1))) {
        return absl::DataLossError("routing.db: unreadable settings of " + r.agent_id);
      }
      r.updated_at = FromMicros(settings->ColumnInt(2));
      contents.settings.push_back(std::move(r));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return contents;
}

void SqliteRoutingStore::Apply(RoutingWrite write, std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

}  // namespace switchboard::routing
