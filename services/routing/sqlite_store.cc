#include "services/routing/sqlite_store.h"

#include "libs/events/outbox.h"
#include "services/routing/store_sql.h"

namespace switchboard::routing {
namespace {

using storage::ForEachRow;

// The meta counter `name`, 0 when it was never written.
absl::StatusOr<int64_t> ReadCounter(storage::Database& db, const char* name) {
  int64_t value = 0;
  absl::Status status =
      ForEachRow(db, kSelectCounter, {std::string(name)}, [&](const SqlRow& row) {
        value = row.Int(0);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return value;
}

absl::Status WriteAll(storage::Database& db, const RoutingWrite& write,
                      const std::string& topic) {
  for (const SqlStatement& statement : WriteStatements(write)) {
    if (absl::Status s = storage::Run(db, statement); !s.ok()) return s;
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
    absl::Status s = ForEachRow(db, kSelectEntries, {}, [&](const SqlRow& row) {
      absl::StatusOr<EntryRecord> entry = EntryFromRow(row);
      if (!entry.ok()) return entry.status();
      contents.entries.push_back(*std::move(entry));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    s = ForEachRow(db, kSelectOwedReleases, {}, [&](const SqlRow& row) {
      contents.owed_releases.push_back(OwedReleaseFromRow(row));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    absl::StatusOr<int64_t> ceiling = ReadCounter(db, kHolderCeiling);
    if (!ceiling.ok()) return ceiling.status();
    contents.holder_ceiling = *ceiling;
    return ForEachRow(db, kSelectSettings, {}, [&](const SqlRow& row) {
      absl::StatusOr<SettingsRecord> settings = SettingsFromRow(row);
      if (!settings.ok()) return settings.status();
      contents.settings.push_back(*std::move(settings));
      return absl::OkStatus();
    });
  });
  if (!status.ok()) return status;
  return contents;
}

absl::StatusOr<RoutingStore::ScheduleContents> SqliteRoutingStore::LoadSchedules() {
  ScheduleContents contents;
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    absl::Status s = ForEachRow(db, kSelectSchedules, {}, [&](const SqlRow& row) {
      absl::StatusOr<v1::Schedule> schedule = ScheduleFromRow(row);
      if (!schedule.ok()) return schedule.status();
      contents.schedules.push_back(*std::move(schedule));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    absl::StatusOr<int64_t> version = ReadCounter(db, kScheduleVersion);
    if (!version.ok()) return version.status();
    contents.version = *version;
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
    return ForEachRow(db, kSelectClosedOffer, {offer_id}, [&](const SqlRow& row) {
      absl::StatusOr<ClosedOfferRecord> record = ClosedOfferFromRow(row);
      if (!record.ok()) return record.status();
      found = *std::move(record);
      return absl::OkStatus();
    });
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
