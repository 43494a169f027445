#pragma once

// What every service's store_test needs to run its cases on both backends:
// a SQLite file in a temporary folder, and a fresh database on a real
// PostgreSQL that the whole test binary shares.
//
//   class RoutingStoreTest : public ::testing::TestWithParam<testing::Backend> {
//     RoutingStoreTest() : place_(testing::NewStorePlace(GetParam(), "routing.db")) {...}
//   };
//   INSTANTIATE_TEST_SUITE_P(Backends, RoutingStoreTest, testing::AllBackends(),
//                            testing::BackendName);

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/testing/postgres.h"

namespace switchboard::testing {

enum class Backend { kSqlite, kPostgres };

// Both backends, for INSTANTIATE_TEST_SUITE_P.
inline auto AllBackends() { return ::testing::Values(Backend::kSqlite, Backend::kPostgres); }

// "Sqlite" or "Postgres", the suffix of each case's name.
std::string BackendName(const ::testing::TestParamInfo<Backend>& info);

// One server for the test binary, started on first use (from the test's main
// thread, see PostgresServer); each case makes a database of its own on it.
PostgresServer& SharedPostgresServer();

// Where one case keeps its store.
struct StorePlace {
  Backend backend = Backend::kSqlite;
  // SQLite: the file, in a fresh temporary folder.
  std::string path;
  // PostgreSQL: a fresh database on the shared server.
  std::string uri;
};
StorePlace NewStorePlace(Backend backend, const std::string& file_name);

// Rows in the store's outbox, read on a connection of its own; -1 if they
// cannot be read (the case's expectation then fails with it).
int64_t OutboxRows(const StorePlace& place);

// Hands `write` to `store.Apply` and waits for its outcome.
template <typename Store, typename Write>
absl::Status ApplyAndWait(Store& store, Write write) {
  absl::Notification done;
  absl::Status result;
  store.Apply(std::move(write), [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace switchboard::testing
