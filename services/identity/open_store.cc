#include "services/identity/open_store.h"

#include "services/identity/postgres_store.h"
#include "services/identity/sqlite_store.h"

namespace switchboard::identity {

std::optional<int> OpenIdentityStore(host::Host& host, host::StoreOptions options,
                                     IdentityStore** store) {
  options.open = host::Migrated(IdentityMigrations());
  options.postgres_migrations = &PostgresIdentityMigrations();
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
    *store = &host.Make<PostgresIdentityStore>(host.database_uri(), host.topic(),
                                               host.relay_notifier());
  } else {
    *store = &host.Make<SqliteIdentityStore>(&host.committer(), host.database_path(),
                                             host.topic(), host.relay_notifier());
  }
  return std::nullopt;
}

}  // namespace switchboard::identity
