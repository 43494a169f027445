#include "services/presence/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "libs/events/outbox.h"
#include "libs/storage/time_column.h"
#include "services/presence/store_sql.h"

namespace switchboard::presence {
namespace {

using storage::FromMicros;
using storage::ToMicros;

absl::Status WriteAll(storage::Database& db, const PresenceWrite& write,
                      const std::string& topic) {
  for (const AgentRecord& agent : write.agents) {
    auto upsert = db.Prepare(absl::StrCat(
        "INSERT INTO agents(", kAgentColumns,
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET "
        "status = excluded.status, profile = excluded.profile, "
        "lease_expires_at_micros = excluded.lease_expires_at_micros, "
        "status_changed_at_micros = excluded.status_changed_at_micros, "
        "idle_since_micros = excluded.idle_since_micros, revision = excluded.revision, "
        "profile_set_by = excluded.profile_set_by, "
        "profile_set_at_micros = excluded.profile_set_at_micros"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, agent.agent_id)
                         .Bind(2, static_cast<int64_t>(agent.status))
                         .BindBlob(3, agent.profile.SerializeAsString())
                         .Bind(4, ToMicros(agent.lease_expires_at))
                         .Bind(5, ToMicros(agent.status_changed_at))
                         .Bind(6, ToMicros(agent.idle_since))
                         .Bind(7, agent.revision)
                         .Bind(8, agent.profile_set_by)
                         .Bind(9, ToMicros(agent.profile_set_at))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const ReservationRecord& r : write.deleted_reservations) {
    auto del = db.Prepare("DELETE FROM reservations WHERE session_id = ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, r.session_id).Run(); !s.ok()) return s;
  }
  for (const ReservationRecord& r : write.upserted_reservations) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO reservations(",
                                          kReservationColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, r.session_id)
                         .Bind(2, r.agent_id)
                         .Bind(3, static_cast<int64_t>(r.channel))
                         .Bind(4, static_cast<int64_t>(r.assigned))
                         .Bind(5, ToMicros(r.created_at))
                         .Bind(6, ToMicros(r.expires_at))
                         .Bind(7, r.holder_id)
                         .Run();
    if (!s.ok()) return s;
  }
  for (const CapacityGuard& guard : write.capacity_guards) {
    // The one writer's transaction: nothing else changes reservations
    // between the count and the commit.
    auto count = db.Prepare(
        "SELECT COUNT(*) FROM reservations WHERE agent_id = ? AND channel = ?");
    if (!count.ok()) return count.status();
    count->Bind(1, guard.agent_id).Bind(2, static_cast<int64_t>(guard.channel));
    absl::StatusOr<bool> row = count->Step();
    if (!row.ok()) return row.status();
    if (count->ColumnInt(0) > guard.capacity) return CapacityExceeded(guard);
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& PresenceMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: agents and the capacity they hold.
      "CREATE TABLE agents("
      "  agent_id TEXT PRIMARY KEY,"
      "  status INTEGER NOT NULL,"
      "  profile BLOB NOT NULL,"  // serialized switchboard.presence.v1.AgentProfile
      "  lease_expires_at_micros INTEGER NOT NULL,"
      "  status_changed_at_micros INTEGER NOT NULL,"
      "  idle_since_micros INTEGER NOT NULL,"
      "  revision INTEGER NOT NULL);"
      "CREATE TABLE reservations("
      "  session_id TEXT PRIMARY KEY,"
      "  agent_id TEXT NOT NULL REFERENCES agents(agent_id),"
      "  channel INTEGER NOT NULL,"
      "  assigned INTEGER NOT NULL,"
      "  created_at_micros INTEGER NOT NULL,"
      "  expires_at_micros INTEGER NOT NULL);"
      "CREATE INDEX reservations_by_agent ON reservations(agent_id);",
      // 2: the event outbox.
      events::kOutboxMigration,
      // 3: which offer or assignment of routing's holds each reservation
      // (ReconcileReservations).
      "ALTER TABLE reservations ADD COLUMN holder_id INTEGER NOT NULL DEFAULT 0;",
      // 4: which supervisor last set each agent's profile, and when (rows
      // from before: nobody, never).
      "ALTER TABLE agents ADD COLUMN profile_set_by TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE agents ADD COLUMN profile_set_at_micros INTEGER NOT NULL "
      "  DEFAULT -9223372036854775808;",
  };
  return *migrations;
}

SqlitePresenceStore::SqlitePresenceStore(storage::GroupCommitter* committer,
                                         std::string topic,
                                         std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)) {}

absl::StatusOr<PresenceStore::Contents> SqlitePresenceStore::Load() {
  Contents contents;
  // Through the committer: its thread owns the connection.
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto agents = db.Prepare(absl::StrCat("SELECT ", kAgentColumns, " FROM agents"));
    if (!agents.ok()) return agents.status();
    while (true) {
      absl::StatusOr<bool> row = agents->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      AgentRecord agent;
      agent.agent_id = agents->ColumnText(0);
      agent.status = static_cast<v1::AgentStatus>(agents->ColumnInt(1));
      if (!agent.profile.ParseFromString(agents->ColumnBlob(2))) {
        return absl::DataLossError("presence.db: unreadable profile of agent " +
                                   agent.agent_id);
      }
      agent.lease_expires_at = FromMicros(agents->ColumnInt(3));
      agent.status_changed_at = FromMicros(agents->ColumnInt(4));
      agent.idle_since = FromMicros(agents->ColumnInt(5));
      agent.revision = agents->ColumnInt(6);
      agent.profile_set_by = agents->ColumnText(7);
      agent.profile_set_at = FromMicros(agents->ColumnInt(8));
      contents.agents.push_back(std::move(agent));
    }
    auto reservations =
        db.Prepare(absl::StrCat("SELECT ", kReservationColumns, " FROM reservations"));
    if (!reservations.ok()) return reservations.status();
    while (true) {
      absl::StatusOr<bool> row = reservations->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ReservationRecord r;
      r.session_id = reservations->ColumnText(0);
      r.agent_id = reservations->ColumnText(1);
      r.channel = static_cast<common::v1::Channel>(reservations->ColumnInt(2));
      r.assigned = reservations->ColumnInt(3) != 0;
      r.created_at = FromMicros(reservations->ColumnInt(4));
      r.expires_at = FromMicros(reservations->ColumnInt(5));
      r.holder_id = reservations->ColumnInt(6);
      contents.reservations.push_back(std::move(r));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return contents;
}

void SqlitePresenceStore::Apply(PresenceWrite write,
                                std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

}  // namespace switchboard::presence
