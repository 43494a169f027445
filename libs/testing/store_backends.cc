#include "libs/testing/store_backends.h"

#include "libs/storage/database.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"

namespace switchboard::testing {

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

PostgresServer& SharedPostgresServer() {
  static PostgresServer server;
  return server;
}

StorePlace NewStorePlace(Backend backend, const std::string& file_name) {
  StorePlace place;
  place.backend = backend;
  if (backend == Backend::kSqlite) {
    place.path = storage::MakeTempDir() + "/" + file_name;
  } else {
    place.uri = SharedPostgresServer().CreateDatabase();
  }
  return place;
}

int64_t OutboxRows(const StorePlace& place) {
  constexpr char kCount[] = "SELECT COUNT(*) FROM outbox";
  if (place.backend == Backend::kPostgres) {
    auto db = storage::PostgresConnection::Open(place.uri);
    if (!db.ok()) return -1;
    auto rows = (*db)->Query(kCount);
    return rows.ok() ? rows->Int(0, 0) : -1;
  }
  auto db = storage::Database::Open({place.path});
  if (!db.ok()) return -1;
  auto count = (*db)->Prepare(kCount);
  if (!count.ok() || !count->Step().value_or(false)) return -1;
  return count->ColumnInt(0);
}

}  // namespace switchboard::testing
