#pragma once

// Connections to one PostgreSQL database for a store that many threads use
// at once: each caller borrows an idle connection (one is opened when none
// is idle) and returns it when done, so there are at most as many
// connections as callers ran at once (the RPC workers).
//
//   PostgresPool pool(uri);
//   absl::Status read = pool.Run([&](PostgresConnection& db) { ... db.Query(...) ... });
//   absl::Status written = pool.InTransaction([&](PostgresConnection& db) { ... });
//
// Thread-safe; blocking.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "libs/storage/postgres.h"

namespace switchboard::storage {

class PostgresPool {
 public:
  using Body = std::function<absl::Status(PostgresConnection&)>;

  // How often InTransaction tries a transaction PostgreSQL rolled back.
  static constexpr int kAttempts = 5;

  explicit PostgresPool(std::string uri) : uri_(std::move(uri)) {}
  PostgresPool(const PostgresPool&) = delete;
  PostgresPool& operator=(const PostgresPool&) = delete;

  // Runs `body` on a borrowed connection, outside a transaction; `body`'s
  // status, or UNAVAILABLE when no connection could be opened.
  absl::Status Run(const Body& body);

  // Runs `body` in a transaction on a borrowed connection, and runs it
  // again (up to kAttempts in all) while PostgreSQL rolls it back for a
  // deadlock or a serialization failure (SQLSTATE class 40), so `body` must
  // decide from what it reads inside the transaction. An ABORTED of
  // `body`'s own (not the server's) is returned as it is.
  absl::Status InTransaction(const Body& body);

  // Whether `status` is PostgreSQL rolling a transaction back (class 40).
  static bool RolledBackByServer(const absl::Status& status);

 private:
  const std::string uri_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PostgresConnection>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::storage
