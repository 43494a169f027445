#include "services/routing/open_store.h"

#include "services/routing/postgres_store.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {

std::optional<int> OpenRoutingStore(host::Host& host, RoutingStore** store) {
  host::StoreOptions options{host::Migrated(RoutingMigrations())};
  options.postgres_migrations = &PostgresRoutingMigrations();
  // The router decides offers in memory: a second process would offer the
  // same entries from its own copy.
  options.one_process = true;
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
    *store = &host.Make<PostgresRoutingStore>(&host.postgres_committer(), host.topic(),
                                              host.relay_notifier());
  } else {
    *store = &host.Make<SqliteRoutingStore>(&host.committer(), host.topic(),
                                            host.relay_notifier());
  }
  return std::nullopt;
}

}  // namespace switchboard::routing
