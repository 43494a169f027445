#include "services/presence/postgres_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/events/postgres_outbox.h"
#include "libs/storage/time_column.h"
#include "services/presence/store_sql.h"

namespace switchboard::presence {
namespace {

using storage::FromMicros;
using storage::PostgresConnection;
using storage::PostgresParam;
using storage::PostgresRows;
using storage::ToMicros;

absl::Status WriteAll(PostgresConnection& db, const PresenceWrite& write,
                      const std::string& topic) {
  // The guarded agents' rows are locked first, in id order (two writes
  // guarding the same agents cannot deadlock): a concurrent reservation at
  // one of them, from another store on the database, waits here until this
  // transaction ends, and its count, a statement run after the lock was
  // granted, then sees this write's reservations. Locking after the inserts
  // instead would deadlock with the key-share locks that the reservations'
  // foreign key takes on the agent row.
  std::vector<std::string> guarded;
  for (const CapacityGuard& guard : write.capacity_guards) guarded.push_back(guard.agent_id);
  std::sort(guarded.begin(), guarded.end());
  guarded.erase(std::unique(guarded.begin(), guarded.end()), guarded.end());
  for (const std::string& agent_id : guarded) {
    absl::Status locked =
        db.Query("SELECT 1 FROM agents WHERE agent_id = $1 FOR UPDATE", {agent_id}).status();
    if (!locked.ok()) return locked;
  }
  for (const AgentRecord& agent : write.agents) {
    absl::Status s =
        db.Query(absl::StrCat(
                     "INSERT INTO agents(", kAgentColumns,
                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                     "ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, "
                     "profile = excluded.profile, "
                     "lease_expires_at_micros = excluded.lease_expires_at_micros, "
                     "status_changed_at_micros = excluded.status_changed_at_micros, "
                     "idle_since_micros = excluded.idle_since_micros, "
                     "revision = excluded.revision, profile_set_by = excluded.profile_set_by, "
                     "profile_set_at_micros = excluded.profile_set_at_micros"),
                 {agent.agent_id, static_cast<int64_t>(agent.status),
                  PostgresParam::Bytes(agent.profile.SerializeAsString()),
                  ToMicros(agent.lease_expires_at), ToMicros(agent.status_changed_at),
                  ToMicros(agent.idle_since), agent.revision, agent.profile_set_by,
                  ToMicros(agent.profile_set_at)})
            .status();
    if (!s.ok()) return s;
  }
  for (const ReservationRecord& r : write.deleted_reservations) {
    absl::Status s =
        db.Query("DELETE FROM reservations WHERE session_id = $1", {r.session_id}).status();
    if (!s.ok()) return s;
  }
  for (const ReservationRecord& r : write.upserted_reservations) {
    absl::Status s =
        db.Query(absl::StrCat("INSERT INTO reservations(", kReservationColumns,
                              ") VALUES ($1, $2, $3, $4, $5, $6, $7) "
                              "ON CONFLICT (session_id) DO UPDATE SET "
                              "agent_id = excluded.agent_id, channel = excluded.channel, "
                              "assigned = excluded.assigned, "
                              "created_at_micros = excluded.created_at_micros, "
                              "expires_at_micros = excluded.expires_at_micros, "
                              "holder_id = excluded.holder_id"),
                 {r.session_id, r.agent_id, static_cast<int64_t>(r.channel),
                  static_cast<int64_t>(r.assigned), ToMicros(r.created_at),
                  ToMicros(r.expires_at), r.holder_id})
            .status();
    if (!s.ok()) return s;
  }
  for (const CapacityGuard& guard : write.capacity_guards) {
    absl::StatusOr<PostgresRows> count =
        db.Query("SELECT COUNT(*) FROM reservations WHERE agent_id = $1 AND channel = $2",
                 {guard.agent_id, static_cast<int64_t>(guard.channel)});
    if (!count.ok()) return count.status();
    if (count->Int(0, 0) > guard.capacity) return CapacityExceeded(guard);
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadAll(PostgresConnection& db, PresenceStore::Contents& contents) {
  absl::StatusOr<PostgresRows> agents =
      db.Query(absl::StrCat("SELECT ", kAgentColumns, " FROM agents"));
  if (!agents.ok()) return agents.status();
  for (int row = 0; row < agents->size(); ++row) {
    AgentRecord agent;
    agent.agent_id = agents->Text(row, 0);
    agent.status = static_cast<v1::AgentStatus>(agents->Int(row, 1));
    if (!agent.profile.ParseFromString(agents->Bytes(row, 2))) {
      return absl::DataLossError("presence database: unreadable profile of agent " +
                                 agent.agent_id);
    }
    agent.lease_expires_at = FromMicros(agents->Int(row, 3));
    agent.status_changed_at = FromMicros(agents->Int(row, 4));
    agent.idle_since = FromMicros(agents->Int(row, 5));
    agent.revision = agents->Int(row, 6);
    agent.profile_set_by = agents->Text(row, 7);
    agent.profile_set_at = FromMicros(agents->Int(row, 8));
    contents.agents.push_back(std::move(agent));
  }
  absl::StatusOr<PostgresRows> reservations =
      db.Query(absl::StrCat("SELECT ", kReservationColumns, " FROM reservations"));
  if (!reservations.ok()) return reservations.status();
  for (int row = 0; row < reservations->size(); ++row) {
    ReservationRecord r;
    r.session_id = reservations->Text(row, 0);
    r.agent_id = reservations->Text(row, 1);
    r.channel = static_cast<common::v1::Channel>(reservations->Int(row, 2));
    r.assigned = reservations->Int(row, 3) != 0;
    r.created_at = FromMicros(reservations->Int(row, 4));
    r.expires_at = FromMicros(reservations->Int(row, 5));
    r.holder_id = reservations->Int(row, 6);
    contents.reservations.push_back(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& PostgresPresenceMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the tables of SQLite's PresenceMigrations as they are after its
      // migration 4, in PostgreSQL's types (times as BIGINT microseconds,
      // INT64_MIN and INT64_MAX for never and forever; see time_column.h).
      R"sql(
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY,
  status INTEGER NOT NULL,
  profile BYTEA NOT NULL,  -- serialized switchboard.presence.v1.AgentProfile
  lease_expires_at_micros BIGINT NOT NULL,
  status_changed_at_micros BIGINT NOT NULL,
  idle_since_micros BIGINT NOT NULL,
  revision BIGINT NOT NULL,
  profile_set_by TEXT NOT NULL DEFAULT '',
  profile_set_at_micros BIGINT NOT NULL DEFAULT -9223372036854775808
);
CREATE TABLE reservations (
  session_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (agent_id),
  channel INTEGER NOT NULL,
  assigned INTEGER NOT NULL,
  created_at_micros BIGINT NOT NULL,
  expires_at_micros BIGINT NOT NULL,
  holder_id BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX reservations_by_agent ON reservations (agent_id);
)sql",
      // 2: the event outbox.
      events::kPostgresOutboxMigration,
  };
  return *migrations;
}

PostgresPresenceStore::PostgresPresenceStore(storage::PostgresGroupCommitter* committer,
                                             std::string topic,
                                             std::function<void()> after_commit)
    : committer_(committer), topic_(std::move(topic)), after_commit_(std::move(after_commit)) {}

absl::StatusOr<PresenceStore::Contents> PostgresPresenceStore::Load() {
  Contents contents;
  // Through the committer: its thread owns the connection. Runs again if
  // PostgreSQL aborts it, so it starts from empty each time.
  absl::Status status = committer_->Commit([&](PostgresConnection& db) {
    contents = Contents();
    return ReadAll(db, contents);
  });
  if (!status.ok()) return status;
  return contents;
}

void PostgresPresenceStore::Apply(PresenceWrite write, std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](PostgresConnection& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

}  // namespace switchboard::presence
