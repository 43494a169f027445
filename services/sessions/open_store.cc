#include "services/sessions/open_store.h"

#include <memory>
#include <utility>
#include <vector>

#include "services/sessions/postgres_store.h"
#include "services/sessions/sqlite_store.h"

namespace switchboard::sessions {
namespace {

// The advisory lock key ("sb_sessi" in ASCII) a sessions process holds on
// its PostgreSQL database for as long as it runs.
constexpr int64_t kOneProcessLock = 0x73625f7365737369;

// Sessions decides each session's sequence numbers in its memory, so a
// second process writing the same database would interleave them: it is
// refused at start instead. The lock lives as long as `db`'s session.
absl::Status HoldOneProcessLock(storage::PostgresConnection& db) {
  absl::StatusOr<storage::PostgresRows> locked =
      db.Query("SELECT pg_try_advisory_lock($1)", {kOneProcessLock});
  if (!locked.ok()) return locked.status();
  if (locked->Text(0, 0) != "t") {
    return absl::FailedPreconditionError(
        "another sessions process is using this PostgreSQL database; sessions on PostgreSQL "
        "runs as one process (see docs/scaling.md)");
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<int> OpenSessionStore(host::Host& host, const ServerConfig& config,
                                    SessionStore** store) {
  host::StoreOptions options{OpenSessionsDatabase};
  options.commits.max_queue = config.max_queued_writes;
  options.postgres_migrations = &PostgresSessionsMigrations();
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
    absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> lock =
        storage::PostgresConnection::Open(host.database_uri());
    if (!lock.ok()) return host.Fail("open_database", lock.status());
    if (absl::Status s = HoldOneProcessLock(**lock); !s.ok()) {
      return host.Fail("open_database", s);
    }
    host.Make<std::unique_ptr<storage::PostgresConnection>>(*std::move(lock));
    std::vector<std::unique_ptr<storage::PostgresConnection>> readers;
    for (int i = 0; i < config.reader_connections; ++i) {
      auto reader = storage::PostgresConnection::Open(host.database_uri());
      if (!reader.ok()) return host.Fail("open_database", reader.status());
      readers.push_back(*std::move(reader));
    }
    *store = &host.Make<PostgresSessionStore>(&host.postgres_committer(), std::move(readers),
                                              host.topic(), host.relay_notifier());
    return std::nullopt;
  }
  std::vector<std::unique_ptr<storage::Database>> readers;
  for (int i = 0; i < config.reader_connections; ++i) {
    auto reader = host.OpenReader();
    if (!reader.ok()) return host.Fail("open_database", reader.status());
    readers.push_back(*std::move(reader));
  }
  *store = &host.Make<SqliteSessionStore>(&host.committer(), std::move(readers), host.topic(),
                                          host.relay_notifier());
  return std::nullopt;
}

}  // namespace switchboard::sessions
