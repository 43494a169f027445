#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/sessions/server_config.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

// Opens the host's store with sessions' migrations and makes the
// SessionStore on it, as --database chose: SqliteSessionStore on
// DATA_DIR/sessions.db by default, PostgresSessionStore on a postgresql://
// database (for one sessions process; see docs/scaling.md). Either way the
// host's group committer writes (--max_queued_writes bounds its queue) and
// --reader_connections connections read. Sets `*store` (a part of the
// host), or returns the exit code.
std::optional<int> OpenSessionStore(host::Host& host, const ServerConfig& config,
                                    SessionStore** store);

}  // namespace switchboard::sessions
