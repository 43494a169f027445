#include "services/identity/key_locks.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace switchboard::identity {
namespace {

TEST(KeyLocksTest, OneHolderPerKeyAndNothingLeftAfterwards) {
  KeyLocks locks;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  int counter = 0;  // Guarded by the lock of "same".
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        KeyLocks::Hold hold = locks.Lock("same");
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        ++counter;
        inside.fetch_sub(1);
        // Other keys never wait for "same".
        KeyLocks::Hold other = locks.Lock(absl::StrCat("own-", t));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, 8 * 500);
  EXPECT_EQ(locks.size(), 0u) << "entries outlive their use";
}

TEST(KeyLocksTest, MemoryFollowsTheKeysInUse) {
  KeyLocks locks;
  {
    std::vector<KeyLocks::Hold> holds;
    for (int i = 0; i < 100; ++i) holds.push_back(locks.Lock(absl::StrCat("customer-", i)));
    EXPECT_EQ(locks.size(), 100u);
    EXPECT_EQ(locks.users("customer-7"), 1);
    EXPECT_EQ(locks.users("customer-100"), 0);
  }
  EXPECT_EQ(locks.size(), 0u);
}

TEST(KeyLocksTest, LockUnlessBusyRefusesOnceEnoughThreadsHoldOrWait) {
  KeyLocks locks;
  std::optional<KeyLocks::Hold> first = locks.LockUnlessBusy("k", 2);
  ASSERT_TRUE(first.has_value());
  std::atomic<bool> second_held{false};
  std::thread second([&] {
    std::optional<KeyLocks::Hold> hold = locks.LockUnlessBusy("k", 2);
    second_held = hold.has_value();
  });
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (locks.users("k") < 2 && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_FALSE(locks.LockUnlessBusy("k", 2).has_value());
  EXPECT_TRUE(locks.LockUnlessBusy("other", 2).has_value());
  first.reset();
  second.join();
  EXPECT_TRUE(second_held);
  EXPECT_EQ(locks.size(), 0u);
}

}  // namespace
}  // namespace switchboard::identity
