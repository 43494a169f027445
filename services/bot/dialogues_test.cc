#include "services/bot/dialogues.h"

#include "gtest/gtest.h"

namespace switchboard::bot {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

DialogueStore::Options Bounded(int max_dialogues, absl::Duration idle_expiry) {
  DialogueStore::Options options;
  options.max_dialogues = max_dialogues;
  options.idle_expiry = idle_expiry;
  return options;
}

TEST(DialogueStoreTest, KeepsContextPerSession) {
  DialogueStore store(DialogueStore::Options{});
  store.With("s-1", kStart, [](Dialogue& d, bool existed) {
    EXPECT_FALSE(existed);
    d.previous_intent = "deposit_not_credited";
  });
  store.With("s-2", kStart, [](Dialogue& d, bool existed) {
    EXPECT_FALSE(existed);
    EXPECT_TRUE(d.previous_intent.empty());
  });
  store.With("s-1", kStart + absl::Minutes(1), [](Dialogue& d, bool existed) {
    EXPECT_TRUE(existed);
    EXPECT_EQ(d.previous_intent, "deposit_not_credited");
  });
  EXPECT_EQ(store.size(), 2);
}

TEST(DialogueStoreTest, IdleDialoguesExpire) {
  DialogueStore store(Bounded(100, absl::Minutes(30)));
  store.With("s-1", kStart, [](Dialogue& d, bool) { d.not_understood_turns = 2; });
  store.With("s-2", kStart + absl::Minutes(20), [](Dialogue&, bool) {});
  // Touching s-1 after its expiry starts afresh.
  store.With("s-1", kStart + absl::Minutes(31), [](Dialogue& d, bool existed) {
    EXPECT_FALSE(existed);
    EXPECT_EQ(d.not_understood_turns, 0);
  });
  EXPECT_EQ(store.ExpireIdle(kStart + absl::Minutes(51)), 1);  // s-2
  EXPECT_EQ(store.size(), 1);
  EXPECT_FALSE(store.Erase("s-1", kStart + absl::Hours(2)));  // expired: not live
  EXPECT_EQ(store.size(), 0);
}

TEST(DialogueStoreTest, BoundedLeastRecentlyUsedFirst) {
  DialogueStore store(Bounded(64, absl::Hours(1)));  // one per shard
  for (int i = 0; i < 1000; ++i) {
    store.With("s-" + std::to_string(i), kStart + absl::Seconds(i), [](Dialogue&, bool) {});
  }
  EXPECT_LE(store.size(), 64);
  bool existed = false;
  store.With("s-999", kStart + absl::Seconds(1000), [&](Dialogue&, bool e) { existed = e; });
  EXPECT_TRUE(existed);
}

TEST(DialogueStoreTest, EraseReportsWhetherThereWasOne) {
  DialogueStore store(DialogueStore::Options{});
  EXPECT_FALSE(store.Erase("s-1", kStart));
  store.With("s-1", kStart, [](Dialogue&, bool) {});
  EXPECT_TRUE(store.Erase("s-1", kStart));
  EXPECT_FALSE(store.Erase("s-1", kStart));
}

}  // namespace
}  // namespace switchboard::bot
