#include "services/routing/router.h"

#include <map>
#include <thread>

#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "absl/strings/match.h"
#include "prometheus/registry.h"

namespace switchboard::routing {
namespace {

using common::v1::CATEGORY_DEPOSIT;
using common::v1::CATEGORY_FROZEN_FUNDS;
using common::v1::CHANNEL_CHAT;

class FakeStore : public RoutingStore {
 public:
  absl::StatusOr<Contents> Load() override {
    absl::MutexLock lock(&mu_);
    Contents contents;
    for (const auto& [key, e] : entries_) contents.entries.push_back(e);
    return contents;
  }
  void Apply(RoutingWrite write, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      for (const auto& key : write.deleted_entries) entries_.erase(key);
      for (const auto& e : write.upserted_entries) entries_[e.key] = e;
      for (const auto& e : write.events) events_.push_back(e.type());
    }
    done(absl::OkStatus());
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, EntryRecord> entries_;
  std::vector<std::string> events_;
};

// Presence's capacity rule, in memory: the real check routing relies on.
class FakePresence : public PresencePort {
 public:
  void SetCapacity(const std::string& agent, int capacity) {
    absl::MutexLock lock(&mu_);
    capacity_[agent] = capacity;
  }
  absl::Status Reserve(const std::string& agent, const std::string& session,
                       common::v1::Channel, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++reserve_calls;
    if (held_.count(session)) {
      return held_[session] == agent ? absl::OkStatus()
                                     : absl::AlreadyExistsError("held elsewhere");
    }
    int load = 0;
    for (const auto& [s, a] : held_) load += a == agent;
    if (load >= capacity_[agent]) return absl::ResourceExhaustedError("at capacity");
    held_[session] = agent;
    max_load_ = std::max(max_load_, load + 1);
    return absl::OkStatus();
  }
  absl::Status Confirm(const std::string& agent, const std::string& session) override {
    absl::MutexLock lock(&mu_);
    confirmed.push_back(session);
    return held_.count(session) && held_[session] == agent ? absl::OkStatus()
                                                          : absl::NotFoundError("none");
  }
  absl::Status Release(const std::string& agent, const std::string& session) override {
    absl::MutexLock lock(&mu_);
    if (held_.count(session) && held_[session] == agent) held_.erase(session);
    return absl::OkStatus();
  }
  int Load(const std::string& agent) {
    absl::MutexLock lock(&mu_);
    int load = 0;
    for (const auto& [s, a] : held_) load += a == agent;
    return load;
  }
  int max_load() {
    absl::MutexLock lock(&mu_);
    return max_load_;
  }
  absl::Mutex mu_;
  int reserve_calls = 0;
  std::vector<std::string> confirmed;

 private:
  std::map<std::string, int> capacity_;
  std::map<std::string, std::string> held_;
  int max_load_ = 0;
};

class FakeSessions : public SessionsPort {
 public:
  absl::Status RecordOffer(const std::string& session, const std::string& agent,
                           const std::string&, absl::Time) override {
    absl::MutexLock lock(&mu_);
    calls.push_back("RecordOffer " + session + " " + agent);
    return absl::OkStatus();
  }
  absl::Status AssignAgent(const std::string& session, const std::string& agent,
                           const std::string&, const std::string&) override {
    absl::MutexLock lock(&mu_);
    calls.push_back("AssignAgent " + session + " " + agent);
    return absl::OkStatus();
  }
  absl::Status RequeueSession(const std::string& session, const std::string& agent) override {
    absl::MutexLock lock(&mu_);
    calls.push_back("RequeueSession " + session + " " + agent);
    return absl::OkStatus();
  }
  std::vector<std::string> Calls() {
    absl::MutexLock lock(&mu_);
    return calls;
  }
  absl::Mutex mu_;
  std::vector<std::string> calls;
};

class Recorder : public OfferListener {
 public:
  void OnOffer(const v1::Offer& offer, bool closed) override {
    absl::MutexLock lock(&mu_);
    (closed ? closed_ : open_).push_back(offer);
  }
  std::vector<v1::Offer> open() {
    absl::MutexLock lock(&mu_);
    return open_;
  }
  std::vector<v1::Offer> closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Offer> open_, closed_;
};

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : metrics_(registry_) { Reset(); }

  void Reset() {
    router_ = std::make_unique<Router>(&store_, &presence_, &sessions_, &clock_, &metrics_,
                                       RouterOptions());
    ASSERT_TRUE(router_->Load().ok());
  }

  presence::v1::Agent AgentOnline(const std::string& id, int capacity, absl::Duration idle,
                                  const std::string& language = "en-US") {
    presence::v1::Agent agent;
    agent.set_agent_id(id);
    agent.set_status(presence::v1::AGENT_STATUS_ONLINE);
    agent.mutable_profile()->set_display_name(id);
    agent.mutable_profile()->mutable_skills()->add_categories(CATEGORY_DEPOSIT);
    agent.mutable_profile()->mutable_skills()->add_categories(CATEGORY_FROZEN_FUNDS);
    agent.mutable_profile()->mutable_skills()->add_languages(language);
    auto* chat = agent.mutable_profile()->add_capacities();
    chat->set_channel(CHANNEL_CHAT);
    chat->set_capacity(capacity);
    protoutil::ToTimestamp(clock_.Now() - idle, agent.mutable_idle_since());
    presence_.SetCapacity(id, capacity);
    return agent;
  }

  absl::StatusOr<Router::EnqueueResult> Enqueue(const std::string& session,
                                                common::v1::Category category = CATEGORY_DEPOSIT,
                                                bool at_head = false) {
    Router::EnqueueSessionCommand c;
    c.session_id = session;
    c.customer_id = "cust-" + session;
    c.channel = CHANNEL_CHAT;
    c.category = category;
    c.language = "en";
    c.reason = v1::ENQUEUE_REASON_ESCALATED;
    c.at_head = at_head;
    return router_->EnqueueSession(c);
  }

  v1::QueueEntry Entry(const std::string& session) {
    absl::StatusOr<Router::EntryView> view = router_->GetEntry(v1::ENTRY_KIND_SESSION, session);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? view->entry : v1::QueueEntry();
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  RoutingMetrics metrics_;
  FakeStore store_;
  FakePresence presence_;
  FakeSessions sessions_;
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, UrgentFirstThenAgeAndTheLongestIdleAgentGetsIt) {
  ASSERT_TRUE(Enqueue("s-normal").ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-urgent", CATEGORY_FROZEN_FUNDS).ok());
  EXPECT_EQ(Entry("s-urgent").priority(), v1::PRIORITY_URGENT);
  router_->ResetPresence({AgentOnline("recent", 1, absl::Minutes(1)),
                          AgentOnline("idle-long", 1, absl::Minutes(30))});
  router_->RunOnce();
  EXPECT_EQ(Entry("s-urgent").offered_agent_id(), "idle-long");
  EXPECT_EQ(Entry("s-normal").offered_agent_id(), "recent");
  EXPECT_EQ(sessions_.Calls().size(), 2u);
  EXPECT_EQ(sessions_.Calls()[0], "RecordOffer s-urgent idle-long");
}

TEST_F(RouterTest, SkillsAndCapacityDecideEligibility) {
  router_->ResetPresence({AgentOnline("zh-only", 2, absl::Minutes(10), "zh-CN"),
                          AgentOnline("no-chat", 0, absl::Minutes(20))});
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.reserve_calls, 0);
  router_->OnAgentChange(AgentOnline("en", 1, absl::Minutes(1)));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "en");
  // Full now: the next session waits.
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_WAITING);
  std::vector<v1::QueueStats> stats = router_->Stats({});
  bool found = false;
  for (const auto& s : stats) {
    if (s.queue().language() == "en" && s.queue().category() == CATEGORY_DEPOSIT) {
      found = true;
      EXPECT_EQ(s.depth(), 2);
      EXPECT_EQ(s.offered(), 1);
      EXPECT_EQ(s.eligible_agents(), 1);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(RouterTest, TimeoutAndDeclineReleaseAndGoToTheNextAgent) {
  Recorder first;
  router_->SubscribeOffers("a1", false, &first);
  router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                          AgentOnline("a2", 1, absl::Minutes(20)),
                          AgentOnline("a3", 1, absl::Minutes(10))});
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  ASSERT_EQ(Entry("s-1").offered_agent_id(), "a1");
  ASSERT_EQ(first.open().size(), 1u);
  EXPECT_EQ(presence_.Load("a1"), 1);

  clock_.Advance(absl::Seconds(29));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
  clock_.Advance(absl::Seconds(2));
  router_->RunOnce();
  EXPECT_EQ(presence_.Load("a1"), 0);
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a2");
  ASSERT_EQ(first.closed().size(), 1u);
  EXPECT_EQ(first.closed()[0].outcome(), v1::OFFER_OUTCOME_EXPIRED);
  const std::string old_offer = first.open()[0].offer_id();
  EXPECT_EQ(router_->AcceptOffer("a1", old_offer).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // a2 declines: a3 gets it, a2 never again this wait.
  absl::StatusOr<Router::EntryView> view = router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1");
  std::vector<v1::Offer> open = router_->SubscribeOffers("a2", false, &first);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(router_->DeclineOffer("a3", open[0].offer_id(), v1::DECLINE_REASON_BUSY)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(router_->DeclineOffer("a2", open[0].offer_id(), v1::DECLINE_REASON_BUSY).ok());
  EXPECT_TRUE(router_->DeclineOffer("a2", open[0].offer_id(), v1::DECLINE_REASON_BUSY).ok());
  EXPECT_EQ(presence_.Load("a2"), 0);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a3");
  EXPECT_EQ(Entry("s-1").offer_attempts(), 3);
  router_->UnsubscribeOffers(&first);
  router_->UnsubscribeOffers(&first);
}

TEST_F(RouterTest, AcceptAssignsAndLapseRequeuesAtTheHead) {
  router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(30))});
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  Recorder recorder;
  std::vector<v1::Offer> open = router_->SubscribeOffers("a1", false, &recorder);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(router_->AcceptOffer("a2", open[0].offer_id()).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<v1::Assignment> assignment = router_->AcceptOffer("a1", open[0].offer_id());
  ASSERT_TRUE(assignment.ok()) << assignment.status();
  EXPECT_EQ(assignment->session_id(), "s-1");
  EXPECT_EQ(sessions_.Calls().back(), "AssignAgent s-1 a1");
  EXPECT_EQ(presence_.confirmed.back(), "s-1");
  // Idempotent.
  EXPECT_EQ(router_->AcceptOffer("a1", open[0].offer_id())->offer_id(), open[0].offer_id());
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);

  // Another session waits in the same queue; then a1 lapses.
  ASSERT_TRUE(Enqueue("s-2").ok());
  presence::v1::Agent offline;
  offline.set_agent_id("a1");
  offline.set_status(presence::v1::AGENT_STATUS_OFFLINE);
  router_->OnAgentChange(offline);
  EXPECT_EQ(Entry("s-1").position(), 1);
  EXPECT_EQ(Entry("s-1").reason(), v1::ENQUEUE_REASON_AGENT_UNAVAILABLE);
  EXPECT_EQ(Entry("s-2").position(), 2);
  router_->OnAgentChange(AgentOnline("a2", 1, absl::Minutes(5)));
  router_->RunOnce();
  std::vector<std::string> calls = sessions_.Calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "RequeueSession s-1 a1"), calls.end());
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a2");
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.Load("a1"), 0);
  std::vector<std::string> events = store_.events();
  EXPECT_NE(std::find(events.begin(), events.end(), "routing.entry_requeued"), events.end());
  router_->UnsubscribeOffers(&recorder);

  // Cancel releases what is held.
  ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_CLOSED));
  EXPECT_FALSE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_CLOSED));
  EXPECT_EQ(presence_.Load("a2"), 0);
}

TEST_F(RouterTest, ReQueuedAtHeadAndAutoAccept) {
  ASSERT_TRUE(Enqueue("s-1").ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-2", CATEGORY_DEPOSIT, /*at_head=*/true).ok());
  EXPECT_EQ(Entry("s-2").position(), 1);
  EXPECT_EQ(Entry("s-1").position(), 2);
  EXPECT_TRUE(Enqueue("s-2")->replayed);

  v1::AgentSettings settings;
  settings.set_auto_accept(true);
  ASSERT_TRUE(router_->UpdateSettings("a1", settings, "a1").ok());
  router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))});
  router_->RunOnce();
  EXPECT_EQ(sessions_.Calls().back(), "AssignAgent s-2 a1");
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-2").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RouterTest, BadInputNamesTheField) {
  Router::EnqueueSessionCommand c;
  EXPECT_TRUE(absl::StrContains(router_->EnqueueSession(c).status().message(), "session_id"));
  c.session_id = "s";
  c.customer_id = "c";
  c.channel = static_cast<common::v1::Channel>(99);
  EXPECT_TRUE(absl::StrContains(router_->EnqueueSession(c).status().message(), "channel"));
  c.channel = CHANNEL_CHAT;
  c.category = CATEGORY_DEPOSIT;
  c.language = "!";
  EXPECT_TRUE(absl::StrContains(router_->EnqueueSession(c).status().message(), "language"));
  c.language = "en";
  c.reason = v1::ENQUEUE_REASON_AGENT_UNAVAILABLE;
  EXPECT_TRUE(absl::StrContains(router_->EnqueueSession(c).status().message(), "reason"));
  c.reason = v1::ENQUEUE_REASON_ESCALATED;
  c.transfer_note = std::string(1001, 'x');
  EXPECT_TRUE(
      absl::StrContains(router_->EnqueueSession(c).status().message(), "transfer_note"));
}

TEST_F(RouterTest, ConcurrentDispatchersNeverExceedCapacity) {
  std::vector<presence::v1::Agent> agents;
  for (int i = 0; i < 4; ++i) {
    agents.push_back(AgentOnline("a" + std::to_string(i), 2, absl::Minutes(i + 1)));
  }
  router_->ResetPresence(agents);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Enqueue("s-" + std::to_string(i)).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < 5; ++i) router_->RunOnce();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(presence_.max_load(), 2);
  int offered = 0;
  for (const auto& s : router_->Stats({})) offered += s.offered();
  EXPECT_EQ(offered, 8);
}

TEST_F(RouterTest, ComplaintsGoToWatchingSupervisors) {
  Router::EnqueueComplaintCommand c{"cmp-1", "cust-1", CATEGORY_DEPOSIT, "s-9",
                                    v1::PRIORITY_NORMAL};
  absl::StatusOr<Router::EnqueueResult> queued = router_->EnqueueComplaint(c);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->entry.priority(), v1::PRIORITY_HIGH);
  presence::v1::Agent sup = AgentOnline("sup-1", 0, absl::Minutes(1));
  router_->ResetPresence({sup});
  router_->RunOnce();
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_COMPLAINT, "cmp-1")->entry.state(),
            v1::ENTRY_STATE_WAITING);
  Recorder recorder;
  router_->SubscribeOffers("sup-1", true, &recorder);
  router_->RunOnce();
  ASSERT_EQ(recorder.open().size(), 1u);
  ASSERT_TRUE(router_->AcceptOffer("sup-1", recorder.open()[0].offer_id()).ok());
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_COMPLAINT, "cmp-1").status().code(),
            absl::StatusCode::kNotFound);
  router_->UnsubscribeOffers(&recorder);
}

}  // namespace
}  // namespace switchboard::routing
