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
        "requeued_from, holder_id, accepting) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
                         .Bind(14, e.holder_id)
                         .Bind(15, static_cast<int64_t>(e.accepting))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const OwedRelease& r : write.owed_releases) {
    auto upsert = db.Prepare(
        "INSERT INTO owed_releases(agent_id, session_id, holder_id, owed_since_micros) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(agent_id, session_id) DO UPDATE SET "
        "holder_id = max(holder_id, excluded.holder_id)");
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, r.agent_id)
                         .Bind(2, r.session_id)
                         .Bind(3, r.holder_id)
                         .Bind(4, ToMicros(r.owed_since))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const OwedRelease& r : write.settled_releases) {
    auto del = db.Prepare(
        "DELETE FROM owed_releases WHERE agent_id = ? AND session_id = ? AND holder_id <= ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, r.agent_id).Bind(2, r.session_id).Bind(3, r.holder_id).Run();
        !s.ok()) {
      return s;
    }
  }
  for (const ClosedOfferRecord& c : write.closed_offers) {
    auto insert = db.Prepare(
        "INSERT OR REPLACE INTO closed_offers(offer_id, agent_id, offer, assignment, "
        "closed_at_micros) VALUES (?, ?, ?, ?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, c.offer_id).Bind(2, c.agent_id).BindBlob(3, c.offer.SerializeAsString());
    if (c.assignment.has_value()) {
      insert->BindBlob(4, c.assignment->SerializeAsString());
    } else {
      insert->BindNull(4);
    }
    if (absl::Status s = insert->Bind(5, ToMicros(c.closed_at)).Run(); !s.ok()) return s;
  }
  if (write.prune_closed_offers_limit > 0) {
    auto prune = db.Prepare(
        "DELETE FROM closed_offers WHERE offer_id IN (SELECT offer_id FROM closed_offers "
        "WHERE closed_at_micros < ? ORDER BY closed_at_micros LIMIT ?)");
    if (!prune.ok()) return prune.status();
    absl::Status s = prune->Bind(1, ToMicros(write.prune_closed_offers_before))
                         .Bind(2, static_cast<int64_t>(write.prune_closed_offers_limit))
                         .Run();
    if (!s.ok()) return s;
  }
  if (write.holder_ceiling.has_value()) {
    auto upsert = db.Prepare(
        "INSERT INTO meta(key, value) VALUES ('holder_ceiling', ?) ON CONFLICT(key) "
        "DO UPDATE SET value = max(value, excluded.value)");
    if (!upsert.ok()) return upsert.status();
    if (absl::Status s = upsert->Bind(1, *write.holder_ceiling).Run(); !s.ok()) return s;
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
  for (const v1::Schedule& schedule : write.schedules) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO schedules(schedule_id, version, schedule) VALUES (?, ?, ?)");
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, schedule.schedule_id())
                         .Bind(2, schedule.version())
                         .BindBlob(3, schedule.SerializeAsString())
                         .Run();
    if (!s.ok()) return s;
  }
  for (const std::string& id : write.deleted_schedules) {
    auto del = db.Prepare("DELETE FROM schedules WHERE schedule_id = ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, id).Run(); !s.ok()) return s;
  }
  if (write.schedule_version.has_value()) {
    auto upsert = db.Prepare(
        "INSERT INTO meta(key, value) VALUES ('schedule_version', ?) ON CONFLICT(key) "
        "DO UPDATE SET value = max(value, excluded.value)");
    if (!upsert.ok()) return upsert.status();
    if (absl::Status s = upsert->Bind(1, *write.schedule_version).Run(); !s.ok()) return s;
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
      // 3: capacity that cannot leak (holder ids, accept intents, releases
      // owed to presence), closed offers on disk instead of in memory.
      "ALTER TABLE entries ADD COLUMN holder_id INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE entries ADD COLUMN accepting INTEGER NOT NULL DEFAULT 0;"
      "CREATE TABLE owed_releases("
      "  agent_id TEXT NOT NULL,"
      "  session_id TEXT NOT NULL,"
      "  holder_id INTEGER NOT NULL,"
      "  owed_since_micros INTEGER NOT NULL,"
      "  PRIMARY KEY(agent_id, session_id));"
      "CREATE TABLE closed_offers("
      "  offer_id TEXT PRIMARY KEY,"
      "  agent_id TEXT NOT NULL,"
      "  offer BLOB NOT NULL,"   // serialized switchboard.routing.v1.Offer
      "  assignment BLOB,"       // serialized switchboard.routing.v1.Assignment, if accepted
      "  closed_at_micros INTEGER NOT NULL);"
      "CREATE INDEX closed_offers_by_time ON closed_offers(closed_at_micros);"
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
      // 4: schedules (hours of operation); the version counter they share
      // is meta's 'schedule_version'.
      "CREATE TABLE schedules("
      "  schedule_id TEXT PRIMARY KEY,"
      "  version INTEGER NOT NULL,"
      "  schedule BLOB NOT NULL);",  // serialized switchboard.routing.v1.Schedule
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
        "requeued_from, holder_id, accepting FROM entries");
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
      e.holder_id = entries->ColumnInt(13);
      e.accepting = entries->ColumnInt(14) != 0;
      contents.entries.push_back(std::move(e));
    }
    auto owed = db.Prepare(
        "SELECT agent_id, session_id, holder_id, owed_since_micros FROM owed_releases");
    if (!owed.ok()) return owed.status();
    while (true) {
      absl::StatusOr<bool> row = owed->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      contents.owed_releases.push_back(OwedRelease{owed->ColumnText(0), owed->ColumnText(1),
                                                   owed->ColumnInt(2),
                                                   FromMicros(owed->ColumnInt(3))});
    }
    auto ceiling = db.Prepare("SELECT value FROM meta WHERE key = 'holder_ceiling'");
    if (!ceiling.ok()) return ceiling.status();
    absl::StatusOr<bool> row = ceiling->Step();
    if (!row.ok()) return row.status();
    if (*row) contents.holder_ceiling = ceiling->ColumnInt(0);
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

absl::StatusOr<RoutingStore::ScheduleContents> SqliteRoutingStore::LoadSchedules() {
  ScheduleContents contents;
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare("SELECT schedule_id, schedule FROM schedules ORDER BY schedule_id");
    if (!select.ok()) return select.status();
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      v1::Schedule schedule;
      if (!schedule.ParseFromString(select->ColumnBlob(1))) {
        return absl::DataLossError("routing.db: unreadable schedule " + select->ColumnText(0));
      }
      contents.schedules.push_back(std::move(schedule));
    }
    auto version = db.Prepare("SELECT value FROM meta WHERE key = 'schedule_version'");
    if (!version.ok()) return version.status();
    absl::StatusOr<bool> row = version->Step();
    if (!row.ok()) return row.status();
    if (*row) contents.version = version->ColumnInt(0);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return contents;
}

absl::StatusOr<std::optional<ClosedOfferRecord>> SqliteRoutingStore::FindClosedOffer(
    const std::string& offer_id) {
  std::optional<ClosedOfferRecord> found;
  // Through the committer: its connection sees every committed write, and
  // the answer comes only once the batch it ran in has committed.
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare(
        "SELECT agent_id, offer, assignment, closed_at_micros FROM closed_offers "
        "WHERE offer_id = ?");
    if (!select.ok()) return select.status();
    select->Bind(1, offer_id);
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    ClosedOfferRecord record;
    record.offer_id = offer_id;
    record.agent_id = select->ColumnText(0);
    if (!record.offer.ParseFromString(select->ColumnBlob(1))) {
      return absl::DataLossError("routing.db: unreadable closed offer " + offer_id);
    }
    if (!select->ColumnIsNull(2)) {
      v1::Assignment assignment;
      if (!assignment.ParseFromString(select->ColumnBlob(2))) {
        return absl::DataLossError("routing.db: unreadable assignment of offer " + offer_id);
      }
      record.assignment = std::move(assignment);
    }
    record.closed_at = FromMicros(select->ColumnInt(3));
    found = std::move(record);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return found;
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
