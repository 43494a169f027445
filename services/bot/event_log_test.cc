#include <array>
#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "services/bot/postgres_event_log.h"
#include "services/bot/sqlite_event_log.h"

namespace switchboard::bot {
namespace {

enum class Backend { kSqlite, kPostgres };

testing::PostgresServer& SharedServer() {
  static testing::PostgresServer server;
  return server;
}

absl::Status AppendTo(EventLog& log, events::v1::Event event) {
  absl::Notification done;
  absl::Status status;
  log.Append(std::move(event), [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

// The same case on each backend: bot.db's outbox, and a shared PostgreSQL
// outbox.
class EventLogTest : public ::testing::TestWithParam<Backend> {};

TEST_P(EventLogTest, EventsLandInTheOutboxInOrder) {
  std::atomic<int> notified{0};
  std::unique_ptr<storage::Database> db;
  std::unique_ptr<storage::GroupCommitter> committer;
  std::unique_ptr<EventLog> log;
  std::string uri;
  if (GetParam() == Backend::kSqlite) {
    db = *storage::Database::Open({storage::MakeTempDir() + "/bot.db"});
    ASSERT_TRUE(db->Migrate(BotMigrations()).ok());
    committer = std::make_unique<storage::GroupCommitter>(db.get());
    log = std::make_unique<SqliteEventLog>(committer.get(), "switchboard.bot.v1",
                                           [&] { ++notified; });
  } else {
    uri = SharedServer().CreateDatabase();
    ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresBotMigrations()).ok());
    log = std::make_unique<PostgresEventLog>(uri, "switchboard.bot.v1", [&] { ++notified; });
  }
  for (int i = 0; i < 3; ++i) {
    events::v1::Event event;
    event.mutable_turn_completed()->set_session_id("s-1");
    event.mutable_turn_completed()->set_turn_id("t-" + std::to_string(i));
    ASSERT_TRUE(events::Seal(event, "bot", "s-1", absl::Now()).ok());
    absl::Status status = AppendTo(*log, event);
    EXPECT_TRUE(status.ok()) << status;
  }
  EXPECT_EQ(notified.load(), 3);
  // An unsealed event is refused and nothing else is affected.
  EXPECT_EQ(AppendTo(*log, events::v1::Event()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(notified.load(), 3);

  // topic, key, type of each row, oldest first.
  std::vector<std::array<std::string, 3>> rows;
  if (GetParam() == Backend::kSqlite) {
    committer->Stop();
    auto select = db->Prepare("SELECT topic, key, type FROM outbox ORDER BY id");
    ASSERT_TRUE(select.ok());
    while (*select->Step()) {
      rows.push_back({select->ColumnText(0), select->ColumnText(1), select->ColumnText(2)});
    }
  } else {
    auto reader = storage::PostgresConnection::Open(uri);
    ASSERT_TRUE(reader.ok());
    auto selected = (*reader)->Query("SELECT topic, key, type FROM outbox ORDER BY id");
    ASSERT_TRUE(selected.ok()) << selected.status();
    for (int r = 0; r < selected->size(); ++r) {
      rows.push_back({selected->Text(r, 0), selected->Text(r, 1), selected->Text(r, 2)});
    }
  }
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& row : rows) {
    EXPECT_EQ(row[0], "switchboard.bot.v1");
    EXPECT_EQ(row[1], "s-1");
    EXPECT_EQ(row[2], "bot.turn_completed");
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLogTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
}  // namespace switchboard::bot
