#include "services/sessions/sessions.h"

#include <deque>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "prometheus/registry.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using v1::SessionState;

// Keeps what was committed in memory; answers reads from it.
class FakeSessionStore : public SessionStore {
 public:
  absl::StatusOr<Contents> Load() override {
    absl::MutexLock lock(&mu_);
    Contents contents;
    for (const auto& [id, s] : sessions_) contents.sessions.push_back(s);
    return contents;
  }
  void Apply(SessionWrite write, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      for (const auto& s : write.sessions) sessions_[s.session.session_id()] = s;
      for (const auto& e : write.session_events) {
        events_[e.session_id()][e.sequence()] = e;
      }
      for (const auto& e : write.events) outbox_.push_back(e);
    }
    done(absl::OkStatus());
  }
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(const std::string& session_id,
                                                           int64_t after, int64_t up_to,
                                                           int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::SessionEvent> out;
    for (const auto& [seq, e] : events_[session_id]) {
      if (seq > after && seq <= up_to && static_cast<int>(out.size()) < limit) out.push_back(e);
    }
    return out;
  }
  absl::StatusOr<std::vector<v1::Message>> ReadMessages(const std::string& session_id,
                                                        int64_t after, int64_t before,
                                                        bool newest_first, int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Message> out;
    for (const auto& [seq, e] : events_[session_id]) {
      if (e.has_message() && seq > after && (before == 0 || seq < before)) {
        out.push_back(e.message());
      }
    }
    if (newest_first) std::reverse(out.begin(), out.end());
    if (static_cast<int>(out.size()) > limit) out.resize(limit);
    return out;
  }
  std::vector<std::string> EventTypes() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> types;
    for (const auto& e : outbox_) types.push_back(e.type());
    return types;
  }
  int Count(absl::string_view type) {
    int n = 0;
    for (const auto& t : EventTypes()) n += t == type;
    return n;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, SessionRecord> sessions_;
  std::map<std::string, std::map<int64_t, v1::SessionEvent>> events_;
  std::vector<events::v1::Event> outbox_;
};

class FakeBot : public BotClient {
 public:
  absl::StatusOr<bot::v1::AnswerResponse> Answer(const bot::v1::AnswerRequest& r) override {
    ++calls;
    if (hook) hook();
    if (!status.ok()) return status;
    bot::v1::AnswerResponse response;
    if (r.text() == "human") {
      response.set_outcome(bot::v1::ANSWER_OUTCOME_ESCALATED);
      response.set_reply_text("An agent is coming.");
      response.mutable_handoff()->set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
      response.mutable_handoff()->set_category(common::v1::CATEGORY_DEPOSIT);
      auto* guess = response.mutable_handoff()->add_intent_guesses();
      guess->set_intent_id("deposit_not_credited");
      guess->set_confidence(0.8f);
    } else {
      response.set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
      response.set_reply_text(absl::StrCat("answer to ", r.text()));
      response.set_answered_intent_id("faq");
    }
    return response;
  }
  absl::Status ResetDialogue(const std::string&) override { return absl::OkStatus(); }
  absl::Status status;
  int calls = 0;
  // Runs inside each call (to start other work meanwhile).
  std::function<void()> hook;
};

class FakeRouting : public RoutingClient {
 public:
  absl::Status Enqueue(const routing::v1::EnqueueSessionRequest& r) override {
    if (!status.ok()) return status;
    enqueued.push_back(r);
    return absl::OkStatus();
  }
  absl::Status Cancel(const std::string& id, routing::v1::CancelReason reason) override {
    if (!status.ok()) return status;
    cancelled.push_back({id, reason});
    return absl::OkStatus();
  }
  absl::Status status;
  std::vector<routing::v1::EnqueueSessionRequest> enqueued;
  std::vector<std::pair<std::string, routing::v1::CancelReason>> cancelled;
};

class SessionsTest : public ::testing::Test {
 protected:
  SessionsTest() : tokens_(std::string(32, 'k')), metrics_(registry_) { Make(&bot_); }

  void Make(BotClient* bot, SessionsOptions options = SessionsOptions()) {
    sessions_ = std::make_unique<Sessions>(
        &store_, &clock_, &metrics_, &tokens_, bot, &routing_,
        [this](std::function<void()> task) { background_.push_back(std::move(task)); },
        options);
    ASSERT_TRUE(sessions_->Load().ok());
  }

  // Runs queued background work (bot turns, routing calls) to completion.
  void RunBackground() {
    while (!background_.empty()) {
      auto task = std::move(background_.front());
      background_.pop_front();
      task();
    }
  }

  v1::Session NewChat(const std::string& customer = "cust-1", const std::string& text = "") {
    v1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    if (!text.empty()) request.mutable_first_message()->set_text(text);
    auto created = sessions_->Create({customer, Role::kCustomer}, request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created->session;
  }

  absl::StatusOr<Sessions::Sent> Send(const std::string& id, const Caller& caller,
                                      const std::string& text, const std::string& key) {
    v1::NewMessage message;
    message.set_text(text);
    return sessions_->SendMessage(caller, id, key, message);
  }

  v1::Session Get(const std::string& id) {
    return *sessions_->Get({"sup", Role::kSupervisor}, id);
  }

  std::string VerificationToken(const std::string& customer,
                                absl::Duration ttl = absl::Minutes(15)) {
    auth::VerificationClaims claims;
    claims.customer_id = customer;
    claims.method = "sms_otp";
    claims.level = auth::kLevelBasic;
    claims.token_id = "tid-1";
    claims.issued_at = clock_.Now();
    claims.expires_at = clock_.Now() + ttl;
    return *auth::SignVerificationToken(tokens_, claims);
  }

  const Caller kCustomer{"cust-1", Role::kCustomer};
  const Caller kRouting{"routing", Role::kService};
  const Caller kAgent{"agent-1", Role::kAgent};
  FakeClock clock_;
  auth::TokenCodec tokens_;
  prometheus::Registry registry_;
  SessionsMetrics metrics_;
  FakeSessionStore store_;
  FakeBot bot_;
  FakeRouting routing_;
  std::deque<std::function<void()>> background_;
  std::unique_ptr<Sessions> sessions_;
};

TEST(TransitionTableTest, OnlyTheDocumentedTransitions) {
  using S = SessionState;
  const std::vector<std::pair<S, S>> allowed = {
      {S::SESSION_STATE_BOT, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_BOT, S::SESSION_STATE_RESOLVED},
      {S::SESSION_STATE_BOT, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_QUEUED, S::SESSION_STATE_ASSIGNED},
      {S::SESSION_STATE_QUEUED, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_BOT},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_RESOLVED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_RESOLVED, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_RESOLVED, S::SESSION_STATE_CLOSED},
  };
  for (int from = 0; from <= 5; ++from) {
    for (int to = 0; to <= 5; ++to) {
      const bool expected =
          std::find(allowed.begin(), allowed.end(),
                    std::make_pair(static_cast<S>(from), static_cast<S>(to))) != allowed.end();
      EXPECT_EQ(TransitionAllowed(static_cast<S>(from), static_cast<S>(to)), expected)
          << from << " -> " << to;
    }
  }
}

TEST_F(SessionsTest, BotAnswersInBotState) {
  v1::Session s = NewChat("cust-1", "how do I deposit?");
  EXPECT_EQ(s.state(), v1::SESSION_STATE_BOT);
  RunBackground();
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_BOT);
  EXPECT_EQ(after.message_count(), 2);
  auto events = *sessions_->ReadEvents(s.session_id(), 0, 100, 100);
  ASSERT_EQ(events.size(), 3u);  // created, customer message, bot reply
  EXPECT_EQ(events[2].message().sender_role(), common::v1::SENDER_ROLE_BOT);
  EXPECT_EQ(events[2].message().text(), "answer to how do I deposit?");
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].sequence(), int64_t(i + 1));
  EXPECT_EQ(store_.Count("sessions.message_sent"), 2);
}

TEST_F(SessionsTest, BotEscalationHandsContextToRouting) {
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "my deposit is missing", "m1").ok());
  RunBackground();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "human", "m2").ok());
  RunBackground();
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(after.category(), common::v1::CATEGORY_DEPOSIT);
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  const auto& e = routing_.enqueued[0];
  EXPECT_EQ(e.reason(), routing::v1::ENQUEUE_REASON_ESCALATED);
  EXPECT_EQ(e.category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(e.handoff().intent_guesses(0).intent_id(), "deposit_not_credited");
  EXPECT_EQ(e.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  ASSERT_GE(e.handoff().transcript_excerpt_size(), 3);
  EXPECT_EQ(e.handoff().transcript_excerpt(0).text(), "my deposit is missing");
  EXPECT_FALSE(Get(s.session_id()).has_first_human_response_at());
  // The bot is out: another customer message does not reach it.
  const int calls = bot_.calls;
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "hello?", "m3").ok());
  RunBackground();
  EXPECT_EQ(bot_.calls, calls);
  EXPECT_EQ(store_.Count("sessions.session_escalated"), 1);
}

TEST_F(SessionsTest, BotFailureEscalatesAndKeepsTheMessage) {
  bot_.status = absl::DeadlineExceededError("slow");
  v1::Session s = NewChat();
  auto sent = Send(s.session_id(), kCustomer, "help", "m1");
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->state, v1::SESSION_STATE_BOT);
  RunBackground();
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(after.handoff().reason(), common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(routing_.enqueued[0].handoff().transcript_excerpt(0).text(), "help");
  auto messages = *sessions_->ListMessages(kCustomer, s.session_id(), 0, 0, false, 0, "");
  ASSERT_EQ(messages.messages.size(), 1u);
  EXPECT_EQ(messages.messages[0].text(), "help");
}

TEST_F(SessionsTest, NoBotConfiguredEscalates) {
  Make(nullptr);
  v1::Session s = NewChat("cust-1", "hi");
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_QUEUED);
}

TEST_F(SessionsTest, ABotTurnCutShortByARestartRunsAgain) {
  v1::Session s = NewChat("cust-1", "where is my deposit?");
  background_.clear();  // the process stopped before the bot answered
  Make(&bot_);
  sessions_->ResumeBotTurns();
  auto events = *sessions_->ReadEvents(s.session_id(), 0, 100, 100);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].message().text(), "answer to where is my deposit?");
  // Done: another restart does not answer twice.
  Make(&bot_);
  sessions_->ResumeBotTurns();
  EXPECT_EQ(Get(s.session_id()).last_sequence(), 3);
}

TEST_F(SessionsTest, BotTurnsOfASessionRunInOrder) {
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "first", "k1").ok());
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "second", "k2").ok());
  ASSERT_EQ(background_.size(), 2u);
  // The second turn starts while the first is running: it waits for it.
  auto first = std::move(background_.front());
  auto second = std::move(background_.back());
  background_.clear();
  bool ran_second = false;
  bot_.hook = [&] {
    if (!ran_second) {
      ran_second = true;
      second();
    }
  };
  first();
  auto events = *sessions_->ReadEvents(s.session_id(), 0, 100, 100);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3].message().text(), "answer to first");
  EXPECT_EQ(events[4].message().text(), "answer to second");
}

TEST_F(SessionsTest, StaleBotAnswerAfterEscalationIsDropped) {
  v1::Session s = NewChat("cust-1", "hi");  // bot turn queued, not run
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  const int64_t last = Get(s.session_id()).last_sequence();
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).last_sequence(), last);
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_QUEUED);
}

TEST_F(SessionsTest, SendMessageIsIdempotent) {
  v1::Session s = NewChat();
  auto first = Send(s.session_id(), kCustomer, "hello", "key-1");
  auto retry = Send(s.session_id(), kCustomer, "hello", "key-1");
  ASSERT_TRUE(first.ok() && retry.ok());
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(first->message.sequence(), retry->message.sequence());
  EXPECT_EQ(first->message.message_id(), retry->message.message_id());
  EXPECT_EQ(Send(s.session_id(), kCustomer, "other", "key-1").status().code(),
            absl::StatusCode::kAlreadyExists);
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).message_count(), 2);  // one customer, one bot
}

TEST_F(SessionsTest, BadMessagesAreRejected) {
  v1::Session s = NewChat();
  EXPECT_EQ(Send(s.session_id(), kCustomer, "", "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Send(s.session_id(), kCustomer, std::string(4001, 'a'), "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Send(s.session_id(), kCustomer, "\xff\xfe", "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Send(s.session_id(), kCustomer, "ok", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Send(s.session_id(), kCustomer, "ok", "bad key!").status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::NewMessage attachment;
  v1::Attachment* a = attachment.add_attachments();
  a->set_file_name("x.exe");
  a->set_content_type("application/x-msdownload");
  a->set_size_bytes(10);
  absl::Status status =
      sessions_->SendMessage(kCustomer, s.session_id(), "k2", attachment).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "content_type")) << status;
  EXPECT_EQ(Get(s.session_id()).last_sequence(), 1);
}

TEST_F(SessionsTest, InvalidTransitionChangesNothing) {
  v1::Session s = NewChat();
  const v1::Session before = Get(s.session_id());
  EXPECT_EQ(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "offer-1")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sessions_->Reopen(kCustomer, s.session_id(), "", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sessions_->Requeue(kRouting, s.session_id(), "agent-1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sessions_->Resolve({"sup", Role::kSupervisor}, s.session_id(), "", "")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(s.session_id()).SerializeAsString(), before.SerializeAsString());
}

TEST_F(SessionsTest, HumanJourneyWithFirstResponseAndResolution) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  // Another agent cannot see it; the offered one can.
  EXPECT_EQ(sessions_->Get(kAgent, s.session_id()).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(sessions_
                  ->RecordOffer(kRouting, s.session_id(), "agent-1", "offer-1",
                                clock_.Now() + absl::Seconds(30))
                  .ok());
  EXPECT_TRUE(sessions_->Get(kAgent, s.session_id()).ok());
  clock_.Advance(absl::Seconds(40));
  auto assigned = sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "offer-1");
  ASSERT_TRUE(assigned.ok()) << assigned.status();
  EXPECT_EQ(assigned->state(), v1::SESSION_STATE_ASSIGNED);
  // Idempotent; another agent is refused.
  EXPECT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "offer-1").ok());
  EXPECT_EQ(sessions_->AssignAgent(kRouting, s.session_id(), "agent-2", "", "offer-2")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(Send(s.session_id(), kAgent, "Hi, I am Ana", "a1").ok());
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(protoutil::FromTimestamp(after.first_human_response_at()), clock_.Now());
  EXPECT_EQ(store_.Count("sessions.first_response_recorded"), 1);
  ASSERT_TRUE(Send(s.session_id(), kAgent, "again", "a2").ok());
  EXPECT_EQ(store_.Count("sessions.first_response_recorded"), 1);
  // Another customer sees nothing.
  EXPECT_EQ(sessions_->Get({"cust-2", Role::kCustomer}, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Send(s.session_id(), {"cust-2", Role::kCustomer}, "x", "x1").status().code(),
            absl::StatusCode::kNotFound);
  auto resolved = sessions_->Resolve(kAgent, s.session_id(), "done", "r1");
  ASSERT_TRUE(resolved.ok());
  RunBackground();
  ASSERT_EQ(routing_.cancelled.size(), 1u);
  EXPECT_EQ(routing_.cancelled[0].second, routing::v1::CANCEL_REASON_RESOLVED);
  // Resolved: the customer's writes need a reopen.
  EXPECT_EQ(Send(s.session_id(), kCustomer, "thanks", "c9").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Reopen within the window goes back to routing at the head, to agent-1 first.
  clock_.Advance(absl::Hours(1));
  auto reopened = sessions_->Reopen(kCustomer, s.session_id(), "still broken", "re1");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 2u);
  EXPECT_TRUE(routing_.enqueued[1].at_head());
  EXPECT_EQ(routing_.enqueued[1].preferred_agent_id(), "agent-1");
  EXPECT_EQ(routing_.enqueued[1].reason(), routing::v1::ENQUEUE_REASON_REOPENED);
  // A retried reopen is answered with the session unchanged.
  EXPECT_TRUE(sessions_->Reopen(kCustomer, s.session_id(), "still broken", "re1").ok());
}

class CountingListener : public SessionListener {
 public:
  void OnEvent(const v1::SessionEvent& event) override { sequences.push_back(event.sequence()); }
  void OnTyping(const v1::TypingIndication&) override { ++typing; }
  void OnAccessMaybeLost() override { ++access_checks; }
  std::vector<int64_t> sequences;
  int typing = 0;
  int access_checks = 0;
};

TEST_F(SessionsTest, ListenersSeeCommittedEventsTypingAndLapsedOffers) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  CountingListener listener;
  auto subscribed = sessions_->Subscribe(kCustomer, s.session_id(), 0, &listener);
  ASSERT_TRUE(subscribed.ok());
  EXPECT_EQ(*subscribed, 2);
  EXPECT_EQ(sessions_->Subscribe(kCustomer, s.session_id(), 3, &listener).status().code(),
            absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "one", "k1").ok());
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "two", "k2").ok());
  EXPECT_EQ(listener.sequences, (std::vector<int64_t>{3, 4}));
  ASSERT_TRUE(sessions_->UpdateTyping(kCustomer, s.session_id(), true).ok());
  ASSERT_TRUE(sessions_->UpdateTyping(kCustomer, s.session_id(), true).ok());  // within 1 s
  EXPECT_EQ(listener.typing, 1);
  EXPECT_EQ(sessions_->Get(kCustomer, s.session_id())->last_sequence(), 4);  // not stored

  ASSERT_TRUE(sessions_
                  ->RecordOffer(kRouting, s.session_id(), "agent-1", "o1",
                                clock_.Now() + absl::Seconds(30))
                  .ok());
  ASSERT_TRUE(sessions_
                  ->RecordOffer(kRouting, s.session_id(), "agent-2", "o2",
                                clock_.Now() + absl::Seconds(30))
                  .ok());
  EXPECT_EQ(listener.access_checks, 1);  // agent-1's offer went to agent-2
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_EQ(listener.access_checks, 2);
  EXPECT_EQ(sessions_->Get({"agent-2", Role::kAgent}, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  sessions_->Unsubscribe(s.session_id(), &listener);
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "three", "k3").ok());
  EXPECT_EQ(listener.sequences.size(), 2u);
}

TEST_F(SessionsTest, ReopenWindowPasses) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Resolve(kCustomer, s.session_id(), "", "").ok());
  clock_.Advance(absl::Hours(73));
  EXPECT_EQ(sessions_->Reopen(kCustomer, s.session_id(), "", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SessionsTest, RoutingDownKeepsSessionPendingUntilItComesBack) {
  routing_.status = absl::UnavailableError("routing down");
  v1::Session s = NewChat();
  auto escalated = sessions_->Escalate(kCustomer, s.session_id());
  ASSERT_TRUE(escalated.ok());
  EXPECT_EQ(escalated->state(), v1::SESSION_STATE_QUEUED);
  RunBackground();
  EXPECT_EQ(sessions_->RetryRouting(), 1);
  EXPECT_TRUE(routing_.enqueued.empty());
  routing_.status = absl::OkStatus();
  EXPECT_EQ(sessions_->RetryRouting(), 1);
  EXPECT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(sessions_->RetryRouting(), 0);
  // A restart keeps the pending flag cleared (and would keep it set).
  Make(&bot_);
  EXPECT_EQ(sessions_->RetryRouting(), 0);
}

TEST_F(SessionsTest, EmailSlaBreachIsCountedOnce) {
  SessionsOptions options;
  options.email_sla_by_category[common::v1::CATEGORY_ACCOUNT_SECURITY] = absl::Hours(4);
  Make(&bot_, options);
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_WITHDRAWAL);
  request.set_subject("Withdrawal stuck");
  request.mutable_first_message()->set_text("My withdrawal is pending for 3 days");
  auto email = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(email.ok()) << email.status();
  EXPECT_EQ(email->session.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(protoutil::FromTimestamp(email->session.sla().due_at()),
            clock_.Now() + absl::Hours(48));
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(routing_.enqueued[0].reason(), routing::v1::ENQUEUE_REASON_NEW_SESSION);
  EXPECT_TRUE(routing_.enqueued[0].has_first_response_due_at());
  EXPECT_EQ(bot_.calls, 0);

  request.set_category(common::v1::CATEGORY_ACCOUNT_SECURITY);
  auto urgent = sessions_->Create(kCustomer, request);
  EXPECT_EQ(protoutil::FromTimestamp(urgent->session.sla().due_at()),
            clock_.Now() + absl::Hours(4));

  clock_.Advance(absl::Hours(47));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_FALSE(Get(email->session.session_id()).sla().breached());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(sessions_->Sweep().ok());
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_TRUE(Get(email->session.session_id()).sla().breached());
  EXPECT_EQ(store_.Count("sessions.sla_breached"), 2);  // both sessions, once each
  EXPECT_EQ(metrics_.sla_breach(common::v1::CHANNEL_EMAIL, common::v1::CATEGORY_WITHDRAWAL)
                .Value(),
            1);
}

TEST_F(SessionsTest, IdleSessionsClose) {
  v1::Session s = NewChat();
  clock_.Advance(absl::Minutes(29));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_BOT);
  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(Get(s.session_id()).close_reason(), v1::CLOSE_REASON_IDLE_TIMEOUT);
  // Closed is final.
  EXPECT_EQ(Send(s.session_id(), kCustomer, "hi", "k").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
}

TEST_F(SessionsTest, PhoneSessionsNeedAValidVerificationToken) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_PHONE);
  request.set_category(common::v1::CATEGORY_ACCOUNT_SECURITY);
  v1::CallbackDetails* cb = request.mutable_callback();
  cb->set_phone_number("+8613800138000");
  protoutil::ToTimestamp(clock_.Now() + absl::Hours(2), cb->mutable_window_end());
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kInvalidArgument);  // no token
  cb->set_verification_token("not-a-token");
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  cb->set_verification_token(VerificationToken("cust-2"));
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kPermissionDenied);
  cb->set_verification_token(VerificationToken("cust-1", absl::Seconds(1)));
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kPermissionDenied);
  cb->set_verification_token(VerificationToken("cust-1"));
  cb->set_phone_number("12345");
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  cb->set_phone_number("+8613800138000");
  auto phone = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(phone.ok()) << phone.status();
  EXPECT_EQ(phone->session.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(phone->session.verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(routing_.enqueued[0].reason(), routing::v1::ENQUEUE_REASON_CALLBACK);
}

TEST_F(SessionsTest, CallbackFromAChat) {
  v1::Session s = NewChat();
  v1::CallbackDetails details;
  details.set_phone_number("+441234567890");
  protoutil::ToTimestamp(clock_.Now() + absl::Hours(1), details.mutable_window_end());
  details.set_verification_token(VerificationToken("cust-1"));
  auto callback = sessions_->RequestCallback(kCustomer, s.session_id(), details, "cb-1");
  ASSERT_TRUE(callback.ok()) << callback.status();
  EXPECT_EQ(callback->phone_session.parent_session_id(), s.session_id());
  EXPECT_EQ(callback->phone_session.channel(), common::v1::CHANNEL_PHONE);
  auto retry = sessions_->RequestCallback(kCustomer, s.session_id(), details, "cb-1");
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->callback.callback_id(), callback->callback.callback_id());
  EXPECT_EQ(sessions_->RequestCallback(kCustomer, s.session_id(), details, "cb-2")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SessionsTest, CreateIsIdempotentAndCustomersActForThemselves) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_SOCIAL);
  request.mutable_social()->set_network(v1::SOCIAL_NETWORK_TELEGRAM);
  request.set_request_id("req-1");
  auto first = sessions_->Create(kCustomer, request);
  auto retry = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(first.ok() && retry.ok());
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(first->session.session_id(), retry->session.session_id());
  EXPECT_EQ(first->session.social().network(), v1::SOCIAL_NETWORK_TELEGRAM);
  request.set_customer_id("cust-2");
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kPermissionDenied);
  request.clear_customer_id();
  request.clear_social();
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  request.set_channel(static_cast<common::v1::Channel>(42));
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionsTest, CreationsAreLimited) {
  for (int i = 0; i < 10; ++i) NewChat();
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kResourceExhausted);
  clock_.Advance(absl::Minutes(1));
  for (int i = 0; i < 10; ++i) NewChat();  // 20 open now
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(sessions_->Create({"cust-2", Role::kCustomer}, request).ok());
}

TEST_F(SessionsTest, TransferToAnotherQueueAndBackToTheBot) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "", "o1").ok());
  v1::TransferSessionRequest transfer;
  transfer.set_session_id(s.session_id());
  transfer.mutable_queue()->set_category(common::v1::CATEGORY_KYC);
  transfer.set_note("needs KYC team");
  transfer.set_request_id("t1");
  auto moved = sessions_->Transfer(kAgent, transfer);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(moved->category(), common::v1::CATEGORY_KYC);
  EXPECT_TRUE(sessions_->Transfer(kAgent, transfer).ok() == false);  // agent-1 left: NOT_FOUND
  EXPECT_TRUE(sessions_->Transfer({"sup", Role::kSupervisor}, transfer).ok());  // replay
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 2u);
  EXPECT_EQ(routing_.enqueued[1].excluded_agent_id(), "agent-1");
  EXPECT_EQ(routing_.enqueued[1].transfer_note(), "needs KYC team");
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-2", "", "o2").ok());
  v1::TransferSessionRequest back;
  back.set_session_id(s.session_id());
  back.set_to_bot(true);
  auto bot = sessions_->Transfer({"agent-2", Role::kAgent}, back);
  ASSERT_TRUE(bot.ok());
  EXPECT_EQ(bot->state(), v1::SESSION_STATE_BOT);
  RunBackground();
  ASSERT_EQ(routing_.cancelled.size(), 1u);
  EXPECT_EQ(routing_.cancelled[0].second, routing::v1::CANCEL_REASON_HANDED_BACK_TO_BOT);
  const int calls = bot_.calls;
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "question", "q1").ok());
  RunBackground();
  EXPECT_EQ(bot_.calls, calls + 1);
}

TEST_F(SessionsTest, RequeueByRouting) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "", "o1").ok());
  EXPECT_EQ(sessions_->Requeue(kRouting, s.session_id(), "agent-2").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto requeued = sessions_->Requeue(kRouting, s.session_id(), "agent-1");
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(requeued->state(), v1::SESSION_STATE_QUEUED);
  EXPECT_TRUE(requeued->assigned_agent_id().empty());
  EXPECT_TRUE(sessions_->Requeue(kRouting, s.session_id(), "agent-1").ok());  // idempotent
  RunBackground();
  EXPECT_EQ(routing_.enqueued.size(), 1u);  // sessions does not call routing back
  EXPECT_EQ(sessions_->Get(kAgent, s.session_id()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionsTest, ListSessionsPaginatesNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(NewChat().session_id());
    clock_.Advance(absl::Seconds(1));
  }
  NewChat("cust-2");
  std::vector<std::string> seen;
  std::string token;
  do {
    auto page = sessions_->List(kCustomer, {}, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& s : page->sessions) seen.push_back(s.session_id());
    token = page->next_page_token;
  } while (!token.empty());
  std::reverse(ids.begin(), ids.end());
  EXPECT_EQ(seen, ids);
  Sessions::ListFilter other;
  other.customer_id = "cust-2";
  EXPECT_EQ(sessions_->List(kCustomer, other, 0, "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(sessions_->List(kCustomer, {}, 0, "garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchboard::sessions
