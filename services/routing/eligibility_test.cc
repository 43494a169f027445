#include "services/routing/eligibility.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"

namespace switchboard::routing {
namespace {

using common::v1::CATEGORY_DEPOSIT;
using common::v1::CATEGORY_WITHDRAWAL;
using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;

const QueueId kChatDepositZh{v1::ENTRY_KIND_SESSION, CHANNEL_CHAT, CATEGORY_DEPOSIT, "zh"};

presence::v1::Agent Agent(const std::string& id, int idle_minutes, int chat_capacity = 2,
                          int chat_load = 0) {
  presence::v1::Agent agent;
  agent.set_agent_id(id);
  agent.set_status(presence::v1::AGENT_STATUS_ONLINE);
  agent.mutable_profile()->mutable_skills()->add_categories(CATEGORY_DEPOSIT);
  agent.mutable_profile()->mutable_skills()->add_languages("zh-CN");
  auto* chat = agent.mutable_profile()->add_capacities();
  chat->set_channel(CHANNEL_CHAT);
  chat->set_capacity(chat_capacity);
  chat->set_load(chat_load);
  protoutil::ToTimestamp(absl::FromUnixSeconds(1'000'000) - absl::Minutes(idle_minutes),
                         agent.mutable_idle_since());
  return agent;
}

TEST(EligibilityTest, StatusSkillsLanguageAndChannelDecide) {
  EXPECT_TRUE(Eligible(Agent("a", 1), kChatDepositZh));
  // zh-CN serves zh-TW: the primary subtag matches.
  EXPECT_EQ(PrimaryLanguage("zh-TW"), "zh");
  EXPECT_EQ(PrimaryLanguage("EN"), "en");
  presence::v1::Agent away = Agent("a", 1);
  away.set_status(presence::v1::AGENT_STATUS_AWAY);
  EXPECT_FALSE(Eligible(away, kChatDepositZh));
  EXPECT_FALSE(Eligible(Agent("a", 1), {v1::ENTRY_KIND_SESSION, CHANNEL_CHAT,
                                        CATEGORY_WITHDRAWAL, "zh"}));
  EXPECT_FALSE(Eligible(Agent("a", 1), {v1::ENTRY_KIND_SESSION, CHANNEL_CHAT, CATEGORY_DEPOSIT,
                                        "en"}));
  EXPECT_FALSE(Eligible(Agent("a", 1), {v1::ENTRY_KIND_SESSION, CHANNEL_EMAIL,
                                        CATEGORY_DEPOSIT, "zh"}));
  EXPECT_FALSE(Eligible(Agent("a", 1, /*chat_capacity=*/0), kChatDepositZh));
  // Eligible but full.
  EXPECT_TRUE(Eligible(Agent("a", 1, 2, 2), kChatDepositZh));
  EXPECT_FALSE(HasFreeCapacity(Agent("a", 1, 2, 2), CHANNEL_CHAT));
  EXPECT_TRUE(HasFreeCapacity(Agent("a", 1, 2, 1), CHANNEL_CHAT));
  EXPECT_FALSE(HasFreeCapacity(Agent("a", 1), CHANNEL_EMAIL));
}

TEST(EligibilityTest, LongestIdleFirstTimedOutLastPreferredFirstExcludedNever) {
  AgentPool pool;
  pool.Upsert(Agent("recent", 1));
  pool.Upsert(Agent("idle", 30));
  pool.Upsert(Agent("idler", 60));
  pool.Upsert(Agent("full", 90, 1, 1));
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, {}),
            (std::vector<std::string>{"idler", "idle", "recent"}));
  OfferRules rules;
  rules.excluded = {"idler"};
  rules.timed_out = {"idle"};
  rules.preferred_agent_id = "recent";
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, rules), (std::vector<std::string>{"recent"}));
  // Only agents whose offer timed out are left: they come back.
  rules.excluded = {"idler", "recent"};
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, rules), (std::vector<std::string>{"idle"}));
  // A target is the only candidate, eligible or not.
  OfferRules targeted;
  targeted.target_agent_id = "idle";
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, targeted),
            (std::vector<std::string>{"idle"}));
  targeted.target_agent_id = "full";
  EXPECT_TRUE(pool.SessionCandidates(kChatDepositZh, targeted).empty());
}

TEST(EligibilityTest, ThePoolFollowsChangesAndPresenceRefusals) {
  AgentPool pool;
  EXPECT_FALSE(pool.AnyAvailable(kChatDepositZh));
  pool.Upsert(Agent("a", 1, 1));
  EXPECT_TRUE(pool.AnyAvailable(kChatDepositZh));
  EXPECT_EQ(pool.Count(kChatDepositZh).eligible, 1);
  EXPECT_EQ(pool.Count(kChatDepositZh).available, 1);
  // Presence refused a reservation: full until presence says otherwise.
  pool.MarkFull("a", CHANNEL_CHAT);
  EXPECT_FALSE(pool.AnyAvailable(kChatDepositZh));
  EXPECT_EQ(pool.Count(kChatDepositZh).eligible, 1);
  EXPECT_EQ(pool.Count(kChatDepositZh).available, 0);
  pool.Upsert(Agent("a", 1, 1));
  EXPECT_TRUE(pool.AnyAvailable(kChatDepositZh));
  EXPECT_EQ(pool.Ids(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(pool.ServableQueues(), (std::set<QueueId>{kChatDepositZh}));
  pool.Remove("a");
  EXPECT_EQ(pool.Find("a"), nullptr);
  EXPECT_TRUE(pool.ServableQueues().empty());
  pool.Upsert(Agent("b", 1));
  pool.Clear();
  EXPECT_TRUE(pool.Ids().empty());
}

TEST(EligibilityTest, ComplaintsGoToWatchingOnlineSupervisorsLeastRecentFirst) {
  AgentPool pool;
  pool.Upsert(Agent("sup-a", 1, 0));
  pool.Upsert(Agent("sup-b", 1, 0));
  pool.Upsert(Agent("sup-c", 1, 0));
  presence::v1::Agent away = Agent("sup-away", 1, 0);
  away.set_status(presence::v1::AGENT_STATUS_AWAY);
  pool.Upsert(away);
  const std::map<std::string, int> watching{
      {"sup-a", 1}, {"sup-b", 2}, {"sup-c", 1}, {"sup-away", 1}, {"sup-gone", 1}};
  const std::map<std::string, absl::Time> last_accept{{"sup-a", absl::FromUnixSeconds(20)},
                                                      {"sup-b", absl::FromUnixSeconds(10)}};
  // Never accepted counts as longest ago; then sup-b before sup-a.
  EXPECT_EQ(ComplaintCandidates(watching, pool, {}, last_accept, {}),
            (std::vector<std::string>{"sup-c", "sup-b", "sup-a"}));
  // One open complaint offer at a time.
  EXPECT_EQ(ComplaintCandidates(watching, pool, {"sup-c"}, last_accept, {}),
            (std::vector<std::string>{"sup-b", "sup-a"}));
  OfferRules rules;
  rules.excluded = {"sup-b"};
  EXPECT_EQ(ComplaintCandidates(watching, pool, {"sup-c"}, last_accept, rules),
            (std::vector<std::string>{"sup-a"}));
}

}  // namespace
}  // namespace switchboard::routing
