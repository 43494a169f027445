#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/routing/store.h"

namespace switchboard::routing {

// Opens the host's store with routing's migrations and makes the
// RoutingStore on it, as --database chose: SqliteRoutingStore on
// DATA_DIR/routing.db by default, PostgresRoutingStore on a postgresql://
// database, where the host holds its one-process lock (one routing process
// per database: see postgres_store.h). Sets `*store` (a part of the host),
// or returns the exit code.
std::optional<int> OpenRoutingStore(host::Host& host, RoutingStore** store);

}  // namespace switchboard::routing
