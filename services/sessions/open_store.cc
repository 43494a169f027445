#include "services/sessions/open_store.h"

#include <memory>
#include <utility>
#include <vector>

#include "services/sessions/postgres_store.h"
#include "services/sessions/sqlite_store.h"

namespace switchboard::sessions {

std::optional<int> OpenSessionStore(host::Host& host, const ServerConfig& config,
                                    SessionStore** store) {
  host::StoreOptions options{OpenSessionsDatabase};
  options.commits.max_queue = config.max_queued_writes;
  options.postgres_migrations = &PostgresSessionsMigrations();
  // Sessions decides each session's sequence numbers in its memory: a second
  // process writing the same database would interleave them.
  options.one_process = true;
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
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
