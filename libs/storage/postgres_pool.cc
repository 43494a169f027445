#include "libs/storage/postgres_pool.h"

#include "absl/strings/match.h"

namespace switchboard::storage {

absl::Status PostgresPool::Run(const Body& body) {
  std::unique_ptr<PostgresConnection> db;
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      db = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (db == nullptr) {
    absl::StatusOr<std::unique_ptr<PostgresConnection>> opened = PostgresConnection::Open(uri_);
    if (!opened.ok()) return opened.status();
    db = *std::move(opened);
  }
  absl::Status status = body(*db);
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(db));
  return status;
}

absl::Status PostgresPool::InTransaction(const Body& body) {
  absl::Status status;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    status = Run([&](PostgresConnection& db) { return db.InTransaction([&] { return body(db); }); });
    if (!RolledBackByServer(status)) break;
  }
  return status;
}

bool PostgresPool::RolledBackByServer(const absl::Status& status) {
  // PostgresConnection names the SQLSTATE first ("PostgreSQL 40P01 ...").
  return absl::IsAborted(status) && absl::StartsWith(status.message(), "PostgreSQL 40");
}

}  // namespace switchboard::storage
