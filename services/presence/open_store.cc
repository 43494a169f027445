#include "services/presence/open_store.h"

#include "services/presence/postgres_store.h"
#include "services/presence/sqlite_store.h"

namespace switchboard::presence {

std::optional<int> OpenPresenceStore(host::Host& host, PresenceStore** store) {
  host::StoreOptions options{host::Migrated(PresenceMigrations())};
  options.postgres_migrations = &PostgresPresenceMigrations();
  // Presence decides leases and reservations in memory: a second process
  // would grant from its own stale copy.
  options.one_process = true;
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
    *store = &host.Make<PostgresPresenceStore>(&host.postgres_committer(), host.topic(),
                                               host.relay_notifier());
  } else {
    *store = &host.Make<SqlitePresenceStore>(&host.committer(), host.topic(),
                                             host.relay_notifier());
  }
  return std::nullopt;
}

}  // namespace switchboard::presence
