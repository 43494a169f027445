#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "libs/storage/postgres.h"
#include "libs/testing/reserved_port.h"

namespace switchboard::testing {

// A real PostgreSQL server for a test: Debian's PostgreSQL (the newest
// version under /usr/lib/postgresql, 15 on Debian 12), `initdb` into a fresh
// folder under /tmp, listening on 127.0.0.1 on a reserved port (held for the
// server's life, see ReservedPort) and on a Unix socket in that folder, with
// Debian's default settings (fsync on). The constructor returns once the
// server accepts connections and database "switchboard" exists; the
// destructor stops the server (immediate shutdown, then SIGKILL) and removes the
// folder. If the server cannot start (e.g. PostgreSQL is not installed: run
// tools/setup.sh) the constructor aborts the test with the reason; it never
// skips.
//
// PostgreSQL refuses to run as root, and Bazel runs tests as whoever runs
// Bazel (root on CI). As root, initdb and the server run as the "postgres"
// user (Debian's package creates it), else "nobody"; the folder is under
// /tmp because TEST_TMPDIR lies under /root, which they cannot enter. The
// server is a child of the test with a parent-death signal, so a test that
// crashes does not leave it running.
//
// Authentication is "trust" for the superuser "switchboard": only for tests.
//
// Threading: construct and destroy on one thread (the parent-death signal
// follows the thread that started the server, so use the test's main
// thread, e.g. in SetUpTestSuite or a fixture).
class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // "postgresql://switchboard@127.0.0.1:PORT/switchboard".
  const std::string& uri() const { return uri_; }
  int port() const { return port_.port(); }

  // Creates a fresh, empty database and returns its URI: one per test case
  // keeps cases apart on one server. Aborts on failure.
  std::string CreateDatabase();

  // The server's log so far (for failure messages).
  std::string log() const;

 private:
  std::string UriFor(const std::string& database) const;
  void Stop();

  std::string dir_;
  ReservedPort port_;
  std::string uri_;
  pid_t pid_ = -1;
  int databases_created_ = 0;
};

// The integer in the first row and column of `sql` (say a COUNT), run on
// database `uri` in the schema of service `service`, where libs/host keeps
// that service's tables; -1 if it cannot be read (the test's expectation
// then fails with it).
int64_t CountInSchema(const std::string& uri, const std::string& service,
                      const std::string& sql,
                      const std::vector<storage::PostgresParam>& params = {});

}  // namespace switchboard::testing
