#include "services/routing/queue_order.h"

#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace switchboard::routing {
namespace {

using Slot = QueueOrder::Slot;

const QueueId kChatDeposit{v1::ENTRY_KIND_SESSION, common::v1::CHANNEL_CHAT,
                           common::v1::CATEGORY_DEPOSIT, "en"};
const QueueId kChatSecurity{v1::ENTRY_KIND_SESSION, common::v1::CHANNEL_CHAT,
                            common::v1::CATEGORY_ACCOUNT_SECURITY, "en"};
const QueueId kComplaints{v1::ENTRY_KIND_COMPLAINT, common::v1::CHANNEL_UNSPECIFIED,
                          common::v1::CATEGORY_DEPOSIT, ""};

std::vector<std::string> KeysOf(const QueueOrder::Queue& queue) {
  std::vector<std::string> keys;
  for (const Slot& slot : queue) keys.push_back(slot.key);
  return keys;
}

TEST(QueueOrderTest, PriorityThenOrderThenKey) {
  QueueOrder order;
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 100, "old-normal"});
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 200, "new-normal"});
  order.Add(kChatDeposit, {v1::PRIORITY_URGENT, 300, "urgent"});
  order.Add(kChatDeposit, {v1::PRIORITY_HIGH, 250, "high-b"});
  order.Add(kChatDeposit, {v1::PRIORITY_HIGH, 250, "high-a"});
  EXPECT_EQ(KeysOf(order.queues().at(kChatDeposit)),
            (std::vector<std::string>{"urgent", "high-a", "high-b", "old-normal", "new-normal"}));
  EXPECT_EQ(order.PositionOf(kChatDeposit, {v1::PRIORITY_NORMAL, 100, "old-normal"}), 4);
  EXPECT_EQ(order.PositionOf(kChatDeposit, {v1::PRIORITY_NORMAL, 101, "old-normal"}), 0);
  EXPECT_EQ(order.PositionOf(kChatSecurity, {v1::PRIORITY_NORMAL, 100, "old-normal"}), 0);
  EXPECT_EQ(order.Depth(kChatDeposit), 5);
  EXPECT_EQ(order.Depth(kChatSecurity), 0);
}

TEST(QueueOrderTest, TheHeadIsWithinThePriority) {
  QueueOrder order;
  // An empty queue, or one without entries of that priority: the fallback.
  EXPECT_EQ(order.HeadOrder(kChatDeposit, v1::PRIORITY_NORMAL, 500), 500);
  order.Add(kChatDeposit, {v1::PRIORITY_URGENT, 10, "urgent"});
  EXPECT_EQ(order.HeadOrder(kChatDeposit, v1::PRIORITY_NORMAL, 500), 500);
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 100, "first"});
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 200, "second"});
  EXPECT_EQ(order.HeadOrder(kChatDeposit, v1::PRIORITY_NORMAL, 500), 99);
  // A fallback already ahead stays.
  EXPECT_EQ(order.HeadOrder(kChatDeposit, v1::PRIORITY_NORMAL, 50), 50);
  // Put at the head, the entry goes first among NORMAL, still after URGENT.
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 99, "head"});
  EXPECT_EQ(KeysOf(order.queues().at(kChatDeposit)),
            (std::vector<std::string>{"urgent", "head", "first", "second"}));
}

TEST(QueueOrderTest, AnEmptiedQueueIsForgotten) {
  QueueOrder order;
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 1, "a"});
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 1, "a"});
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 2, "b"});
  EXPECT_EQ(order.Depth(kChatDeposit), 2);
  order.Remove(kChatDeposit, {v1::PRIORITY_NORMAL, 1, "a"});
  order.Remove(kChatDeposit, {v1::PRIORITY_NORMAL, 1, "a"});
  order.Remove(kChatSecurity, {v1::PRIORITY_NORMAL, 1, "a"});
  EXPECT_EQ(order.Depth(kChatDeposit), 1);
  EXPECT_EQ(order.queues().count(kChatSecurity), 0u);
  order.Remove(kChatDeposit, {v1::PRIORITY_NORMAL, 2, "b"});
  EXPECT_EQ(order.Depth(kChatDeposit), 0);
  EXPECT_TRUE(order.queues().empty());
}

TEST(QueueOrderTest, PickTakesTheBestOfferableSlotAcrossServableQueues) {
  QueueOrder order;
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 100, "deposit-old"});
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 300, "deposit-new"});
  order.Add(kChatSecurity, {v1::PRIORITY_URGENT, 200, "security"});
  order.Add(kComplaints, {v1::PRIORITY_HIGH, 50, "complaint"});
  auto all = [](const auto&) { return true; };
  // Urgent beats high beats normal, across queues.
  EXPECT_EQ(order.Pick(all, all)->key, "security");
  // A queue nobody can serve is skipped whole.
  EXPECT_EQ(order
                .Pick([](const QueueId& q) {
                        return q.category != common::v1::CATEGORY_ACCOUNT_SECURITY;
                      },
                      all)
                ->key,
            "complaint");
  // An entry that cannot be offered (busy, backing off, nobody eligible)
  // gives way to the next one.
  std::vector<std::string> asked;
  std::optional<Slot> picked = order.Pick(
      [](const QueueId& q) { return q.kind == v1::ENTRY_KIND_SESSION; },
      [&](const Slot& slot) {
        asked.push_back(slot.key);
        return slot.key != "security" && slot.key != "deposit-old";
      });
  ASSERT_TRUE(picked.has_value());
  EXPECT_EQ(picked->key, "deposit-new");
  EXPECT_EQ(asked, (std::vector<std::string>{"security", "deposit-old", "deposit-new"}));
  // Nothing offerable: nothing picked.
  EXPECT_FALSE(order.Pick(all, [](const Slot&) { return false; }).has_value());
}

TEST(QueueOrderTest, PickDoesNotWalkSlotsThatCannotBeatTheBest) {
  QueueOrder order;
  // Queues are visited in key order: ACCOUNT_SECURITY before DEPOSIT.
  for (int i = 0; i < 1000; ++i) {
    order.Add(kChatSecurity, {v1::PRIORITY_NORMAL, 10 + i, "normal-" + std::to_string(i)});
  }
  order.Add(kChatDeposit, {v1::PRIORITY_URGENT, 5000, "best"});
  int asked = 0;
  EXPECT_EQ(order.Pick([](const QueueId&) { return true; },
                       [&](const Slot&) {
                         ++asked;
                         return true;
                       })
                ->key,
            "best");
  // The first queue's head, then the second's: never the 999 others.
  EXPECT_EQ(asked, 2);
}

TEST(QueueOrderTest, PickPassesOverOfferedSlotsWithoutWalkingThem) {
  QueueOrder order;
  for (int i = 0; i < 1000; ++i) {
    const Slot slot{v1::PRIORITY_NORMAL, i, "offered-" + std::to_string(i)};
    order.Add(kChatDeposit, slot);
    order.SetOffered(kChatDeposit, slot, true);
  }
  order.Add(kChatDeposit, {v1::PRIORITY_NORMAL, 5000, "waiting"});
  int asked = 0;
  auto count = [&](const Slot&) {
    ++asked;
    return true;
  };
  auto all = [](const QueueId&) { return true; };
  EXPECT_EQ(order.Pick(all, count)->key, "waiting");
  EXPECT_EQ(asked, 1);
  // Offered slots keep their places.
  EXPECT_EQ(order.PositionOf(kChatDeposit, {v1::PRIORITY_NORMAL, 5000, "waiting"}), 1001);
  EXPECT_EQ(order.Depth(kChatDeposit), 1001);
  // A declined offer puts its slot back in the walk, ahead of later ones.
  order.SetOffered(kChatDeposit, {v1::PRIORITY_NORMAL, 7, "offered-7"}, false);
  EXPECT_EQ(order.Pick(all, count)->key, "offered-7");
  // A removed slot is not brought back by marking it, nor is an absent one.
  order.Remove(kChatDeposit, {v1::PRIORITY_NORMAL, 7, "offered-7"});
  order.SetOffered(kChatDeposit, {v1::PRIORITY_NORMAL, 7, "offered-7"}, false);
  order.SetOffered(kChatSecurity, {v1::PRIORITY_NORMAL, 1, "absent"}, false);
  EXPECT_EQ(order.Pick(all, count)->key, "waiting");
  EXPECT_EQ(order.queues().count(kChatSecurity), 0u);
  // Offering the last waiting slot leaves nothing to pick.
  order.SetOffered(kChatDeposit, {v1::PRIORITY_NORMAL, 5000, "waiting"}, true);
  EXPECT_FALSE(order.Pick(all, count).has_value());
}

TEST(QueueOrderTest, PositionsStayRightThroughRandomAddsAndRemoves) {
  // The order-statistics tree against a plain ordered set walked from the
  // start, through a random mix of adds, removes and offered marks; Pick
  // against the first slot of the set not marked offered.
  QueueOrder order;
  std::set<Slot> reference;
  std::set<Slot> offered;
  std::mt19937 random(7);
  const v1::Priority priorities[] = {v1::PRIORITY_NORMAL, v1::PRIORITY_HIGH,
                                     v1::PRIORITY_URGENT};
  for (int step = 0; step < 3000; ++step) {
    Slot slot{priorities[random() % 3], static_cast<int64_t>(random() % 50),
              "k" + std::to_string(random() % 200)};
    switch (random() % 4) {
      case 0:
        order.Remove(kChatDeposit, slot);
        reference.erase(slot);
        offered.erase(slot);
        break;
      case 1:
        // Marks change what Pick walks, never places.
        if (reference.count(slot)) {
          const bool mark = random() % 2 == 0;
          order.SetOffered(kChatDeposit, slot, mark);
          if (mark) {
            offered.insert(slot);
          } else {
            offered.erase(slot);
          }
        }
        break;
      default:
        order.Add(kChatDeposit, slot);
        reference.insert(slot);
    }
    ASSERT_EQ(order.Depth(kChatDeposit), static_cast<int>(reference.size()));
    if (step % 100 != 0) continue;
    int expected = 0;
    for (const Slot& s : reference) {
      ASSERT_EQ(order.PositionOf(kChatDeposit, s), ++expected) << s.key;
    }
    std::optional<Slot> first_not_offered;
    for (const Slot& s : reference) {
      if (!offered.count(s)) {
        first_not_offered = s;
        break;
      }
    }
    std::optional<Slot> picked = order.Pick([](const QueueId&) { return true; },
                                            [](const Slot&) { return true; });
    ASSERT_EQ(picked.has_value(), first_not_offered.has_value());
    if (picked.has_value()) EXPECT_EQ(picked->key, first_not_offered->key);
    Slot absent{v1::PRIORITY_NORMAL, 99, "absent"};
    EXPECT_EQ(order.PositionOf(kChatDeposit, absent), 0);
  }
}

}  // namespace
}  // namespace switchboard::routing
