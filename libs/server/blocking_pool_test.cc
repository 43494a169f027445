#include "libs/server/blocking_pool.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace switchboard::server {
namespace {

TEST(BlockingPoolTest, RunsEveryQueuedTaskBeforeStopReturns) {
  std::atomic<int> ran{0};
  BlockingPool pool(4);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(pool.Run([&] { ran.fetch_add(1); }));
  }
  pool.Stop();
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_FALSE(pool.Run([&] { ran.fetch_add(1); }));
  EXPECT_EQ(ran.load(), 1000);
}

TEST(BlockingPoolTest, BlockedTasksDoNotStopOthersFromRunning) {
  BlockingPool pool(2);
  absl::Notification release;
  absl::Notification second_ran;
  pool.Run([&] { release.WaitForNotification(); });
  pool.Run([&] { second_ran.Notify(); });
  EXPECT_TRUE(second_ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  release.Notify();
  // The first task may still be inside release.WaitForNotification(): the
  // pool must be done with it before the notifications, declared after the
  // pool, are destroyed.
  pool.Stop();
}

TEST(BlockingPoolTest, TryRunRefusesOnceTheBacklogIsFullButRunStillQueues) {
  BlockingPool pool(1, /*max_queued=*/2);
  absl::Notification release;
  absl::Notification started;
  pool.Run([&] {
    started.Notify();
    release.WaitForNotification();
  });
  started.WaitForNotification();
  std::atomic<int> ran{0};
  bool stopping = true;
  EXPECT_TRUE(pool.TryRun([&] { ran.fetch_add(1); }, &stopping));
  EXPECT_FALSE(stopping);
  EXPECT_TRUE(pool.TryRun([&] { ran.fetch_add(1); }));
  EXPECT_EQ(pool.queued(), 2);
  EXPECT_FALSE(pool.TryRun([&] { ran.fetch_add(1); }, &stopping));
  EXPECT_FALSE(stopping);
  // The service's own work is bounded by its callers, not refused here.
  EXPECT_TRUE(pool.Run([&] { ran.fetch_add(1); }));
  release.Notify();
  pool.Stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(pool.TryRun([] {}, &stopping));
  EXPECT_TRUE(stopping);
}

}  // namespace
}  // namespace switchboard::server
