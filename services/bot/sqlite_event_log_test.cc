#include "services/bot/sqlite_event_log.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/test_dir.h"

namespace switchboard::bot {
namespace {

TEST(SqliteEventLogTest, EventsLandInTheOutboxInOrder) {
  auto db = storage::Database::Open({storage::MakeTempDir() + "/bot.db"});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Migrate(BotMigrations()).ok());
  storage::GroupCommitter committer(db->get());
  std::atomic<int> notified{0};
  SqliteEventLog log(&committer, "switchboard.bot.v1", [&] { ++notified; });
  for (int i = 0; i < 3; ++i) {
    events::v1::Event event;
    event.mutable_turn_completed()->set_session_id("s-1");
    event.mutable_turn_completed()->set_turn_id("t-" + std::to_string(i));
    ASSERT_TRUE(events::Seal(event, "bot", "s-1", absl::Now()).ok());
    absl::Notification done;
    absl::Status status;
    log.Append(event, [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(status.ok()) << status;
  }
  EXPECT_EQ(notified.load(), 3);
  // An unsealed event is refused and nothing else is affected.
  absl::Notification done;
  absl::Status status;
  log.Append(events::v1::Event(), [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  committer.Stop();

  auto rows = (*db)->Prepare("SELECT topic, key, type FROM outbox ORDER BY id");
  ASSERT_TRUE(rows.ok());
  int count = 0;
  while (*rows->Step()) {
    EXPECT_EQ(rows->ColumnText(0), "switchboard.bot.v1");
    EXPECT_EQ(rows->ColumnText(1), "s-1");
    EXPECT_EQ(rows->ColumnText(2), "bot.turn_completed");
    ++count;
  }
  EXPECT_EQ(count, 3);
}

}  // namespace
}  // namespace switchboard::bot
