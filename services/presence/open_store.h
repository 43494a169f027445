#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/presence/store.h"

namespace switchboard::presence {

// Opens the host's store with presence's migrations and makes the
// PresenceStore on it, as --database chose: SqlitePresenceStore on
// DATA_DIR/presence.db by default, PostgresPresenceStore on a postgresql://
// database (one presence process per database: see postgres_store.h). Sets
// `*store` (a part of the host), or returns the exit code.
std::optional<int> OpenPresenceStore(host::Host& host, PresenceStore** store);

}  // namespace switchboard::presence
