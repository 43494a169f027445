#include "services/routing/router.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/limits/retry_after.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/routing/fake_peers.h"
#include "services/routing/held_store.h"
#include "services/routing/schedule_book.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using common::v1::CATEGORY_DEPOSIT;
using common::v1::CATEGORY_FROZEN_FUNDS;
using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;

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

// The Router on a real SQLite file (behind a decorator that can hold, fail
// or refuse commits), with presence and sessions faked in memory.
class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : path_(storage::MakeTempDir() + "/routing.db"), metrics_(registry_) {
    OpenStore();
    Start();
  }
  // The committer stops first: a commit in flight calls the router back.
  ~RouterTest() override {
    committer_->Stop();
    router_.reset();
  }

  void OpenStore() {
    db_ = *storage::Database::OpenMigrated({path_}, RoutingMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    sqlite_ = std::make_unique<SqliteRoutingStore>(committer_.get(), "switchboard.routing.v1",
                                                   nullptr);
    store_ = std::make_unique<HeldRoutingStore>(sqlite_.get());
  }

  void Start() {
    book_ = std::make_unique<ScheduleBook>(store_.get(), &clock_, nullptr);
    ASSERT_TRUE(book_->Load().ok());
    router_ = std::make_unique<Router>(store_.get(), &presence_, &sessions_, &clock_, &metrics_,
                                       options_, book_.get());
    ASSERT_TRUE(router_->Load().ok());
  }

  // As a process restart: a new Router on the file reopened.
  void Restart() {
    committer_->Stop();
    router_.reset();
    store_.reset();
    sqlite_.reset();
    committer_.reset();
    db_.reset();
    OpenStore();
    Start();
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
    auto* email = agent.mutable_profile()->add_capacities();
    email->set_channel(CHANNEL_EMAIL);
    email->set_capacity(capacity);
    protoutil::ToTimestamp(clock_.Now() - idle, agent.mutable_idle_since());
    presence_.SetCapacity(id, capacity);
    return agent;
  }

  static presence::v1::Agent Offline(const std::string& id) {
    presence::v1::Agent agent;
    agent.set_agent_id(id);
    agent.set_status(presence::v1::AGENT_STATUS_OFFLINE);
    return agent;
  }

  Router::EnqueueSessionCommand Command(const std::string& session,
                                        common::v1::Category category = CATEGORY_DEPOSIT) {
    Router::EnqueueSessionCommand c;
    c.session_id = session;
    c.customer_id = "cust-" + session;
    c.channel = CHANNEL_CHAT;
    c.category = category;
    c.language = "en";
    c.reason = v1::ENQUEUE_REASON_ESCALATED;
    return c;
  }

  absl::StatusOr<Router::EnqueueResult> Enqueue(const std::string& session,
                                                common::v1::Category category = CATEGORY_DEPOSIT,
                                                bool at_head = false) {
    Router::EnqueueSessionCommand c = Command(session, category);
    c.at_head = at_head;
    return router_->EnqueueSession(c);
  }

  // Agents a0..a3 ONLINE with room for one chat each, a0 idle the longest;
  // sessions s-0..s-3 waiting, in that order.
  void FourFreeAgentsAndFourWaiting() {
    std::vector<presence::v1::Agent> agents;
    for (int i = 0; i < 4; ++i) {
      agents.push_back(AgentOnline("a" + std::to_string(i), 1, absl::Minutes(10 - i)));
    }
    ASSERT_TRUE(router_->ResetPresence(agents).ok());
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(Enqueue("s-" + std::to_string(i)).ok());
      clock_.Advance(absl::Seconds(1));
    }
  }

  v1::QueueEntry Entry(const std::string& session) {
    absl::StatusOr<Router::EntryView> view = router_->GetEntry(v1::ENTRY_KIND_SESSION, session);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? view->entry : v1::QueueEntry();
  }

  // The agent's open offers, as a WatchOffers stream starts with.
  std::vector<v1::Offer> OpenOffers(const std::string& agent) {
    Recorder recorder;
    std::vector<v1::Offer> open = router_->SubscribeOffers(agent, false, &recorder);
    router_->UnsubscribeOffers(&recorder);
    return open;
  }

  std::string OfferOf(const std::string& agent) {
    std::vector<v1::Offer> open = OpenOffers(agent);
    EXPECT_EQ(open.size(), 1u) << agent;
    return open.empty() ? "" : open[0].offer_id();
  }

  // Rows still owed to presence, as the store has them.
  size_t OwedOnDisk() { return store_->Load()->owed_releases.size(); }

  std::string path_;
  FakeClock clock_;
  prometheus::Registry registry_;
  RoutingMetrics metrics_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> sqlite_;
  std::unique_ptr<HeldRoutingStore> store_;
  FakePresence presence_;
  FakeSessions sessions_;
  RouterOptions options_;
  std::unique_ptr<ScheduleBook> book_;
  std::unique_ptr<Router> router_;
};

// ---- the decision ----

TEST_F(RouterTest, UrgentFirstThenAgeAndTheLongestIdleAgentGetsIt) {
  ASSERT_TRUE(Enqueue("s-normal").ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-urgent", CATEGORY_FROZEN_FUNDS).ok());
  EXPECT_EQ(Entry("s-urgent").priority(), v1::PRIORITY_URGENT);
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("recent", 1, absl::Minutes(1)),
                                   AgentOnline("idle-long", 1, absl::Minutes(30))})
                  .ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-urgent").offered_agent_id(), "idle-long");
  EXPECT_EQ(Entry("s-normal").offered_agent_id(), "recent");
  std::vector<std::string> calls = sessions_.Calls();
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<std::string>{"RecordOffer s-normal recent",
                                             "RecordOffer s-urgent idle-long"}));
}

// ---- hours of operation ----

// Phone callbacks requested on Friday evening wait, with no offer, while the
// phone queue is closed; on Monday morning they are offered in the order
// they were booked. Other queues are not affected.
TEST_F(RouterTest, AClosedQueueHoldsItsEntriesAndOffersCallbacksInBookingOrderAtOpening) {
  v1::Schedule phone;
  phone.set_schedule_id("phone-berlin");
  phone.set_time_zone("Europe/Berlin");
  for (v1::DayOfWeek day : {v1::DAY_OF_WEEK_MONDAY, v1::DAY_OF_WEEK_TUESDAY,
                            v1::DAY_OF_WEEK_WEDNESDAY, v1::DAY_OF_WEEK_THURSDAY,
                            v1::DAY_OF_WEEK_FRIDAY}) {
    v1::WeeklyHours* hours = phone.add_weekly_hours();
    hours->set_day(day);
    hours->set_start_time("09:00");
    hours->set_end_time("17:00");
  }
  phone.add_applies_to()->set_channel(common::v1::CHANNEL_PHONE);
  ASSERT_TRUE(book_->Set(phone, std::nullopt, "sup-1").ok());

  // Friday 2026-03-06 19:00 in Berlin.
  clock_.Set(absl::FromCivil(absl::CivilMinute(2026, 3, 6, 18, 0), absl::UTCTimeZone()));
  const absl::Time monday_opening =
      absl::FromCivil(absl::CivilMinute(2026, 3, 9, 8, 0), absl::UTCTimeZone());
  presence::v1::Agent agent = AgentOnline("a-phone", 3, absl::Minutes(5));
  auto* capacity = agent.mutable_profile()->add_capacities();
  capacity->set_channel(common::v1::CHANNEL_PHONE);
  capacity->set_capacity(3);
  presence::v1::Agent chat_agent = AgentOnline("a-chat", 1, absl::Minutes(1));
  ASSERT_TRUE(router_->ResetPresence({agent, chat_agent}).ok());

  // Booked in this order, ten minutes apart.
  for (const char* session : {"cb-1", "cb-2", "cb-3"}) {
    Router::EnqueueSessionCommand c = Command(session);
    c.channel = common::v1::CHANNEL_PHONE;
    c.reason = v1::ENQUEUE_REASON_CALLBACK;
    absl::StatusOr<Router::EnqueueResult> result = router_->EnqueueSession(c);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(result->hours.open());
    EXPECT_EQ(result->hours.schedule_id(), "phone-berlin");
    EXPECT_EQ(protoutil::FromTimestamp(result->hours.next_opening_at()), monday_opening);
    clock_.Advance(absl::Minutes(10));
  }
  absl::StatusOr<Router::EnqueueResult> chat = Enqueue("s-chat");
  ASSERT_TRUE(chat.ok());
  EXPECT_TRUE(chat->hours.open());
  EXPECT_TRUE(chat->hours.schedule_id().empty());

  router_->RunOnce();
  EXPECT_EQ(Entry("s-chat").state(), v1::ENTRY_STATE_OFFERED);
  for (const char* session : {"cb-1", "cb-2", "cb-3"}) {
    EXPECT_EQ(Entry(session).state(), v1::ENTRY_STATE_WAITING) << session;
  }
  EXPECT_EQ(Entry("cb-3").position(), 3);
  bool seen = false;
  for (const v1::QueueStats& s : router_->Stats({})) {
    if (s.queue().channel() != common::v1::CHANNEL_PHONE) {
      EXPECT_TRUE(s.hours().open());
      continue;
    }
    EXPECT_FALSE(s.hours().open());
    if (s.queue().category() != CATEGORY_DEPOSIT) continue;
    seen = true;
    EXPECT_EQ(s.depth(), 3);
    EXPECT_EQ(protoutil::FromTimestamp(s.hours().next_transition_at()), monday_opening);
  }
  EXPECT_TRUE(seen);
  const QueueId phone_queue{v1::ENTRY_KIND_SESSION, common::v1::CHANNEL_PHONE, CATEGORY_DEPOSIT,
                            "en"};
  EXPECT_EQ(metrics_.ForQueue(phone_queue).open->Value(), 0);

  // Saturday and Sunday pass: still nothing.
  clock_.Set(monday_opening - absl::Seconds(1));
  router_->RunOnce();
  EXPECT_EQ(Entry("cb-1").state(), v1::ENTRY_STATE_WAITING);

  clock_.Set(monday_opening);
  router_->RunOnce();
  std::vector<std::string> phone_offers;
  for (const std::string& call : sessions_.Calls()) {
    if (absl::StartsWith(call, "RecordOffer cb-")) phone_offers.push_back(call);
  }
  EXPECT_EQ(phone_offers,
            (std::vector<std::string>{"RecordOffer cb-1 a-phone", "RecordOffer cb-2 a-phone",
                                      "RecordOffer cb-3 a-phone"}));
  EXPECT_EQ(metrics_.ForQueue(phone_queue).open->Value(), 1);
}

// A schedule change applies at once: a queue that closes stops getting
// offers, and opens again when the schedule goes.
TEST_F(RouterTest, ASchedulesChangeAppliesAtOnce) {
  v1::Schedule closed;
  closed.set_schedule_id("closed-for-good");
  closed.set_time_zone("UTC");
  v1::QueueSelector* selector = closed.add_applies_to();
  selector->set_channel(CHANNEL_CHAT);
  selector->set_category(CATEGORY_DEPOSIT);
  ASSERT_TRUE(book_->Set(closed, std::nullopt, "sup-1").ok());
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(1))}).ok());
  absl::StatusOr<Router::EnqueueResult> result = Enqueue("s-1");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result->hours.open());
  // Never opens again: no next opening to state.
  EXPECT_FALSE(result->hours.has_next_opening_at());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  ASSERT_TRUE(Enqueue("s-frozen", CATEGORY_FROZEN_FUNDS).ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-frozen").offered_agent_id(), "a1");

  ASSERT_TRUE(*book_->Delete("closed-for-good", std::nullopt, "sup-1"));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
}

// A waiting chat continued by email moves to the EMAIL queue's tail.
TEST_F(RouterTest, AWaitingSessionEnqueuedInAnotherQueueMovesThere) {
  ASSERT_TRUE(Enqueue("s-email-first").ok());
  Router::EnqueueSessionCommand earlier = Command("s-earlier-email");
  earlier.channel = CHANNEL_EMAIL;
  earlier.reason = v1::ENQUEUE_REASON_NEW_SESSION;
  ASSERT_TRUE(router_->EnqueueSession(earlier).ok());
  clock_.Advance(absl::Minutes(1));
  Router::EnqueueSessionCommand moved = Command("s-email-first");
  moved.channel = CHANNEL_EMAIL;
  moved.first_response_due_at = clock_.Now() + absl::Hours(48);
  absl::StatusOr<Router::EnqueueResult> result = router_->EnqueueSession(moved);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->replayed);
  EXPECT_EQ(result->entry.queue().channel(), CHANNEL_EMAIL);
  EXPECT_EQ(result->entry.position(), 2);
  EXPECT_EQ(protoutil::FromTimestamp(result->entry.first_response_due_at()),
            clock_.Now() + absl::Hours(48));
  for (const v1::QueueStats& s : router_->Stats({})) {
    EXPECT_EQ(s.queue().channel(), CHANNEL_EMAIL);
    EXPECT_EQ(s.depth(), 2);
  }
  // Durable.
  Restart();
  EXPECT_EQ(Entry("s-email-first").queue().channel(), CHANNEL_EMAIL);
  EXPECT_EQ(Entry("s-email-first").position(), 2);
  // Offered in its new queue: nothing moves it while an offer is open.
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(1))}).ok());
  router_->RunOnce();
  ASSERT_EQ(Entry("s-email-first").state(), v1::ENTRY_STATE_OFFERED);
  moved.channel = CHANNEL_CHAT;
  EXPECT_EQ(router_->EnqueueSession(moved).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RouterTest, SkillsAndCapacityDecideEligibility) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("zh-only", 2, absl::Minutes(10), "zh-CN"),
                                   AgentOnline("no-chat", 0, absl::Minutes(20))})
                  .ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.calls("Reserve"), 0);
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("en", 1, absl::Minutes(1))).ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "en");
  // Full now: the next session waits.
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_WAITING);
  bool found = false;
  for (const auto& s : router_->Stats({})) {
    if (s.queue().language() == "en" && s.queue().category() == CATEGORY_DEPOSIT &&
        s.queue().channel() == CHANNEL_CHAT) {
      found = true;
      EXPECT_EQ(s.depth(), 2);
      EXPECT_EQ(s.offered(), 1);
      EXPECT_EQ(s.eligible_agents(), 1);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(RouterTest, ATargetedEntryGoesToItsAgentOnlyThenFallsBackToTheHead) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("longest-idle", 1, absl::Minutes(50)),
                                   AgentOnline("named", 1, absl::Minutes(1))})
                  .ok());
  ASSERT_TRUE(Enqueue("s-older").ok());
  Router::EnqueueSessionCommand targeted = Command("s-target");
  targeted.reason = v1::ENQUEUE_REASON_TRANSFERRED;
  targeted.target_agent_id = "named";
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(router_->EnqueueSession(targeted).ok());
  router_->RunOnce();
  // Only "named" may take the targeted entry, although it is not the
  // longest idle.
  EXPECT_EQ(Entry("s-target").offered_agent_id(), "named");
  EXPECT_EQ(Entry("s-older").offered_agent_id(), "longest-idle");
  ASSERT_TRUE(router_->AcceptOffer("named", OfferOf("named")).ok());
  ASSERT_TRUE(router_->AcceptOffer("longest-idle", OfferOf("longest-idle")).ok());

  // A target that never becomes eligible: after one offer timeout the entry
  // goes to the head of its queue, for anyone.
  Router::EnqueueSessionCommand away = Command("s-away");
  away.reason = v1::ENQUEUE_REASON_TRANSFERRED;
  away.target_agent_id = "not-online";
  ASSERT_TRUE(router_->EnqueueSession(away).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-newer").ok());
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("third", 2, absl::Minutes(3))).ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-away").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(Entry("s-newer").offered_agent_id(), "third");
  ASSERT_TRUE(router_->AcceptOffer("third", OfferOf("third")).ok());
  clock_.Advance(options_.offer_timeout);
  router_->RunOnce();
  EXPECT_FALSE(Entry("s-away").has_target_until());
  EXPECT_EQ(Entry("s-away").offered_agent_id(), "third");
}

TEST_F(RouterTest, APreferredAgentGoesFirstAndAnExcludedOneNever) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("longest-idle", 2, absl::Minutes(50)),
                                   AgentOnline("previous", 2, absl::Minutes(1)),
                                   AgentOnline("transferring", 2, absl::Minutes(90))})
                  .ok());
  Router::EnqueueSessionCommand reopened = Command("s-reopened");
  reopened.reason = v1::ENQUEUE_REASON_REOPENED;
  reopened.preferred_agent_id = "previous";
  reopened.excluded_agent_id = "transferring";
  ASSERT_TRUE(router_->EnqueueSession(reopened).ok());
  EXPECT_EQ(Entry("s-reopened").priority(), v1::PRIORITY_HIGH);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-reopened").offered_agent_id(), "previous");

  // Declined by the preferred agent: the next is the longest idle, never
  // the excluded one even though it has been idle longer.
  ASSERT_TRUE(router_->DeclineOffer("previous", OfferOf("previous"), v1::DECLINE_REASON_BUSY)
                  .ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-reopened").offered_agent_id(), "longest-idle");
  ASSERT_TRUE(
      router_->DeclineOffer("longest-idle", OfferOf("longest-idle"), v1::DECLINE_REASON_BUSY)
          .ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-reopened").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_TRUE(OpenOffers("transferring").empty());
}

TEST_F(RouterTest, OnlyEmailEntriesCarryAFirstResponseDueTime) {
  ASSERT_TRUE(Enqueue("s-chat").ok());
  Router::EnqueueSessionCommand phone = Command("s-phone");
  phone.channel = common::v1::CHANNEL_PHONE;
  phone.reason = v1::ENQUEUE_REASON_CALLBACK;
  ASSERT_TRUE(router_->EnqueueSession(phone).ok());
  Router::EnqueueSessionCommand email = Command("s-email");
  email.channel = CHANNEL_EMAIL;
  email.reason = v1::ENQUEUE_REASON_NEW_SESSION;
  email.first_response_due_at = clock_.Now() + absl::Hours(48);
  ASSERT_TRUE(router_->EnqueueSession(email).ok());
  // 1970-01-01 is how some clients spell "none".
  Router::EnqueueSessionCommand epoch = Command("s-epoch");
  epoch.first_response_due_at = absl::UnixEpoch();
  ASSERT_TRUE(router_->EnqueueSession(epoch).ok());

  EXPECT_FALSE(Entry("s-chat").has_first_response_due_at());
  EXPECT_FALSE(Entry("s-phone").has_first_response_due_at());
  EXPECT_FALSE(Entry("s-epoch").has_first_response_due_at());
  EXPECT_EQ(protoutil::FromTimestamp(Entry("s-email").first_response_due_at()),
            clock_.Now() + absl::Hours(48));
  auto breached = [&] {
    int total = 0;
    for (const auto& s : router_->Stats({})) total += s.sla_breached();
    return total;
  };
  EXPECT_EQ(breached(), 0);
  clock_.Advance(absl::Hours(48));
  EXPECT_EQ(breached(), 1);
  // After a restart too.
  Restart();
  EXPECT_FALSE(Entry("s-chat").has_first_response_due_at());
  EXPECT_EQ(breached(), 1);
}

TEST_F(RouterTest, EntriesStoredWithAnEpochDueTimeLoseItOnLoad) {
  EntryRecord old;
  old.key = EntryKey(v1::ENTRY_KIND_SESSION, "s-old");
  old.entry.set_kind(v1::ENTRY_KIND_SESSION);
  old.entry.set_session_id("s-old");
  old.entry.set_customer_id("c");
  old.entry.mutable_queue()->set_kind(v1::ENTRY_KIND_SESSION);
  old.entry.mutable_queue()->set_channel(CHANNEL_CHAT);
  old.entry.mutable_queue()->set_category(CATEGORY_DEPOSIT);
  old.entry.mutable_queue()->set_language("en");
  old.entry.set_priority(v1::PRIORITY_NORMAL);
  old.entry.set_state(v1::ENTRY_STATE_WAITING);
  protoutil::ToTimestamp(clock_.Now(), old.entry.mutable_enqueued_at());
  old.entry.mutable_first_response_due_at();  // what the bug wrote
  RoutingWrite write;
  write.upserted_entries.push_back(old);
  absl::Notification done;
  store_->Apply(write, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    done.Notify();
  });
  done.WaitForNotification();
  Restart();
  EXPECT_FALSE(Entry("s-old").has_first_response_due_at());
  for (const auto& s : router_->Stats({})) EXPECT_EQ(s.sla_breached(), 0);
}

// ---- offers ----

TEST_F(RouterTest, TimeoutAndDeclineReleaseAndGoToTheNextAgent) {
  Recorder first;
  router_->SubscribeOffers("a1", false, &first);
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                                   AgentOnline("a2", 1, absl::Minutes(20)),
                                   AgentOnline("a3", 1, absl::Minutes(10))})
                  .ok());
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
  const std::string offer = OfferOf("a2");
  EXPECT_EQ(router_->DeclineOffer("a3", offer, v1::DECLINE_REASON_BUSY).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(router_->DeclineOffer("a2", offer, v1::DECLINE_REASON_BUSY).ok());
  EXPECT_TRUE(router_->DeclineOffer("a2", offer, v1::DECLINE_REASON_BUSY).ok());
  EXPECT_EQ(presence_.Load("a2"), 0);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a3");
  EXPECT_EQ(Entry("s-1").offer_attempts(), 3);
  router_->UnsubscribeOffers(&first);
  router_->UnsubscribeOffers(&first);
}

// Open offers wait on their own deadlines, not in every pass: each expires
// at its time, and one being accepted does not.
TEST_F(RouterTest, EachOpenOfferExpiresAtItsOwnTimeAndOneBeingAcceptedNever) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                                   AgentOnline("a2", 1, absl::Minutes(20)),
                                   AgentOnline("a3", 1, absl::Minutes(10))})
                  .ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  router_->RunOnce();  // a pass with s-1's offer open and nobody accepting
  ASSERT_EQ(Entry("s-1").offered_agent_id(), "a1");
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  ASSERT_EQ(Entry("s-2").offered_agent_id(), "a2");
  // a2 accepts while presence is down: the accept waits for the passes.
  presence_.Fail("Confirm", absl::UnavailableError("presence down"));
  EXPECT_EQ(router_->AcceptOffer("a2", OfferOf("a2")).status().code(),
            absl::StatusCode::kUnavailable);

  clock_.Advance(options_.offer_timeout - absl::Seconds(10) - absl::Milliseconds(1));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
  clock_.Advance(absl::Milliseconds(1));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a3");
  EXPECT_EQ(presence_.Load("a1"), 0);
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_OFFERED);

  // Past s-2's own deadline the accept still completes once presence is back.
  presence_.Heal("Confirm");
  clock_.Advance(absl::Seconds(15));
  router_->RunOnce();
  std::vector<std::string> calls = sessions_.Calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "AssignAgent s-2 a2"), calls.end());
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-2").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RouterTest, AcceptAssignsAndLapseRequeuesAtTheHead) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(30))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  EXPECT_EQ(router_->AcceptOffer("a2", offer).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<v1::Assignment> assignment = router_->AcceptOffer("a1", offer);
  ASSERT_TRUE(assignment.ok()) << assignment.status();
  EXPECT_EQ(assignment->session_id(), "s-1");
  EXPECT_EQ(sessions_.Calls().back(), "AssignAgent s-1 a1");
  EXPECT_EQ(presence_.confirmed().back(), "s-1");
  // Idempotent.
  EXPECT_EQ(router_->AcceptOffer("a1", offer)->offer_id(), offer);
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);

  // Another session waits in the same queue; then a1 lapses.
  ASSERT_TRUE(Enqueue("s-2").ok());
  ASSERT_TRUE(router_->OnAgentChange(Offline("a1")).ok());
  EXPECT_EQ(Entry("s-1").position(), 1);
  EXPECT_EQ(Entry("s-1").reason(), v1::ENQUEUE_REASON_AGENT_UNAVAILABLE);
  EXPECT_EQ(Entry("s-2").position(), 2);
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("a2", 1, absl::Minutes(5))).ok());
  router_->RunOnce();
  std::vector<std::string> calls = sessions_.Calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "RequeueSession s-1 a1"), calls.end());
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a2");
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.Load("a1"), 0);

  // Cancel releases what is held.
  ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_CLOSED));
  EXPECT_FALSE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_CLOSED));
  EXPECT_EQ(presence_.Load("a2"), 0);
  EXPECT_EQ(OwedOnDisk(), 0u);
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
  Recorder recorder;
  router_->SubscribeOffers("a1", false, &recorder);
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  router_->RunOnce();
  EXPECT_EQ(sessions_.Calls().back(), "AssignAgent s-2 a1");
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-2").status().code(),
            absl::StatusCode::kNotFound);
  // The agent's devices see the offer arrive already accepted.
  ASSERT_EQ(recorder.open().size(), 1u);
  EXPECT_EQ(recorder.open()[0].outcome(), v1::OFFER_OUTCOME_ACCEPTED);
  EXPECT_TRUE(recorder.open()[0].auto_accepted());
  router_->UnsubscribeOffers(&recorder);
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
  EXPECT_TRUE(absl::StrContains(router_->AcceptOffer("a1", std::string(65, 'o')).status().message(),
                                "offer_id"));
}

TEST_F(RouterTest, ConcurrentDispatchersNeverExceedCapacity) {
  std::vector<presence::v1::Agent> agents;
  for (int i = 0; i < 4; ++i) {
    agents.push_back(AgentOnline("a" + std::to_string(i), 2, absl::Minutes(i + 1)));
  }
  ASSERT_TRUE(router_->ResetPresence(agents).ok());
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

// ---- offers decided at once ----

// Each session offer waits on presence's reservation (a durable write
// there): offers are decided at once, each at an agent of its own, in queue
// order to the longest idle.
TEST_F(RouterTest, OffersAreDecidedAtOnceEachAtAnAgentOfItsOwn) {
  FourFreeAgentsAndFourWaiting();
  presence_.Pause("Reserve");
  std::thread pass([&] { router_->RunOnce(); });
  EXPECT_TRUE(presence_.AwaitPaused("Reserve", 4)) << "reservations were made one at a time";
  presence_.Resume("Reserve");
  pass.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Entry("s-" + std::to_string(i)).offered_agent_id(), "a" + std::to_string(i));
  }
  EXPECT_EQ(presence_.max_load(), 1);
  EXPECT_EQ(metrics_.reservations_refused->Value(), 0);
}

TEST_F(RouterTest, NoMoreOffersThanConcurrentOffersAreDecidedAtOnce) {
  options_.concurrent_offers = 2;
  Restart();
  FourFreeAgentsAndFourWaiting();
  presence_.Pause("Reserve");
  std::thread pass([&] { router_->RunOnce(); });
  ASSERT_TRUE(presence_.AwaitPaused("Reserve", 2));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(presence_.calls("Reserve"), 2);
  presence_.Resume("Reserve");
  pass.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Entry("s-" + std::to_string(i)).state(), v1::ENTRY_STATE_OFFERED);
  }
}

// A stopping dispatcher's pass makes no more offers than those being
// decided: they finish, the rest wait for the next leader.
TEST_F(RouterTest, OnceOffersAreStoppedAPassOnlyFinishesTheDecisionsUnderWay) {
  options_.concurrent_offers = 2;
  Restart();
  FourFreeAgentsAndFourWaiting();
  presence_.Pause("Reserve");
  std::thread pass([&] { router_->RunOnce(); });
  ASSERT_TRUE(presence_.AwaitPaused("Reserve", 2));
  router_->StopMakingOffers();
  presence_.Resume("Reserve");
  pass.join();
  EXPECT_EQ(Entry("s-0").state(), v1::ENTRY_STATE_OFFERED);
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_OFFERED);
  EXPECT_EQ(Entry("s-2").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(Entry("s-3").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.calls("Reserve"), 2);
}

// s-1's longest idle agent turns out full (routing's view was behind
// presence) and its next agent goes to s-2, decided at the same time, or
// presence refuses it there too. A refusal is not a reason to wait: s-1 is
// offered a2 as soon as a2 is free again.
TEST_F(RouterTest, AnEntryItsAgentsRefusedIsOfferedTheNextFreeAgentWithoutBackOff) {
  presence::v1::Agent a1 = AgentOnline("a1", 1, absl::Minutes(30));
  presence_.SetCapacity("a1", 0);
  ASSERT_TRUE(router_->ResetPresence({a1, AgentOnline("a2", 1, absl::Minutes(20))}).ok());
  router_->RunOnce();  // the start-up reconciliation
  ASSERT_TRUE(Enqueue("s-1").ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  const bool first_got_it = Entry("s-1").state() == v1::ENTRY_STATE_OFFERED;
  const std::string offered = first_got_it ? "s-1" : "s-2";
  const std::string waiting = first_got_it ? "s-2" : "s-1";
  EXPECT_EQ(Entry(offered).offered_agent_id(), "a2");
  EXPECT_EQ(Entry(waiting).state(), v1::ENTRY_STATE_WAITING);
  EXPECT_GE(metrics_.reservations_refused->Value(), 1);
  ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, offered, v1::CANCEL_REASON_CLOSED));
  // As presence reports a2 after the release; no time passes.
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("a2", 1, absl::Minutes(20))).ok());
  router_->RunOnce();
  EXPECT_EQ(Entry(waiting).offered_agent_id(), "a2");
}

// ---- complaints ----

TEST_F(RouterTest, ComplaintsGoToWatchingSupervisors) {
  Router::EnqueueComplaintCommand c{"cmp-1", "cust-1", CATEGORY_DEPOSIT, "s-9",
                                    v1::PRIORITY_NORMAL};
  absl::StatusOr<Router::EnqueueResult> queued = router_->EnqueueComplaint(c);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->entry.priority(), v1::PRIORITY_HIGH);
  EXPECT_TRUE(router_->EnqueueComplaint(c)->replayed);
  presence::v1::Agent sup = AgentOnline("sup-1", 0, absl::Minutes(1));
  ASSERT_TRUE(router_->ResetPresence({sup}).ok());
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
  // Complaints hold no capacity.
  EXPECT_EQ(presence_.calls("Reserve"), 0);
  router_->UnsubscribeOffers(&recorder);
}

TEST_F(RouterTest, ComplaintsArePacedOneAtATimeLeastRecentAcceptFirst) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("sup-a", 0, absl::Minutes(1)),
                                   AgentOnline("sup-b", 0, absl::Minutes(1))})
                  .ok());
  Recorder a, b;
  router_->SubscribeOffers("sup-a", true, &a);
  router_->SubscribeOffers("sup-b", true, &b);
  for (int i = 1; i <= 4; ++i) {
    clock_.Advance(absl::Seconds(1));
    Router::EnqueueComplaintCommand c{"cmp-" + std::to_string(i), "cust", CATEGORY_DEPOSIT,
                                      "", v1::PRIORITY_HIGH};
    ASSERT_TRUE(router_->EnqueueComplaint(c).ok());
  }
  router_->RunOnce();
  // One open complaint offer per supervisor at a time.
  ASSERT_EQ(a.open().size(), 1u);
  ASSERT_EQ(b.open().size(), 1u);
  EXPECT_EQ(a.open()[0].entry().complaint_id(), "cmp-1");
  EXPECT_EQ(b.open()[0].entry().complaint_id(), "cmp-2");
  // sup-a takes theirs and is free again: the next complaint is theirs.
  ASSERT_TRUE(router_->AcceptOffer("sup-a", a.open()[0].offer_id()).ok());
  router_->RunOnce();
  ASSERT_EQ(a.open().size(), 2u);
  EXPECT_EQ(b.open().size(), 1u);
  // sup-b takes theirs, then sup-a: with both free, the one who took a
  // complaint least recently (sup-b) gets the last one.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(router_->AcceptOffer("sup-b", b.open()[0].offer_id()).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(router_->AcceptOffer("sup-a", a.open()[1].offer_id()).ok());
  router_->RunOnce();
  ASSERT_EQ(b.open().size(), 2u);
  EXPECT_EQ(b.open()[1].entry().complaint_id(), "cmp-4");
  EXPECT_EQ(a.open().size(), 2u);
  router_->UnsubscribeOffers(&a);
  router_->UnsubscribeOffers(&b);
}

// ---- restarts ----

TEST_F(RouterTest, ARestartKeepsWaitingOfferedAndAssignedEntries) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                                   AgentOnline("a2", 1, absl::Minutes(20))})
                  .ok());
  ASSERT_TRUE(Enqueue("s-assigned").ok());
  router_->RunOnce();
  ASSERT_TRUE(router_->AcceptOffer("a1", OfferOf("a1")).ok());
  // As presence reports it: a1 is full.
  presence::v1::Agent a1_full = AgentOnline("a1", 1, absl::Minutes(30));
  a1_full.mutable_profile()->mutable_capacities(0)->set_load(1);
  ASSERT_TRUE(router_->OnAgentChange(a1_full).ok());
  ASSERT_TRUE(Enqueue("s-offered").ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Enqueue("s-waiting").ok());
  router_->RunOnce();
  const std::string offered = OfferOf("a2");
  ASSERT_EQ(Entry("s-waiting").state(), v1::ENTRY_STATE_WAITING);

  Restart();
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                                   AgentOnline("a2", 1, absl::Minutes(20))})
                  .ok());
  EXPECT_EQ(Entry("s-offered").offered_agent_id(), "a2");
  EXPECT_EQ(Entry("s-waiting").position(), 2);
  EXPECT_EQ(OfferOf("a2"), offered);
  // The assignment survived: the same accept is still answered, and a
  // lapse of its agent re-queues it.
  EXPECT_EQ(router_->AcceptOffer("a2", offered)->session_id(), "s-offered");
  ASSERT_TRUE(router_->OnAgentChange(Offline("a1")).ok());
  EXPECT_EQ(Entry("s-assigned").reason(), v1::ENQUEUE_REASON_AGENT_UNAVAILABLE);
}

// ---- durable answers ----

// Runs `call` on its own thread.
struct Attempt {
  explicit Attempt(std::function<absl::Status()> call)
      : thread([this, call] {
          status = call();
          done.Notify();
        }) {}
  ~Attempt() {
    // A test that failed early may leave the call waiting on a held commit
    // forever: end the test binary rather than hang it.
    if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      std::fprintf(stderr, "a call never returned\n");
      std::abort();
    }
    thread.join();
  }
  absl::Status status;
  absl::Notification done;
  std::thread thread;
};

TEST_F(RouterTest, AnEnqueueRetryIsNotAcknowledgedBeforeTheFirstIsDurable) {
  store_->Hold();
  Attempt first([&] { return Enqueue("s-1").status(); });
  ASSERT_TRUE(store_->AwaitHeld(1));
  Attempt retry([&] { return Enqueue("s-1").status(); });
  EXPECT_FALSE(retry.done.WaitForNotificationWithTimeout(absl::Milliseconds(300)))
      << "the retry was answered (" << retry.status << ") before the first enqueue was saved";
  store_->Fail(absl::InternalError("disk I/O error"));
  first.done.WaitForNotification();
  retry.done.WaitForNotification();
  EXPECT_FALSE(first.status.ok());
  EXPECT_FALSE(retry.status.ok()) << "a retry was acknowledged for an enqueue never saved";
  // Fail-stop until a restart, which finds nothing.
  EXPECT_EQ(Enqueue("s-2").status().code(), absl::StatusCode::kUnavailable);
  Restart();
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RouterTest, AnAcceptRetryIsNotAcknowledgedBeforeTheAcceptIsDurable) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  // The accept intent commits; the commit of the assignment is held.
  store_->HoldAfter(1);
  Attempt first([&] { return router_->AcceptOffer("a1", offer).status(); });
  ASSERT_TRUE(store_->AwaitHeld(1));
  Attempt retry([&] { return router_->AcceptOffer("a1", offer).status(); });
  EXPECT_FALSE(retry.done.WaitForNotificationWithTimeout(absl::Milliseconds(300)))
      << "the retry was answered (" << retry.status << ") before the accept was saved";
  store_->Release();
  first.done.WaitForNotification();
  retry.done.WaitForNotification();
  EXPECT_TRUE(first.status.ok()) << first.status;
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_GE(store_->committed(), 1);
}

TEST_F(RouterTest, CancelAndDeclineRetriesWaitForTheFirstCommit) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");

  store_->Hold();
  Attempt decline([&] {
    return router_->DeclineOffer("a1", offer, v1::DECLINE_REASON_BUSY).status();
  });
  ASSERT_TRUE(store_->AwaitHeld(1));
  Attempt decline_retry([&] {
    return router_->DeclineOffer("a1", offer, v1::DECLINE_REASON_BUSY).status();
  });
  EXPECT_FALSE(decline_retry.done.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  Attempt cancel(
      [&] { return router_->Cancel(v1::ENTRY_KIND_SESSION, "s-2", {}).status(); });
  ASSERT_TRUE(store_->AwaitHeld(2));
  Attempt cancel_retry(
      [&] { return router_->Cancel(v1::ENTRY_KIND_SESSION, "s-2", {}).status(); });
  EXPECT_FALSE(cancel_retry.done.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  store_->Fail(absl::InternalError("disk I/O error"));
  for (Attempt* a : {&decline, &decline_retry, &cancel, &cancel_retry}) {
    a->done.WaitForNotification();
    EXPECT_FALSE(a->status.ok());
  }
}

TEST_F(RouterTest, AFailedCommitStopsEveryWriteUntilARestart) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  store_->Break(absl::InternalError("disk full"));
  EXPECT_EQ(Enqueue("s-2").status().code(), absl::StatusCode::kUnavailable);
  store_->Repair();
  // The memory may be ahead of the disk: nothing more is decided.
  EXPECT_EQ(Enqueue("s-3").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", {}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(router_->UpdateSettings("a1", {}, "a1").status().code(),
            absl::StatusCode::kUnavailable);
  router_->RunOnce();
  EXPECT_EQ(presence_.calls("Reserve"), 0);
  Restart();
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(3))}).ok());
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-2").status().code(),
            absl::StatusCode::kNotFound);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
}

TEST_F(RouterTest, RefusedAdmissionDecidesNothing) {
  store_->set_admit(limits::Exhausted("storage busy", absl::Seconds(1)));
  absl::Status refused = Enqueue("s-1").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limits::RetryAfterSeconds(refused), 1);
  store_->set_admit(absl::OkStatus());
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);
  // An admission refusal is not a storage failure.
  EXPECT_TRUE(Enqueue("s-1").ok());
}

// ---- back-off when peers fail ----

TEST_F(RouterTest, AnUnreachablePresenceIsRetriedWithBackoff) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  presence_.Fail("Reserve", absl::UnavailableError("connection refused"));
  router_->RunOnce();
  EXPECT_EQ(presence_.calls("Reserve"), 1);
  const double failures = metrics_.peer_failures->Value();
  EXPECT_GE(failures, 1);
  // Backing off: the next passes do not hammer presence.
  router_->RunOnce();
  router_->RunOnce();
  EXPECT_EQ(presence_.calls("Reserve"), 1);
  presence_.Heal("Reserve");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
}

TEST_F(RouterTest, AnOfferSessionsRefusesGivesTheCapacityBackAndBacksOff) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  sessions_.Fail("RecordOffer", absl::UnavailableError("sessions down"));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(presence_.Load("a1"), 0);
  EXPECT_EQ(OwedOnDisk(), 0u);
  router_->RunOnce();
  EXPECT_EQ(presence_.calls("Reserve"), 1);
  sessions_.Heal("RecordOffer");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
  EXPECT_EQ(presence_.Load("a1"), 1);
}

TEST_F(RouterTest, ARequeueSessionsMissesIsToldAgainLater) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  ASSERT_TRUE(router_->AcceptOffer("a1", OfferOf("a1")).ok());
  sessions_.Fail("RequeueSession", absl::UnavailableError("sessions down"));
  ASSERT_TRUE(router_->OnAgentChange(Offline("a1")).ok());
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("a2", 1, absl::Minutes(3))).ok());
  router_->RunOnce();
  // Not offered before sessions knows the session waits again.
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  sessions_.Heal("RequeueSession");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();
  EXPECT_EQ(sessions_.View("s-1").state, SessionView::State::kQueued);
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a2");
}

// Passes stop looking at a settled assignment; its agent's lapse still
// re-queues it, tells sessions and offers it again.
TEST_F(RouterTest, AnAssignmentPassesLeftAloneIsRequeuedWhenItsAgentLapses) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  ASSERT_TRUE(router_->AcceptOffer("a1", OfferOf("a1")).ok());
  router_->RunOnce();
  clock_.Advance(options_.offer_timeout * 2);
  router_->RunOnce();
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  ASSERT_EQ(Entry("s-2").offered_agent_id(), "a1");

  sessions_.Fail("RequeueSession", absl::UnavailableError("sessions down"));
  ASSERT_TRUE(router_->OnAgentChange(Offline("a1")).ok());
  ASSERT_TRUE(router_->OnAgentChange(AgentOnline("a2", 2, absl::Minutes(3))).ok());
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_WAITING);
  sessions_.Heal("RequeueSession");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();
  EXPECT_EQ(sessions_.View("s-1").state, SessionView::State::kQueued);
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a2");
  EXPECT_EQ(Entry("s-2").offered_agent_id(), "a2");
  // Its new offer expires like any other.
  clock_.Advance(options_.offer_timeout);
  router_->RunOnce();
  EXPECT_EQ(metrics_.offers_expired->Value(), 2);
}

TEST_F(RouterTest, CallsForAnAgentCarryTheirDeadlineAndBackgroundCallsTheirOwn) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  EXPECT_EQ(presence_.last_deadline("Reserve"), absl::InfiniteFuture());
  EXPECT_EQ(sessions_.last_deadline("RecordOffer"), absl::InfiniteFuture());
  const absl::Time deadline = absl::Now() + absl::Seconds(7);
  ASSERT_TRUE(router_->AcceptOffer("a1", OfferOf("a1"), deadline).ok());
  EXPECT_EQ(presence_.last_deadline("Confirm"), deadline);
  EXPECT_EQ(sessions_.last_deadline("AssignAgent"), deadline);
  ASSERT_TRUE(router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", {}, deadline).ok());
  EXPECT_EQ(presence_.last_deadline("Release"), deadline);
}

// ---- capacity that cannot leak ----

TEST_F(RouterTest, AReleasePresenceMissedIsOwedDurablyAndRetried) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  ASSERT_TRUE(router_->AcceptOffer("a1", OfferOf("a1")).ok());
  presence_.Fail("Release", absl::UnavailableError("presence down"));
  ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_RESOLVED));
  EXPECT_EQ(presence_.Load("a1"), 1);
  EXPECT_EQ(OwedOnDisk(), 1u);
  // Owed across a restart.
  Restart();
  presence_.Heal("Release");
  router_->RunOnce();
  EXPECT_EQ(presence_.Load("a1"), 0);
  EXPECT_EQ(OwedOnDisk(), 0u);
  EXPECT_EQ(metrics_.releases_owed->Value(), 0);
}

TEST_F(RouterTest, AnOldOffersLateReleaseDoesNotFreeTheNextOffersCapacity) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string first = OfferOf("a1");
  // The first offer expires while presence is unreachable: its release is
  // owed. The same agent is offered the session again.
  presence_.Fail("Release", absl::UnavailableError("presence down"));
  clock_.Advance(options_.offer_timeout);
  router_->RunOnce();
  presence_.Heal("Release");
  router_->RunOnce();
  ASSERT_EQ(Entry("s-1").offered_agent_id(), "a1");
  const std::string second = OfferOf("a1");
  ASSERT_NE(first, second);
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();  // the owed release of the first offer is sent now
  EXPECT_EQ(OwedOnDisk(), 0u);
  EXPECT_EQ(presence_.Load("a1"), 1);
  ASSERT_TRUE(router_->AcceptOffer("a1", second).ok());
  EXPECT_EQ(presence_.held()["s-1"].assigned, true);
}

// Sessions' cancel of a session whose accept is still being completed
// (here its answer was lost) waits for the accept to settle: dropping the
// entry would withdraw an offer sessions had applied.
TEST_F(RouterTest, ACancelWaitsForAnAcceptBeingCompleted) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  sessions_.LoseReplies("AssignAgent");
  EXPECT_EQ(router_->AcceptOffer("a1", offer).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_RESOLVED)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  auto entry = router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->entry.state(), v1::ENTRY_STATE_OFFERED);
  sessions_.Heal("AssignAgent");
  ASSERT_TRUE(router_->AcceptOffer("a1", offer).ok());
  auto cancelled = router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", v1::CANCEL_REASON_RESOLVED);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_TRUE(*cancelled);
  EXPECT_EQ(presence_.Load("a1"), 0);
}

TEST_F(RouterTest, AnAcceptCutShortAfterAssigningIsFinishedAfterARestart) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  // Sessions assigns the agent but the answer never comes back.
  sessions_.LoseReplies("AssignAgent");
  absl::Status cut = router_->AcceptOffer("a1", offer).status();
  EXPECT_EQ(cut.code(), absl::StatusCode::kUnavailable) << cut;
  EXPECT_EQ(sessions_.View("s-1").state, SessionView::State::kAssigned);
  // The accept is recorded: the offer does not expire, and nobody else gets
  // the session.
  clock_.Advance(options_.offer_timeout * 2);
  Restart();
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3)),
                                   AgentOnline("a2", 1, absl::Minutes(30))})
                  .ok());
  sessions_.Heal("AssignAgent");
  router_->RunOnce();
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);  // assigned
  EXPECT_EQ(router_->AcceptOffer("a1", offer)->session_id(), "s-1");
  EXPECT_TRUE(OpenOffers("a2").empty());
  EXPECT_EQ(presence_.Load("a1"), 1);
  EXPECT_TRUE(presence_.held()["s-1"].assigned);
  int assigns = 0;
  for (const std::string& call : sessions_.Calls()) assigns += absl::StartsWith(call, "AssignAgent");
  EXPECT_EQ(assigns, 2);  // the lost one and its idempotent repeat
}

TEST_F(RouterTest, AnAcceptWhoseCapacityLapsedIsRolledBackAndOfferedAgain) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 1, absl::Minutes(30)),
                                   AgentOnline("a2", 1, absl::Minutes(3))})
                  .ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  presence_.Drop("s-1");  // the hold lapsed in presence
  EXPECT_EQ(router_->AcceptOffer("a1", offer).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sessions_.View("s-1").state, SessionView::State::kQueued);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_OFFERED);
  EXPECT_EQ(presence_.calls("Reserve"), 2);
}

TEST_F(RouterTest, AnAssignmentWhoseCapacityWasLostIsKeptAndItsCapacityRestored) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 2, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  sessions_.LoseReplies("AssignAgent");
  EXPECT_FALSE(router_->AcceptOffer("a1", offer).ok());
  sessions_.Heal("AssignAgent");
  // Meanwhile presence lost the reservation (released by mistake).
  presence_.Drop("s-1");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();  // the accept resumes: Confirm fails, GetSession says assigned
  EXPECT_EQ(router_->AcceptOffer("a1", offer)->session_id(), "s-1");
  clock_.Advance(absl::Seconds(1));
  router_->RunOnce();  // the reconciliation that follows restores it
  EXPECT_EQ(presence_.Load("a1"), 1);
  EXPECT_TRUE(presence_.held()["s-1"].assigned);
}

TEST_F(RouterTest, AnAcceptInProgressIsNotExpiredAndAClosedSessionLetsItGo) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const std::string offer = OfferOf("a1");
  presence_.Fail("Confirm", absl::UnavailableError("presence down"));
  EXPECT_EQ(router_->AcceptOffer("a1", offer).status().code(), absl::StatusCode::kUnavailable);
  clock_.Advance(options_.offer_timeout * 3);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_OFFERED);
  EXPECT_EQ(metrics_.accepts_in_progress->Value(), 1);
  // The agent's retry after the deadline still completes the accept.
  presence_.Heal("Confirm");
  sessions_.Close("s-1");  // ... unless the customer left meanwhile
  EXPECT_EQ(router_->AcceptOffer("a1", offer).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(router_->GetEntry(v1::ENTRY_KIND_SESSION, "s-1").status().code(),
            absl::StatusCode::kNotFound);
  router_->RunOnce();
  EXPECT_EQ(presence_.Load("a1"), 0);
}

TEST_F(RouterTest, ReconciliationFreesLeakedCapacityAndWithdrawsOffersWithoutIt) {
  ASSERT_TRUE(router_
                  ->ResetPresence({AgentOnline("a1", 3, absl::Minutes(30)),
                                   AgentOnline("a2", 3, absl::Minutes(3))})
                  .ok());
  // Capacity a crash left behind: a reservation no offer holds, and a
  // confirmed one whose release was lost before holder ids existed.
  presence_.Put("ghost", {"a1", CHANNEL_CHAT, 0, false});
  presence_.Put("ghost-assigned", {"a2", CHANNEL_CHAT, 0, true});
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();  // reconciles at start, then offers
  EXPECT_EQ(presence_.reconciles(), 1);
  EXPECT_EQ(presence_.held().count("ghost"), 0u);
  EXPECT_EQ(presence_.held().count("ghost-assigned"), 0u);
  EXPECT_EQ(metrics_.capacity_reconciled_released->Value(), 2);
  ASSERT_EQ(Entry("s-1").offered_agent_id(), "a1");
  EXPECT_EQ(presence_.Load("a1"), 1);

  const std::string first = OfferOf("a1");

  // The offer's reservation disappears: the next reconciliation withdraws
  // the offer, and the entry is offered again with capacity behind it.
  presence_.Drop("s-1");
  clock_.Advance(options_.reconcile_interval);
  router_->RunOnce();
  EXPECT_EQ(Entry("s-1").state(), v1::ENTRY_STATE_OFFERED);
  EXPECT_NE(OfferOf("a1"), first);
  EXPECT_EQ(presence_.Load("a1"), 1);
  EXPECT_EQ(router_->AcceptOffer("a1", first).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(metrics_.reconciliations_ok->Value(), 2);
}

TEST_F(RouterTest, ReconciliationSparesAReservationBeingMade) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  router_->RunOnce();  // the start-up reconciliation
  ASSERT_TRUE(Enqueue("s-1").ok());
  // An offer reserves in presence and waits there for its answer...
  presence_.Pause("Reserve");
  std::thread offering([&] { router_->RunOnce(); });
  ASSERT_TRUE(presence_.AwaitPaused("Reserve"));
  // ... while another pass reconciles.
  clock_.Advance(options_.reconcile_interval);
  std::thread reconciling([&] { router_->RunOnce(); });
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (presence_.reconciles() < 2 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(presence_.reconciles(), 2);
  EXPECT_EQ(presence_.held().count("s-1"), 1u) << "a reservation in flight was released";
  presence_.Resume("Reserve");
  offering.join();
  reconciling.join();
  EXPECT_EQ(Entry("s-1").offered_agent_id(), "a1");
  EXPECT_EQ(presence_.Load("a1"), 1);
}

TEST_F(RouterTest, HolderIdsKeepGrowingAcrossRestarts) {
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-1").ok());
  router_->RunOnce();
  const int64_t before = presence_.held()["s-1"].holder_id;
  ASSERT_GT(before, 0);
  ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-1", {}));
  Restart();
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  ASSERT_TRUE(Enqueue("s-2").ok());
  router_->RunOnce();
  EXPECT_GT(presence_.held()["s-2"].holder_id, before);
}

// ---- memory bounded by open work ----

TEST_F(RouterTest, ClosedOffersLeaveMemoryButStillAnswerUntilTheirRetentionEnds) {
  options_.closed_offers_cached = 1;
  options_.closed_offer_retention = absl::Hours(1);
  Restart();
  ASSERT_TRUE(router_->ResetPresence({AgentOnline("a1", 1, absl::Minutes(3))}).ok());
  std::vector<std::string> offers;
  for (const char* session : {"s-1", "s-2"}) {
    ASSERT_TRUE(Enqueue(session).ok());
    router_->RunOnce();
    offers.push_back(OfferOf("a1"));
    ASSERT_TRUE(router_->DeclineOffer("a1", offers.back(), v1::DECLINE_REASON_BUSY).ok());
    ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, session, {}));
  }
  // The first is no longer cached: its idempotent replies come from disk.
  absl::StatusOr<v1::Offer> again =
      router_->DeclineOffer("a1", offers[0], v1::DECLINE_REASON_BUSY);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->outcome(), v1::OFFER_OUTCOME_DECLINED);
  EXPECT_EQ(router_->AcceptOffer("a1", offers[0]).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(router_->AcceptOffer("a2", offers[0]).status().code(), absl::StatusCode::kNotFound);
  // Past the retention they are pruned.
  clock_.Advance(absl::Hours(2));
  router_->RunOnce();
  for (const std::string& offer : offers) {
    EXPECT_EQ(router_->DeclineOffer("a1", offer, v1::DECLINE_REASON_BUSY).status().code(),
              absl::StatusCode::kNotFound);
  }
}

// The value of the gauge `name` of the DEPOSIT chat queue in `language`, or
// nullopt when the series does not exist.
std::optional<double> QueueGauge(prometheus::Registry& registry, const std::string& name,
                                 const std::string& language) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      int matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        matched += (label.name == "language" && label.value == language) ||
                   (label.name == "channel" && label.value == "chat") ||
                   (label.name == "category" && label.value == "deposit");
      }
      if (matched == 3) return metric.gauge.value;
    }
  }
  return std::nullopt;
}

TEST_F(RouterTest, AQueuesAgentGaugesDropToZeroWhenItsLastAgentLeaves) {
  ASSERT_TRUE(
      router_->ResetPresence({AgentOnline("zh-agent", 2, absl::Minutes(3), "zh-CN")}).ok());
  router_->RunOnce();
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_eligible_agents", "zh"), 1.0);
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_available_agents", "zh"), 1.0);
  ASSERT_TRUE(router_->OnAgentChange(Offline("zh-agent")).ok());
  router_->RunOnce();
  // Passes refresh the gauges once per gauge_interval.
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_eligible_agents", "zh"), 1.0);
  clock_.Advance(options_.gauge_interval);
  router_->RunOnce();
  // Not its last value: the queue left the statistics and reads zero.
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_eligible_agents", "zh"), 0.0);
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_available_agents", "zh"), 0.0);
  // A queue holding an entry is in the statistics, at zero agents.
  Router::EnqueueSessionCommand zh = Command("s-zh");
  zh.language = "zh-TW";
  ASSERT_TRUE(router_->EnqueueSession(zh).ok());
  clock_.Advance(options_.gauge_interval);
  router_->RunOnce();
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_depth", "zh"), 1.0);
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_eligible_agents", "zh"), 0.0);
}

// Found by //services/routing/fuzz:routing_fuzz: presence (a newer version,
// say) reports capacity on a channel this build does not know. The queue's
// gauges are labelled with the channel's number; routing used to throw
// std::out_of_range while naming it, which ended the process.
TEST_F(RouterTest, AChannelThisBuildDoesNotKnowIsLabelledByItsNumber) {
  presence::v1::Agent agent = AgentOnline("newer", 1, absl::Minutes(3));
  presence::v1::ChannelCapacity* unknown = agent.mutable_profile()->add_capacities();
  unknown->set_channel(static_cast<common::v1::Channel>(96));
  unknown->set_capacity(3);
  ASSERT_TRUE(router_->ResetPresence({agent}).ok());
  router_->RunOnce();
  bool labelled = false;
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    if (family.name != "switchboard_routing_queue_eligible_agents") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        labelled |= label.name == "channel" && label.value == "96";
      }
    }
  }
  EXPECT_TRUE(labelled);
  EXPECT_EQ(QueueGauge(registry_, "switchboard_routing_queue_eligible_agents", "en"), 1.0);
}

TEST_F(RouterTest, QueuesOfLanguagesNobodyWaitsInAnyMoreAreForgotten) {
  // Customers choose languages: queues and their series must follow open
  // work, not history.
  options_.idle_queue_gauges_kept = 5;
  Restart();
  for (int i = 0; i < 20; ++i) {
    Router::EnqueueSessionCommand c = Command("s-" + std::to_string(i));
    c.language = "x" + std::string(1, static_cast<char>('a' + i));
    ASSERT_TRUE(router_->EnqueueSession(c).ok());
  }
  router_->RunOnce();
  EXPECT_EQ(router_->Stats({}).size(), 20u);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(*router_->Cancel(v1::ENTRY_KIND_SESSION, "s-" + std::to_string(i), {}));
  }
  clock_.Advance(options_.gauge_interval);
  router_->RunOnce();
  EXPECT_TRUE(router_->Stats({}).empty());
  int series = 0;
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    if (family.name == "switchboard_routing_queue_depth") {
      series = static_cast<int>(family.metric.size());
    }
  }
  EXPECT_EQ(series, 5);
}

}  // namespace
}  // namespace switchboard::routing
