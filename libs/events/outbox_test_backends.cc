#include "libs/events/outbox_test_backends.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/events/postgres_outbox.h"
#include "libs/events/sqlite_outbox_store.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"

namespace switchboard::events {
namespace {

constexpr char kAgentsMigration[] = "CREATE TABLE agents(id TEXT PRIMARY KEY)";

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "outbox test backend: %s\n", value.status().ToString().c_str());
    std::abort();
  }
  return *std::move(value);
}

class SqliteBackend : public OutboxBackend {
 public:
  SqliteBackend()
      : path_(storage::MakeTempDir() + "/service.db"),
        writer_(OrDie(storage::Database::OpenMigrated({path_},
                                                      {kAgentsMigration, kOutboxMigration}))),
        committer_(writer_.get()) {}

  absl::Status CommitEvent(absl::string_view topic, const v1::Event& event,
                           bool fail_after_append) override {
    return committer_.Commit([&](storage::Database& db) -> absl::Status {
      absl::StatusOr<storage::Statement> upsert =
          db.Prepare("INSERT INTO agents(id) VALUES (?) ON CONFLICT DO NOTHING");
      if (!upsert.ok()) return upsert.status();
      if (absl::Status s = upsert->Bind(1, event.entity_id()).Run(); !s.ok()) return s;
      if (absl::Status s = AppendToOutbox(db, topic, event); !s.ok()) return s;
      if (fail_after_append) return absl::FailedPreconditionError("agent at capacity");
      return absl::OkStatus();
    });
  }

  absl::Status Append(absl::string_view topic, const v1::Event& event) override {
    return committer_.Commit(
        [&](storage::Database& db) { return AppendToOutbox(db, topic, event); });
  }

  std::vector<StoredRow> Rows() override {
    std::unique_ptr<storage::Database> reader = OrDie(storage::Database::Open({path_}));
    storage::Statement select = OrDie(reader->Prepare(
        "SELECT id, topic, key, event_id, type, value, created_at_micros "
        "FROM outbox ORDER BY id"));
    std::vector<StoredRow> rows;
    while (OrDie(select.Step())) {
      StoredRow row;
      row.id = select.ColumnInt(0);
      row.row.topic = select.ColumnText(1);
      row.row.key = select.ColumnText(2);
      row.row.event_id = select.ColumnText(3);
      row.row.type = select.ColumnText(4);
      row.row.value = select.ColumnBlob(5);
      row.row.created_at_micros = select.ColumnInt(6);
      rows.push_back(std::move(row));
    }
    return rows;
  }

  absl::Status DeleteAllRows() override {
    return committer_.Commit(
        [](storage::Database& db) { return db.Execute("DELETE FROM outbox"); });
  }

  std::unique_ptr<OutboxStore> NewStore() override {
    return std::make_unique<SqliteOutboxStore>(OrDie(storage::Database::Open({path_})),
                                               &committer_);
  }

 private:
  const std::string path_;
  std::unique_ptr<storage::Database> writer_;
  storage::GroupCommitter committer_;
};

// One server for the test binary; its destructor (at exit) stops it and
// removes its folder.
testing::PostgresServer& SharedServer() {
  static testing::PostgresServer server;
  return server;
}

class PostgresBackend : public OutboxBackend {
 public:
  PostgresBackend()
      : uri_(SharedServer().CreateDatabase()),
        writer_(OrDie(storage::PostgresConnection::OpenMigrated(
            uri_, {kAgentsMigration, kPostgresOutboxMigration}))) {}

  absl::Status CommitEvent(absl::string_view topic, const v1::Event& event,
                           bool fail_after_append) override {
    absl::MutexLock lock(&mu_);
    storage::PostgresConnection& db = *writer_;
    return db.InTransaction([&]() -> absl::Status {
      absl::Status upserted =
          db.Query("INSERT INTO agents(id) VALUES ($1) ON CONFLICT DO NOTHING",
                   {event.entity_id()})
              .status();
      if (!upserted.ok()) return upserted;
      if (absl::Status s = AppendToOutbox(db, topic, event); !s.ok()) return s;
      if (fail_after_append) return absl::FailedPreconditionError("agent at capacity");
      return absl::OkStatus();
    });
  }

  absl::Status Append(absl::string_view topic, const v1::Event& event) override {
    absl::MutexLock lock(&mu_);
    return AppendToOutbox(*writer_, topic, event);
  }

  std::vector<StoredRow> Rows() override {
    std::unique_ptr<storage::PostgresConnection> reader =
        OrDie(storage::PostgresConnection::Open(uri_));
    storage::PostgresRows result = OrDie(reader->Query(
        "SELECT id, topic, key, event_id, type, value, created_at_micros "
        "FROM outbox ORDER BY id"));
    std::vector<StoredRow> rows;
    for (int i = 0; i < result.size(); ++i) {
      StoredRow row;
      row.id = result.Int(i, 0);
      row.row.topic = result.Text(i, 1);
      row.row.key = result.Text(i, 2);
      row.row.event_id = result.Text(i, 3);
      row.row.type = result.Text(i, 4);
      row.row.value = result.Bytes(i, 5);
      row.row.created_at_micros = result.Int(i, 6);
      rows.push_back(std::move(row));
    }
    return rows;
  }

  absl::Status DeleteAllRows() override {
    absl::MutexLock lock(&mu_);
    return writer_->Execute("DELETE FROM outbox");
  }

  std::unique_ptr<OutboxStore> NewStore() override {
    return std::make_unique<PostgresOutboxStore>(
        OrDie(storage::PostgresConnection::Open(uri_)));
  }

 private:
  const std::string uri_;
  absl::Mutex mu_;
  std::unique_ptr<storage::PostgresConnection> writer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string OutboxBackendName(OutboxBackendKind kind) {
  return kind == OutboxBackendKind::kSqlite ? "Sqlite" : "Postgres";
}

std::unique_ptr<OutboxBackend> OutboxBackend::Make(OutboxBackendKind kind) {
  if (kind == OutboxBackendKind::kSqlite) return std::make_unique<SqliteBackend>();
  return std::make_unique<PostgresBackend>();
}

}  // namespace switchboard::events
