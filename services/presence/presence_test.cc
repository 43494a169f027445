#include "services/presence/presence.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/limits/retry_after.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/presence/held_store.h"
#include "services/presence/sqlite_store.h"

namespace switchboard::presence {
namespace {

using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;

// Keeps what was committed in memory, checking capacity guards as the real
// stores do; can be told to fail commits.
class FakePresenceStore : public PresenceStore {
 public:
  mutable absl::Mutex mu_;
  absl::StatusOr<Contents> Load() override {
    absl::MutexLock lock(&mu_);
    Contents contents;
    for (const auto& [id, agent] : agents_) contents.agents.push_back(agent);
    for (const auto& [id, r] : reservations_) contents.reservations.push_back(r);
    return contents;
  }
  absl::Status Admit() const override {
    absl::MutexLock lock(&mu_);
    return admit_;
  }
  void set_admit(absl::Status status) {
    absl::MutexLock lock(&mu_);
    admit_ = std::move(status);
  }
  void Apply(PresenceWrite write, std::function<void(absl::Status)> done) override {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (fail_) {
        status = absl::InternalError("disk full");
      } else {
        std::map<std::string, ReservationRecord> reservations = reservations_;
        for (const auto& r : write.deleted_reservations) reservations.erase(r.session_id);
        for (const auto& r : write.upserted_reservations) reservations[r.session_id] = r;
        for (const CapacityGuard& guard : write.capacity_guards) {
          int held = 0;
          for (const auto& [id, r] : reservations) {
            held += r.agent_id == guard.agent_id && r.channel == guard.channel;
          }
          if (held > guard.capacity) status = CapacityExceeded(guard);
        }
        if (status.ok()) {
          for (const auto& a : write.agents) agents_[a.agent_id] = a;
          reservations_ = std::move(reservations);
          for (const auto& e : write.events) events_.push_back(e);
        }
      }
    }
    done(status);
  }
  std::vector<events::v1::Event> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }
  // As if a previous run had stored `agent`.
  void Seed(const AgentRecord& agent) {
    absl::MutexLock lock(&mu_);
    agents_[agent.agent_id] = agent;
  }

 private:
  std::map<std::string, AgentRecord> agents_;
  std::map<std::string, ReservationRecord> reservations_;
  std::vector<events::v1::Event> events_;
  bool fail_ = false;
  absl::Status admit_;
};

class RecordingListener : public PresenceListener {
 public:
  void OnChange(const AgentChange& change) override {
    absl::MutexLock lock(&mu_);
    changes.push_back(change);
  }
  absl::Mutex mu_;
  std::vector<AgentChange> changes;
};

v1::AgentProfile ChatProfile(int chat_capacity) {
  v1::AgentProfile profile;
  profile.set_display_name("Li Wei 李伟");
  profile.mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  profile.mutable_skills()->add_languages("zh-CN");
  profile.mutable_skills()->add_languages("en");
  v1::ChannelCapacity* chat = profile.add_capacities();
  chat->set_channel(CHANNEL_CHAT);
  chat->set_capacity(chat_capacity);
  return profile;
}

class PresenceTest : public ::testing::Test {
 protected:
  PresenceTest() : metrics_(registry_) { Restart(); }

  void Restart() {
    presence_ = std::make_unique<Presence>(&store_, &clock_, &metrics_, options_);
    ASSERT_TRUE(presence_->Load().ok());
  }

  // A supervisor grants `id` DEPOSIT chats in Chinese and English, then the
  // agent goes online.
  AgentRecord GoOnline(const std::string& id, int chat_capacity = 3) {
    EXPECT_TRUE(presence_->SetProfile(id, ChatProfile(chat_capacity), "sup-1").ok());
    auto agent = presence_->SetStatus({id, v1::AGENT_STATUS_ONLINE, {}, "laptop"});
    EXPECT_TRUE(agent.ok()) << agent.status();
    return *agent;
  }

  static v1::ChannelCapacity Chat(int capacity) {
    v1::ChannelCapacity chat;
    chat.set_channel(CHANNEL_CHAT);
    chat.set_capacity(capacity);
    return chat;
  }

  int ChatLoad(const std::string& id) {
    const AgentRecord agent = *presence_->GetAgent(id);
    for (const auto& c : agent.profile.capacities()) {
      if (c.channel() == CHANNEL_CHAT) return c.load();
    }
    return -1;
  }

  prometheus::Registry registry_;
  PresenceMetrics metrics_;
  FakeClock clock_;
  FakePresenceStore store_;
  PresenceOptions options_;
  std::unique_ptr<Presence> presence_;
};

TEST_F(PresenceTest, ASupervisorSetsTheProfileAndTheAgentTheStatus) {
  AgentRecord agent = GoOnline("agent-1");
  EXPECT_EQ(agent.status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(agent.lease_expires_at, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(agent.profile.skills().languages(0), "zh-cn");
  EXPECT_EQ(agent.profile.capacities(0).capacity(), 3);
  EXPECT_EQ(agent.profile.capacities(0).max_capacity(), 3);
  EXPECT_EQ(agent.profile_set_by, "sup-1");
  EXPECT_EQ(agent.profile_set_at, clock_.Now());
  ASSERT_EQ(store_.events().size(), 2u);
  const events::v1::Event profile = store_.events()[0];
  EXPECT_EQ(profile.type(), "presence.agent_profile_set");
  EXPECT_EQ(profile.entity_id(), "agent-1");
  EXPECT_EQ(profile.agent_profile_set().set_by(), "sup-1");
  EXPECT_EQ(profile.agent_profile_set().skills().categories(0), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(profile.agent_profile_set().capacities(0).max_capacity(), 3);
  const events::v1::Event status = store_.events()[1];
  EXPECT_EQ(status.type(), "presence.agent_status_changed");
  EXPECT_EQ(status.agent_status_changed().status(), v1::AGENT_STATUS_ONLINE);

  // The same status again only renews the lease: no event, no revision.
  clock_.Advance(absl::Seconds(5));
  auto again = presence_->SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {}, ""});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->revision, agent.revision);
  EXPECT_EQ(again->lease_expires_at, clock_.Now() + absl::Seconds(30));
  // The same profile again (a retry) changes nothing either.
  ASSERT_TRUE(presence_->SetProfile("agent-1", ChatProfile(3), "sup-2").ok());
  EXPECT_EQ(presence_->GetAgent("agent-1")->profile_set_by, "sup-1");
  EXPECT_EQ(store_.events().size(), 2u);
  EXPECT_EQ(metrics_.agents(v1::AGENT_STATUS_ONLINE).Value(), 1);
}

TEST_F(PresenceTest, AgentsLowerTheirCapacityWithinTheLimitAndNeverRaiseIt) {
  GoOnline("agent-1", 3);
  // Lower, then back up to the limit: the agent's call.
  auto lowered = presence_->SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {Chat(1)}, ""});
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  EXPECT_EQ(lowered->profile.capacities(0).capacity(), 1);
  EXPECT_EQ(lowered->profile.capacities(0).max_capacity(), 3);
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  EXPECT_EQ(presence_->Reserve("agent-1", "s-2", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {Chat(3)}, ""}).ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-2", CHANNEL_CHAT, std::nullopt).ok());
  // Above the limit, or on a channel never granted: refused, nothing changes.
  const size_t events_before = store_.events().size();
  const AgentRecord before = *presence_->GetAgent("agent-1");
  absl::Status above =
      presence_->SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {Chat(4)}, ""}).status();
  EXPECT_EQ(above.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(above.message().find("capacities.capacity: at most 3 on CHANNEL_CHAT"),
            std::string::npos);
  v1::ChannelCapacity email;
  email.set_channel(CHANNEL_EMAIL);
  email.set_capacity(1);
  EXPECT_EQ(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {email}, ""}).status().code(),
            absl::StatusCode::kPermissionDenied);
  const AgentRecord after = *presence_->GetAgent("agent-1");
  EXPECT_EQ(after.status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(after.revision, before.revision);
  EXPECT_EQ(store_.events().size(), events_before);
  // An agent no supervisor has set up can go online, with nothing to take.
  EXPECT_EQ(presence_->SetStatus({"newcomer", v1::AGENT_STATUS_ONLINE, {Chat(1)}, ""})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(presence_->GetAgent("newcomer").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(presence_->SetStatus({"newcomer", v1::AGENT_STATUS_ONLINE, {}, ""}).ok());
  EXPECT_EQ(presence_->Reserve("newcomer", "s-3", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A new grant resets the capacity to the new limit; the load stays.
  ASSERT_TRUE(presence_->SetProfile("agent-1", ChatProfile(2), "sup-2").ok());
  const AgentRecord regranted = *presence_->GetAgent("agent-1");
  EXPECT_EQ(regranted.profile.capacities(0).capacity(), 2);
  EXPECT_EQ(regranted.profile.capacities(0).max_capacity(), 2);
  EXPECT_EQ(regranted.profile_set_by, "sup-2");
  EXPECT_EQ(ChatLoad("agent-1"), 2);
  // Limits and choices survive a restart.
  ASSERT_TRUE(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {Chat(1)}, ""}).ok());
  Restart();
  const AgentRecord reloaded = *presence_->GetAgent("agent-1");
  EXPECT_EQ(reloaded.profile.capacities(0).capacity(), 1);
  EXPECT_EQ(reloaded.profile.capacities(0).max_capacity(), 2);
  EXPECT_EQ(reloaded.profile_set_by, "sup-2");
}

TEST_F(PresenceTest, LeaseLapsesOnceWhenNoDeviceRenewsIt) {
  GoOnline("agent-1");
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(*presence_->ExpireDue(), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*presence_->ExpireDue(), 1);
  EXPECT_EQ(presence_->GetAgent("agent-1")->status, v1::AGENT_STATUS_OFFLINE);
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(*presence_->ExpireDue(), 0);

  int lease_events = 0;
  for (const auto& e : store_.events()) {
    if (e.agent_status_changed().reason() == v1::CHANGE_REASON_LEASE_EXPIRED) ++lease_events;
  }
  EXPECT_EQ(lease_events, 1);
  EXPECT_EQ(metrics_.leases_expired->Value(), 1);
  EXPECT_EQ(presence_->Heartbeat("agent-1", "phone").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PresenceTest, AnyDeviceKeepsTheLeaseAliveWithoutFlapping) {
  GoOnline("agent-1");
  const size_t events_before = store_.events().size();
  // Two devices renew in turn, each every 20 s: the lease never lapses even
  // though each device alone would miss it.
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(absl::Seconds(10));
    ASSERT_TRUE(presence_->Heartbeat("agent-1", i % 2 ? "phone" : "laptop").ok());
    ASSERT_EQ(*presence_->ExpireDue(), 0);
  }
  EXPECT_EQ(presence_->GetAgent("agent-1")->status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(store_.events().size(), events_before);
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(*presence_->ExpireDue(), 1);
}

TEST_F(PresenceTest, HeartbeatOfUnknownAgentIsNotFound) {
  EXPECT_EQ(presence_->Heartbeat("ghost", "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PresenceTest, ConcurrentReservationsNeverExceedCapacity) {
  GoOnline("agent-1", /*chat_capacity=*/3);
  std::atomic<int> granted{0};
  std::atomic<int> exhausted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        auto r = presence_->Reserve("agent-1", absl::StrCat("s-", t, "-", i), CHANNEL_CHAT,
                                    std::nullopt);
        if (r.ok()) {
          granted.fetch_add(1);
        } else if (r.status().code() == absl::StatusCode::kResourceExhausted) {
          exhausted.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 3);
  EXPECT_EQ(exhausted.load(), 16 * 20 - 3);
  EXPECT_EQ(ChatLoad("agent-1"), 3);
  EXPECT_EQ(metrics_.rejected_at_capacity->Value(), 16 * 20 - 3);
}

// Two presences on one store, as two replicas on one database would be:
// the second decides from memory that no longer matches the store, and the
// store's capacity guard refuses its reservation, after which it stops
// writing (replicas of presence are not supported; docs/scaling.md).
TEST_F(PresenceTest, TheStoreRefusesAReservationDecidedFromStaleMemory) {
  GoOnline("agent-1", /*chat_capacity=*/1);
  Presence stale(&store_, &clock_, &metrics_, options_);
  ASSERT_TRUE(stale.Load().ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());

  auto refused = stale.Reserve("agent-1", "s-2", CHANNEL_CHAT, std::nullopt);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(store_.Load()->reservations.size(), 1u);
  EXPECT_EQ(stale.SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {}, "laptop"}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(PresenceTest, ReservationRulesAndIdempotency) {
  GoOnline("agent-1", 2);
  GoOnline("agent-2", 2);
  auto first = presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, absl::Seconds(20));
  ASSERT_TRUE(first.ok());
  auto retry = presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, absl::Seconds(20));
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  EXPECT_EQ(presence_->Reserve("agent-2", "s-1", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(presence_->Reserve("agent-1", "s-2", CHANNEL_EMAIL, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(presence_->Reserve("nobody", "s-3", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(presence_->Reserve("agent-1", "s-3", CHANNEL_CHAT, absl::Hours(1)).status().code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(presence_->SetStatus({"agent-2", v1::AGENT_STATUS_AWAY, {}, ""}).ok());
  EXPECT_EQ(presence_->Reserve("agent-2", "s-4", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PresenceTest, LapsedLeaseRefusesReservationsBeforeTheSweep) {
  GoOnline("agent-1");
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PresenceTest, UnconfirmedReservationsExpireAndConfirmedOnesHold) {
  GoOnline("agent-1", 3);
  ASSERT_TRUE(presence_->Reserve("agent-1", "offered", CHANNEL_CHAT, absl::Seconds(10)).ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "accepted", CHANNEL_CHAT, absl::Seconds(10)).ok());
  ASSERT_TRUE(presence_->Confirm("agent-1", "accepted").ok());
  ASSERT_TRUE(presence_->Heartbeat("agent-1", "").ok());
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(presence_->ExpireDue().ok());
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  EXPECT_EQ(presence_->Confirm("agent-1", "offered").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(metrics_.reservations_expired->Value(), 1);

  auto released = presence_->ReleaseCapacity("agent-1", "accepted");
  ASSERT_TRUE(released.ok());
  EXPECT_TRUE(released->released);
  EXPECT_EQ(ChatLoad("agent-1"), 0);
  EXPECT_EQ(released->agent.idle_since, clock_.Now());
  EXPECT_FALSE(presence_->ReleaseCapacity("agent-1", "accepted")->released);
}

TEST_F(PresenceTest, AProfileAgentsDeclaredBeforeLimitsKeepsItsCapacityAsTheLimit) {
  AgentRecord declared;
  declared.agent_id = "veteran";
  declared.profile = ChatProfile(4);
  declared.profile.mutable_capacities(0)->clear_max_capacity();
  store_.Seed(declared);
  Restart();
  const AgentRecord loaded = *presence_->GetAgent("veteran");
  EXPECT_EQ(loaded.profile.capacities(0).max_capacity(), 4);
  EXPECT_TRUE(loaded.profile_set_by.empty());
  ASSERT_TRUE(presence_->SetStatus({"veteran", v1::AGENT_STATUS_ONLINE, {Chat(4)}, ""}).ok());
  EXPECT_EQ(presence_->SetStatus({"veteran", v1::AGENT_STATUS_ONLINE, {Chat(5)}, ""})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(PresenceTest, ProfileUpdateKeepsLoadsOwnedByPresence) {
  GoOnline("agent-1", 3);
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  v1::AgentProfile profile = ChatProfile(5);
  profile.mutable_capacities(0)->set_load(99);
  ASSERT_TRUE(presence_->SetProfile("agent-1", profile, "sup-1").ok());
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  // A channel dropped while it holds a session keeps counting it.
  v1::AgentProfile email_only = ChatProfile(0);
  email_only.mutable_capacities(0)->set_channel(CHANNEL_EMAIL);
  ASSERT_TRUE(presence_->SetProfile("agent-1", email_only, "sup-1").ok());
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  ASSERT_TRUE(presence_->ReleaseCapacity("agent-1", "s-1").ok());
  EXPECT_EQ(ChatLoad("agent-1"), 0);
}

TEST_F(PresenceTest, BadInputIsRejectedWithTheFieldNamed) {
  auto set = [&](v1::AgentProfile profile) {
    return presence_->SetProfile("agent-1", profile, "sup-1").status();
  };
  v1::AgentProfile negative = ChatProfile(-1);
  EXPECT_NE(set(negative).message().find("profile.capacities.capacity"), std::string::npos);
  EXPECT_EQ(set(ChatProfile(101)).code(), absl::StatusCode::kInvalidArgument);
  v1::AgentProfile duplicate = ChatProfile(1);
  *duplicate.add_capacities() = duplicate.capacities(0);
  EXPECT_EQ(set(duplicate).code(), absl::StatusCode::kInvalidArgument);
  v1::AgentProfile unknown_category = ChatProfile(1);
  unknown_category.mutable_skills()->add_categories(static_cast<common::v1::Category>(999));
  EXPECT_EQ(set(unknown_category).code(), absl::StatusCode::kInvalidArgument);
  v1::AgentProfile bad_name = ChatProfile(1);
  bad_name.set_display_name("\xff\xfe");
  EXPECT_NE(set(bad_name).message().find("display_name"), std::string::npos);
  v1::AgentProfile bad_language = ChatProfile(1);
  bad_language.mutable_skills()->add_languages("english please");
  EXPECT_EQ(set(bad_language).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(presence_->SetStatus({"", v1::AGENT_STATUS_ONLINE, {}, ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(presence_->SetStatus({"a", static_cast<v1::AgentStatus>(42), {}, ""})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(presence_->GetAgent("agent-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_.events().empty());
}

TEST_F(PresenceTest, WatchersGetChangesAfterTheirSnapshotOnly) {
  GoOnline("agent-1");
  GoOnline("agent-2");
  ASSERT_TRUE(presence_->SetStatus({"agent-2", v1::AGENT_STATUS_OFFLINE, {}, ""}).ok());
  RecordingListener listener;
  Presence::Snapshot snapshot = presence_->Subscribe(&listener);
  ASSERT_EQ(snapshot.agents.size(), 1u);
  EXPECT_EQ(snapshot.agents[0].agent_id, "agent-1");

  ASSERT_TRUE(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_BUSY, {}, ""}).ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok() == false);
  ASSERT_TRUE(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {}, ""}).ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  presence_->Unsubscribe(&listener);
  ASSERT_TRUE(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {}, ""}).ok());

  absl::MutexLock lock(&listener.mu_);
  ASSERT_EQ(listener.changes.size(), 3u);
  EXPECT_EQ(listener.changes[0].agent.status, v1::AGENT_STATUS_BUSY);
  EXPECT_EQ(listener.changes[0].previous_status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(listener.changes[2].reason, v1::CHANGE_REASON_LOAD_CHANGED);
  EXPECT_GT(listener.changes[0].agent.revision, snapshot.revision);
  EXPECT_LT(listener.changes[0].agent.revision, listener.changes[1].agent.revision);
}

TEST_F(PresenceTest, FailedCommitStopsWritesInsteadOfServingUnsavedState) {
  GoOnline("agent-1");
  store_.set_fail(true);
  EXPECT_EQ(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {}, ""})
                .status()
                .code(),
            absl::StatusCode::kInternal);
  store_.set_fail(false);
  EXPECT_EQ(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kUnavailable);
  // A restart reloads what was saved.
  Restart();
  EXPECT_EQ(presence_->GetAgent("agent-1")->status, v1::AGENT_STATUS_ONLINE);
}

TEST_F(PresenceTest, RestartKeepsStateRecomputesLoadAndGrantsAFreshLease) {
  GoOnline("agent-1", 3);
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  ASSERT_TRUE(presence_->Confirm("agent-1", "s-1").ok());
  clock_.Advance(absl::Seconds(25));
  Restart();
  AgentRecord agent = *presence_->GetAgent("agent-1");
  EXPECT_EQ(agent.status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  EXPECT_EQ(agent.lease_expires_at, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(presence_->Reserve("agent-2", "s-1", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(presence_->Confirm("agent-1", "s-1").ok());
}

TEST_F(PresenceTest, ListFiltersAndPages) {
  for (int i = 0; i < 5; ++i) GoOnline(absl::StrCat("agent-", i));
  ASSERT_TRUE(presence_->SetStatus({"agent-3", v1::AGENT_STATUS_AWAY, {}, ""}).ok());
  Presence::ListFilter online;
  online.status = v1::AGENT_STATUS_ONLINE;
  online.language = "zh";
  online.channel = CHANNEL_CHAT;
  Presence::ListPage first = presence_->ListAgents(online, 2, "");
  ASSERT_EQ(first.agents.size(), 2u);
  EXPECT_EQ(first.last_agent_id, "agent-1");
  Presence::ListPage second = presence_->ListAgents(online, 2, first.last_agent_id);
  ASSERT_EQ(second.agents.size(), 2u);
  EXPECT_EQ(second.agents[0].agent_id, "agent-2");
  EXPECT_EQ(second.agents[1].agent_id, "agent-4");
  EXPECT_TRUE(second.last_agent_id.empty());
  online.channel = CHANNEL_EMAIL;
  EXPECT_TRUE(presence_->ListAgents(online, 10, "").agents.empty());
}

TEST_F(PresenceTest, ANewerHolderTakesTheReservationOverAndAnOldReleaseLeavesIt) {
  GoOnline("agent-1", 2);
  // Offer 5 reserved s-1; it expired and its release is late. Offer 9 of the
  // same session to the same agent reuses the reservation.
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, absl::Seconds(10), 5).ok());
  clock_.Advance(absl::Seconds(8));
  auto taken = presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, absl::Seconds(10), 9);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->reservation.holder_id, 9);
  EXPECT_EQ(taken->reservation.expires_at, clock_.Now() + absl::Seconds(10));
  EXPECT_EQ(ChatLoad("agent-1"), 1);

  auto late = presence_->ReleaseCapacity("agent-1", "s-1", /*holder_id=*/5);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->released);
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  // The reservation survives a restart with its holder.
  Restart();
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(presence_->ExpireDue().ok());
  EXPECT_EQ(ChatLoad("agent-1"), 1);
  auto own = presence_->ReleaseCapacity("agent-1", "s-1", /*holder_id=*/9);
  ASSERT_TRUE(own.ok());
  EXPECT_TRUE(own->released);
  EXPECT_EQ(ChatLoad("agent-1"), 0);
  EXPECT_EQ(presence_->Reserve("agent-1", "s-2", CHANNEL_CHAT, std::nullopt, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PresenceTest, ReconcileFreesWhatNobodyHoldsAndSparesNewerHolders) {
  GoOnline("agent-1", 3);
  GoOnline("agent-2", 3);
  // agent-1: an assignment routing lost track of (its release was lost), an
  // open offer, and an offer made after routing took its view.
  ASSERT_TRUE(presence_->Reserve("agent-1", "orphan", CHANNEL_CHAT, std::nullopt, 5).ok());
  ASSERT_TRUE(presence_->Confirm("agent-1", "orphan").ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "offered", CHANNEL_CHAT, std::nullopt, 6).ok());
  ASSERT_TRUE(presence_->Reserve("agent-1", "newer", CHANNEL_CHAT, std::nullopt, 12).ok());
  // agent-2: an assignment, and an accepted offer whose confirmation never
  // arrived.
  ASSERT_TRUE(presence_->Reserve("agent-2", "assigned", CHANNEL_CHAT, std::nullopt, 7).ok());
  ASSERT_TRUE(presence_->Confirm("agent-2", "assigned").ok());
  ASSERT_TRUE(presence_->Reserve("agent-2", "accepted", CHANNEL_CHAT, std::nullopt, 8).ok());
  const size_t events_before = store_.events().size();

  Presence::ReconcileCommand command;
  command.fence = 10;
  command.live = {
      {"agent-1", "offered", CHANNEL_CHAT, 6, false},
      {"agent-2", "assigned", CHANNEL_CHAT, 7, true},
      {"agent-2", "accepted", CHANNEL_CHAT, 8, true},
      // Routing holds this assignment but presence lost its reservation.
      {"agent-2", "lost", CHANNEL_CHAT, 9, true},
      // An offer whose reservation lapsed.
      {"agent-1", "lapsed-offer", CHANNEL_CHAT, 10, false},
  };
  absl::StatusOr<Presence::ReconcileResult> result = presence_->Reconcile(command);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->released.size(), 1u);
  EXPECT_EQ(result->released[0].session_id, "orphan");
  ASSERT_EQ(result->restored.size(), 1u);
  EXPECT_EQ(result->restored[0].session_id, "lost");
  EXPECT_TRUE(result->restored[0].assigned);
  EXPECT_EQ(result->confirmed, 1);
  ASSERT_EQ(result->missing.size(), 1u);
  EXPECT_EQ(result->missing[0].session_id, "lapsed-offer");

  EXPECT_EQ(ChatLoad("agent-1"), 2);  // offered, newer
  EXPECT_EQ(ChatLoad("agent-2"), 3);  // assigned, accepted, lost
  EXPECT_TRUE(presence_->Confirm("agent-2", "accepted").ok());
  EXPECT_TRUE(presence_->ReleaseCapacity("agent-2", "lost")->released);
  EXPECT_EQ(metrics_.reconciled_released->Value(), 1);
  EXPECT_EQ(metrics_.reconciled_restored->Value(), 1);
  std::vector<events::v1::AgentLoadChanged::Change> changes;
  const std::vector<events::v1::Event> events = store_.events();
  for (size_t i = events_before; i < events.size(); ++i) {
    changes.push_back(events[i].agent_load_changed().change());
  }
  EXPECT_NE(std::find(changes.begin(), changes.end(),
                      events::v1::AgentLoadChanged::CHANGE_RECONCILED_RELEASED),
            changes.end());
  EXPECT_NE(std::find(changes.begin(), changes.end(),
                      events::v1::AgentLoadChanged::CHANGE_RECONCILED_RESTORED),
            changes.end());

  // The same view again changes nothing.
  command.live.pop_back();
  result = presence_->Reconcile(command);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->released.empty());
  EXPECT_TRUE(result->restored.empty() || result->restored[0].session_id == "lost");
}

TEST_F(PresenceTest, ReconcileTouchesOnlyItsRangeOfAgents) {
  GoOnline("a", 2);
  GoOnline("m", 2);
  GoOnline("z", 2);
  for (const char* agent : {"a", "m", "z"}) {
    ASSERT_TRUE(
        presence_->Reserve(agent, std::string("s-") + agent, CHANNEL_CHAT, std::nullopt, 1).ok());
  }
  Presence::ReconcileCommand command;
  command.fence = 100;
  command.agent_id_from = "b";
  command.agent_id_to = "n";
  ASSERT_EQ(presence_->Reconcile(command)->released.size(), 1u);
  EXPECT_EQ(ChatLoad("a"), 1);
  EXPECT_EQ(ChatLoad("m"), 0);
  EXPECT_EQ(ChatLoad("z"), 1);
  command.agent_id_from = "";
  command.agent_id_to = "";
  ASSERT_EQ(presence_->Reconcile(command)->released.size(), 2u);
}

TEST_F(PresenceTest, ReconcileRejectsBadViewsNamingTheField) {
  GoOnline("agent-1", 2);
  ASSERT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt, 1).ok());
  auto reconcile = [&](Presence::ReconcileCommand command) {
    return presence_->Reconcile(command).status();
  };
  Presence::ReconcileCommand negative;
  negative.fence = -1;
  EXPECT_TRUE(absl::StrContains(reconcile(negative).message(), "fence"));
  Presence::ReconcileCommand outside;
  outside.agent_id_to = "agent-0";
  outside.live = {{"agent-1", "s-1", CHANNEL_CHAT, 1, false}};
  EXPECT_TRUE(absl::StrContains(reconcile(outside).message(), "live.agent_id"));
  Presence::ReconcileCommand twice;
  twice.live = {{"agent-1", "s-1", CHANNEL_CHAT, 1, false},
                {"agent-1", "s-1", CHANNEL_CHAT, 1, false}};
  EXPECT_TRUE(absl::StrContains(reconcile(twice).message(), "live.session_id"));
  Presence::ReconcileCommand no_channel;
  no_channel.live = {{"agent-1", "s-1", common::v1::CHANNEL_UNSPECIFIED, 1, true}};
  EXPECT_TRUE(absl::StrContains(reconcile(no_channel).message(), "live.channel"));
  Presence::ReconcileCommand backwards;
  backwards.agent_id_from = "z";
  backwards.agent_id_to = "a";
  EXPECT_TRUE(absl::StrContains(reconcile(backwards).message(), "agent_id_to"));
  EXPECT_EQ(ChatLoad("agent-1"), 1);
}

TEST_F(PresenceTest, RefusedAdmissionDecidesNothing) {
  GoOnline("agent-1", 2);
  const size_t events_before = store_.events().size();
  store_.set_admit(limits::Exhausted("storage busy", absl::Seconds(1)));
  absl::Status refused =
      presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limits::RetryAfterSeconds(refused), 1);
  EXPECT_EQ(presence_->SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {}, ""})
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ChatLoad("agent-1"), 0);
  EXPECT_EQ(store_.events().size(), events_before);
  // Not a storage failure: writes go on once there is room.
  store_.set_admit(absl::OkStatus());
  EXPECT_TRUE(presence_->Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
}

// Presence on a real SQLite file whose commits the test can hold and fail.
class DurableRetryTest : public ::testing::Test {
 protected:
  DurableRetryTest()
      : db_(*storage::Database::OpenMigrated({storage::MakeTempDir() + "/presence.db"},
                                             PresenceMigrations())),
        committer_(db_.get()),
        sqlite_(&committer_, "switchboard.presence.v1", nullptr),
        store_(&sqlite_),
        metrics_(registry_),
        presence_(&store_, &clock_, &metrics_, PresenceOptions()) {
    EXPECT_TRUE(presence_.Load().ok());
    EXPECT_TRUE(presence_.SetProfile("agent-1", ChatProfile(2), "sup-1").ok());
    EXPECT_TRUE(presence_.SetStatus({"agent-1", v1::AGENT_STATUS_ONLINE, {}, "laptop"}).ok());
  }
  ~DurableRetryTest() override { committer_.Stop(); }

  struct Attempt {
    ~Attempt() {
      // A test that failed early may leave the call waiting on a held
      // commit forever: end the test binary rather than hang it.
      if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) {
        std::fprintf(stderr, "a call never returned\n");
        std::abort();
      }
      thread.join();
    }
    std::thread thread;
    absl::Notification done;
    absl::Status status;
    int committed_when_answered = -1;
  };
  std::unique_ptr<Attempt> Start(std::function<absl::Status()> call) {
    auto attempt = std::make_unique<Attempt>();
    Attempt* a = attempt.get();
    a->thread = std::thread([this, a, call] {
      a->status = call();
      a->committed_when_answered = store_.committed();
      a->done.Notify();
    });
    return attempt;
  }

  // Sends `write`, holds its commit, sends it again (the client's retry),
  // then lets the commit go through (or fails it). The retry must not be
  // answered OK before the first write is on disk, nor at all if it failed.
  void ExpectRetryWaitsForTheFirstCommit(std::function<absl::Status()> write, bool fail) {
    const int committed_before = store_.committed();
    store_.Hold();
    std::unique_ptr<Attempt> first = Start(write);
    ASSERT_TRUE(store_.AwaitHeld(1));
    std::unique_ptr<Attempt> retry = Start(write);
    EXPECT_FALSE(retry->done.WaitForNotificationWithTimeout(absl::Milliseconds(300)))
        << "the retry was answered (" << retry->status
        << ") while the first write was still waiting for its commit";
    if (fail) {
      store_.Fail(absl::InternalError("disk I/O error"));
    } else {
      store_.Release();
    }
    first->done.WaitForNotification();
    retry->done.WaitForNotification();
    if (fail) {
      EXPECT_FALSE(first->status.ok());
      EXPECT_FALSE(retry->status.ok())
          << "a retry was acknowledged although the first write never reached the disk";
    } else {
      EXPECT_TRUE(first->status.ok()) << first->status;
      EXPECT_TRUE(retry->status.ok()) << retry->status;
      EXPECT_GT(retry->committed_when_answered, committed_before);
    }
  }

  std::unique_ptr<storage::Database> db_;
  storage::GroupCommitter committer_;
  SqlitePresenceStore sqlite_;
  HeldPresenceStore store_;
  FakeClock clock_;
  prometheus::Registry registry_;
  PresenceMetrics metrics_;
  Presence presence_;
};

TEST_F(DurableRetryTest, ReserveRetryGetsTheFailureOfTheFirstCommit) {
  ExpectRetryWaitsForTheFirstCommit(
      [&] { return presence_.Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).status(); },
      /*fail=*/true);
  // Fail-stop: nothing more is decided on a memory that is ahead of the disk.
  EXPECT_EQ(presence_.Reserve("agent-1", "s-2", CHANNEL_CHAT, std::nullopt).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(DurableRetryTest, ReserveRetryIsAnsweredOnceTheFirstIsDurable) {
  ExpectRetryWaitsForTheFirstCommit(
      [&] { return presence_.Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).status(); },
      /*fail=*/false);
}

TEST_F(DurableRetryTest, ConfirmRetryWaitsForTheFirstConfirmation) {
  ASSERT_TRUE(presence_.Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  ExpectRetryWaitsForTheFirstCommit(
      [&] { return presence_.Confirm("agent-1", "s-1").status(); }, /*fail=*/true);
}

TEST_F(DurableRetryTest, ReleaseRetryWaitsForTheFirstRelease) {
  ASSERT_TRUE(presence_.Reserve("agent-1", "s-1", CHANNEL_CHAT, std::nullopt).ok());
  ExpectRetryWaitsForTheFirstCommit(
      [&] { return presence_.ReleaseCapacity("agent-1", "s-1").status(); }, /*fail=*/true);
}

TEST_F(DurableRetryTest, SetStatusRetryWaitsForTheFirstChange) {
  ExpectRetryWaitsForTheFirstCommit(
      [&] {
        return presence_.SetStatus({"agent-1", v1::AGENT_STATUS_AWAY, {}, "phone"})
            .status();
      },
      /*fail=*/false);
}

}  // namespace
}  // namespace switchboard::presence
