#include "services/routing/eligibility.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

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

// Whether a pool holding only `agent` offers it a session of `queue`.
bool Offered(const presence::v1::Agent& agent, const QueueId& queue) {
  AgentPool pool;
  pool.Upsert(agent);
  return !pool.SessionCandidates(queue, {}).empty();
}

int EligibleCount(const presence::v1::Agent& agent, const QueueId& queue) {
  AgentPool pool;
  pool.Upsert(agent);
  return pool.Count(queue).eligible;
}

TEST(EligibilityTest, StatusSkillsLanguageAndChannelDecide) {
  EXPECT_TRUE(Offered(Agent("a", 1), kChatDepositZh));
  // zh-CN serves zh-TW: the primary subtag matches.
  EXPECT_EQ(PrimaryLanguage("zh-TW"), "zh");
  EXPECT_EQ(PrimaryLanguage("EN"), "en");
  presence::v1::Agent away = Agent("a", 1);
  away.set_status(presence::v1::AGENT_STATUS_AWAY);
  EXPECT_EQ(EligibleCount(away, kChatDepositZh), 0);
  EXPECT_EQ(EligibleCount(Agent("a", 1),
                          {v1::ENTRY_KIND_SESSION, CHANNEL_CHAT, CATEGORY_WITHDRAWAL, "zh"}),
            0);
  EXPECT_EQ(EligibleCount(Agent("a", 1),
                          {v1::ENTRY_KIND_SESSION, CHANNEL_CHAT, CATEGORY_DEPOSIT, "en"}),
            0);
  EXPECT_EQ(EligibleCount(Agent("a", 1),
                          {v1::ENTRY_KIND_SESSION, CHANNEL_EMAIL, CATEGORY_DEPOSIT, "zh"}),
            0);
  EXPECT_EQ(EligibleCount(Agent("a", 1, /*chat_capacity=*/0), kChatDepositZh), 0);
  // Eligible but full.
  EXPECT_EQ(EligibleCount(Agent("a", 1, 2, 2), kChatDepositZh), 1);
  EXPECT_FALSE(Offered(Agent("a", 1, 2, 2), kChatDepositZh));
  EXPECT_TRUE(Offered(Agent("a", 1, 2, 1), kChatDepositZh));
  // Two tags of one language count once.
  presence::v1::Agent bilingual = Agent("a", 1);
  bilingual.mutable_profile()->mutable_skills()->add_languages("zh-TW");
  EXPECT_EQ(EligibleCount(bilingual, kChatDepositZh), 1);
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
  // A target is the only candidate, and only while free.
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

TEST(EligibilityTest, AnAgentWithAReservationBeingMadeTakesNoOtherUntilUnclaimed) {
  AgentPool pool;
  pool.Upsert(Agent("a", 5, 2));
  pool.Upsert(Agent("b", 1, 1));
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, {}), (std::vector<std::string>{"a", "b"}));
  pool.Claim("a", CHANNEL_CHAT);
  EXPECT_FALSE(pool.HasRoom("a", CHANNEL_CHAT));  // though one of two is free
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, {}), (std::vector<std::string>{"b"}));
  EXPECT_EQ(pool.Count(kChatDepositZh).available, 1);
  // Presence's report of the agent keeps the claim in force.
  pool.Upsert(Agent("a", 5, 2));
  EXPECT_FALSE(pool.HasRoom("a", CHANNEL_CHAT));
  pool.Unclaim("a", CHANNEL_CHAT);
  EXPECT_TRUE(pool.HasRoom("a", CHANNEL_CHAT));
  EXPECT_EQ(pool.SessionCandidates(kChatDepositZh, {}), (std::vector<std::string>{"a", "b"}));
  // A claim outlives the agent leaving the view, and ends without it.
  pool.Claim("a", CHANNEL_CHAT);
  pool.Remove("a");
  pool.Upsert(Agent("a", 5, 2));
  EXPECT_FALSE(pool.HasRoom("a", CHANNEL_CHAT));
  pool.Remove("a");
  pool.Unclaim("a", CHANNEL_CHAT);
  pool.Upsert(Agent("a", 5, 2));
  EXPECT_TRUE(pool.HasRoom("a", CHANNEL_CHAT));
  // Not in the view, or no such channel: no room.
  EXPECT_FALSE(pool.HasRoom("nobody", CHANNEL_CHAT));
  EXPECT_FALSE(pool.HasRoom("a", CHANNEL_EMAIL));
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

TEST(EligibilityTest, AFewCandidatesOfManyLongestIdleFirstPreferredWherever) {
  AgentPool pool;
  for (int i = 0; i < 1000; ++i) pool.Upsert(Agent("agent-" + std::to_string(i), i));
  std::vector<std::string> candidates = pool.SessionCandidates(kChatDepositZh, {});
  ASSERT_EQ(candidates.size(), AgentPool::kMaxCandidates);
  EXPECT_EQ(candidates[0], "agent-999");
  EXPECT_EQ(candidates[15], "agent-984");
  // The preferred agent comes first even when far down the idle order.
  OfferRules rules;
  rules.preferred_agent_id = "agent-3";
  candidates = pool.SessionCandidates(kChatDepositZh, rules);
  ASSERT_EQ(candidates.size(), AgentPool::kMaxCandidates);
  EXPECT_EQ(candidates[0], "agent-3");
  EXPECT_EQ(candidates[1], "agent-999");
  EXPECT_EQ(pool.Count(kChatDepositZh).available, 1000);
}

// What SessionCandidates, Count and AnyAvailable answer, worked out by
// walking every agent as routing did before the index.
struct Walked {
  std::vector<std::string> candidates;
  int eligible = 0;
  int available = 0;
};

using Claims = std::set<std::pair<std::string, common::v1::Channel>>;

Walked Walk(const std::map<std::string, presence::v1::Agent>& agents, const Claims& claims,
            const QueueId& queue, const OfferRules& rules) {
  Walked walked;
  std::vector<Candidate> free;
  for (const auto& [id, agent] : agents) {
    if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) continue;
    const auto& skills = agent.profile().skills();
    bool category = false, language = false;
    for (int c : skills.categories()) category |= c == queue.category;
    for (const std::string& l : skills.languages()) language |= PrimaryLanguage(l) == queue.language;
    const presence::v1::ChannelCapacity* capacity = nullptr;
    for (const auto& c : agent.profile().capacities()) {
      if (c.channel() == queue.channel) capacity = &c;
    }
    if (!category || !language || capacity == nullptr || capacity->capacity() <= 0) continue;
    ++walked.eligible;
    if (claims.count({id, queue.channel}) || capacity->load() >= capacity->capacity()) continue;
    ++walked.available;
    free.push_back(Candidate{protoutil::FromTimestamp(agent.idle_since()), id});
  }
  walked.candidates = Rank(std::move(free), rules);
  if (walked.candidates.size() > AgentPool::kMaxCandidates) {
    walked.candidates.resize(AgentPool::kMaxCandidates);
  }
  return walked;
}

TEST(EligibilityTest, TheIndexAnswersAsAWalkOfEveryAgentWouldThroughRandomChangesAndClaims) {
  std::mt19937 random(11);
  const common::v1::Category categories[] = {CATEGORY_DEPOSIT, CATEGORY_WITHDRAWAL};
  const common::v1::Channel channels[] = {CHANNEL_CHAT, CHANNEL_EMAIL};
  const char* languages[] = {"zh-CN", "zh-TW", "en", "en-GB"};
  const presence::v1::AgentStatus statuses[] = {presence::v1::AGENT_STATUS_ONLINE,
                                                presence::v1::AGENT_STATUS_ONLINE,
                                                presence::v1::AGENT_STATUS_AWAY};
  AgentPool pool;
  std::map<std::string, presence::v1::Agent> agents;
  Claims claims;
  for (int step = 0; step < 4000; ++step) {
    const std::string id = "agent-" + std::to_string(random() % 40);
    const int action = random() % 12;
    if (action == 10 || action == 11) {
      const common::v1::Channel channel = channels[random() % 2];
      if (action == 10) {
        pool.Claim(id, channel);
        claims.insert({id, channel});
      } else {
        pool.Unclaim(id, channel);
        claims.erase({id, channel});
      }
    } else if (action == 0) {
      pool.Remove(id);
      agents.erase(id);
    } else if (action == 1 && agents.count(id)) {
      const common::v1::Channel channel = channels[random() % 2];
      pool.MarkFull(id, channel);
      for (auto& c : *agents[id].mutable_profile()->mutable_capacities()) {
        if (c.channel() == channel) c.set_load(std::max(c.load(), c.capacity()));
      }
    } else {
      presence::v1::Agent agent;
      agent.set_agent_id(id);
      agent.set_status(statuses[random() % 3]);
      auto* skills = agent.mutable_profile()->mutable_skills();
      for (auto category : categories) {
        if (random() % 2) skills->add_categories(category);
      }
      for (const char* language : languages) {
        if (random() % 3 == 0) skills->add_languages(language);
      }
      for (auto channel : channels) {
        if (random() % 3 == 0) continue;
        auto* capacity = agent.mutable_profile()->add_capacities();
        capacity->set_channel(channel);
        capacity->set_capacity(random() % 3);
        capacity->set_load(random() % 3);
      }
      protoutil::ToTimestamp(absl::FromUnixSeconds(random() % 20), agent.mutable_idle_since());
      pool.Upsert(agent);
      agents[id] = agent;
    }
    if (step % 20 != 0) continue;
    OfferRules rules;
    for (int i = 0; i < 3; ++i) {
      const std::string someone = "agent-" + std::to_string(random() % 40);
      switch (random() % 4) {
        case 0: rules.excluded.push_back(someone); break;
        case 1: rules.timed_out.push_back(someone); break;
        case 2: rules.preferred_agent_id = someone; break;
        default: break;
      }
    }
    if (random() % 10 == 0) rules.target_agent_id = "agent-" + std::to_string(random() % 40);
    std::set<QueueId> servable;
    for (auto category : categories) {
      for (auto channel : channels) {
        for (const char* language : {"zh", "en"}) {
          const QueueId queue{v1::ENTRY_KIND_SESSION, channel, category, language};
          const Walked walked = Walk(agents, claims, queue, rules);
          ASSERT_EQ(pool.SessionCandidates(queue, rules), walked.candidates) << step;
          ASSERT_EQ(pool.Count(queue).eligible, walked.eligible) << step;
          ASSERT_EQ(pool.Count(queue).available, walked.available) << step;
          ASSERT_EQ(pool.AnyAvailable(queue), walked.available > 0) << step;
          if (walked.eligible > 0) servable.insert(queue);
        }
      }
    }
    ASSERT_EQ(pool.ServableQueues(), servable) << step;
    for (auto channel : channels) {
      bool room = false;
      if (auto it = agents.find(id);
          it != agents.end() && it->second.status() == presence::v1::AGENT_STATUS_ONLINE) {
        for (const auto& c : it->second.profile().capacities()) {
          if (c.channel() == channel) {
            room = !claims.count({id, channel}) && c.load() < c.capacity();
          }
        }
      }
      ASSERT_EQ(pool.HasRoom(id, channel), room) << step;
    }
  }
}

}  // namespace
}  // namespace switchboard::routing
