#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/identity/store.h"

namespace switchboard::identity {

// Opens the host's store with identity's migrations (`options.open` and
// `options.postgres_migrations` are set here; the rest, e.g. the relay's
// sink, is the caller's) and makes the IdentityStore on it, as --database
// chose: SqliteIdentityStore on DATA_DIR/identity.db by default,
// PostgresIdentityStore on a postgresql:// database that replicas share.
// Sets `*store` (a part of the host), or returns the exit code.
std::optional<int> OpenIdentityStore(host::Host& host, host::StoreOptions options,
                                     IdentityStore** store);

}  // namespace switchboard::identity
