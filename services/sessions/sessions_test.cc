#include "services/sessions/sessions.h"

#include <algorithm>
#include <deque>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/sessions/sqlite_store.h"
#include "libs/limits/retry_after.h"
#include "libs/testing/test_tokens.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using v1::SessionState;

// The real SQLite store, whose commits a test can hold and then let through
// or fail, and whose message-key look-ups can run a hook: the timing a
// crash or a slow disk gives, on demand. Not a mock: everything else is the
// real store.
class HoldableStore : public SessionStore {
 public:
  explicit HoldableStore(SessionStore* real) : real_(real) {}

  // From now on, writes wait instead of committing.
  void Hold() {
    absl::MutexLock lock(&mu_);
    holding_ = true;
  }
  // The held writes commit, in order; later ones go straight through.
  void Release() {
    absl::MutexLock lock(&mu_);
    holding_ = false;
    for (auto& [write, done] : held_) real_->Apply(std::move(write), std::move(done));
    held_.clear();
  }
  // The held writes fail with `status` without being written, as a failed
  // COMMIT would; later ones go straight through.
  void Fail(absl::Status status) {
    std::deque<std::pair<SessionWrite, std::function<void(absl::Status)>>> failed;
    {
      absl::MutexLock lock(&mu_);
      holding_ = false;
      failed.swap(held_);
    }
    for (auto& [write, done] : failed) done(status);
  }
  // Waits (up to 10 s) until `n` writes are held.
  bool WaitForHeld(size_t n) {
    struct Arg {
      HoldableStore* store;
      size_t n;
    } arg{this, n};
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](Arg* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->store->mu_) {
              return a->store->held_.size() >= a->n;
            },
            &arg),
        absl::Seconds(10));
  }
  // Runs once, right after the next FindMessage has read the store.
  void AfterNextFindMessage(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    after_find_message_ = std::move(hook);
  }
  int find_message_calls() {
    absl::MutexLock lock(&mu_);
    return find_message_calls_;
  }

  absl::StatusOr<std::vector<SessionRecord>> LoadOpen() override { return real_->LoadOpen(); }
  absl::StatusOr<int64_t> CountClosed() override { return real_->CountClosed(); }
  absl::Status Admit() override {
    absl::MutexLock lock(&mu_);
    if (!admit_.ok()) return admit_;
    return real_->Admit();
  }
  void Apply(SessionWrite write, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      if (holding_) {
        held_.emplace_back(std::move(write), std::move(done));
        return;
      }
    }
    real_->Apply(std::move(write), std::move(done));
  }
  absl::StatusOr<std::optional<SessionRecord>> ReadSession(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    ++session_reads_;
    return real_->ReadSession(id);
  }
  absl::StatusOr<std::optional<StoredMessage>> FindMessage(const std::string& session_id,
                                                          const std::string& key) override {
    auto found = real_->FindMessage(session_id, key);
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      ++find_message_calls_;
      hook.swap(after_find_message_);
    }
    if (hook) hook();
    return found;
  }
  absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) override {
    return real_->FindAttachment(attachment_id);
  }
  absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) override {
    return real_->FindUpload(session_id, uploader_id, upload_id);
  }
  absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) override {
    return real_->PendingScans(limit);
  }
  absl::StatusOr<std::pair<int, int64_t>> UploadedSince(const std::string& uploader_id,
                                                       absl::Time since) override {
    return real_->UploadedSince(uploader_id, since);
  }
  absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(absl::Time closed_before,
                                                                   int limit) override {
    return real_->ExpiredAttachments(closed_before, limit);
  }
  absl::StatusOr<bool> BlobInUse(const std::string& blob_key) override {
    return real_->BlobInUse(blob_key);
  }
  absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(const std::string& after_id,
                                                                int limit) override {
    return real_->ListAttachments(after_id, limit);
  }
  absl::StatusOr<std::optional<std::string>> FindCreated(const std::string& customer_id,
                                                         const std::string& request_id) override {
    return real_->FindCreated(customer_id, request_id);
  }
  // Runs once, right after the next FindTokenBinding has read the store.
  void AfterNextFindTokenBinding(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    after_find_token_binding_ = std::move(hook);
  }
  absl::StatusOr<std::optional<std::string>> FindTokenBinding(
      const std::string& token_id) override {
    auto found = real_->FindTokenBinding(token_id);
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      hook.swap(after_find_token_binding_);
    }
    if (hook) hook();
    return found;
  }
  absl::StatusOr<std::vector<v1::Session>> ListSessions(const SessionQuery& query) override {
    return real_->ListSessions(query);
  }
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(const std::string& session_id,
                                                           int64_t after, int64_t up_to,
                                                           int limit) override {
    return real_->ReadEvents(session_id, after, up_to, limit);
  }
  absl::StatusOr<std::vector<v1::Message>> ReadMessages(const std::string& session_id,
                                                        int64_t after, int64_t before,
                                                        bool newest_first, int limit) override {
    return real_->ReadMessages(session_id, after, before, newest_first, limit);
  }

  void set_admit(absl::Status status) {
    absl::MutexLock lock(&mu_);
    admit_ = std::move(status);
  }
  int session_reads() {
    absl::MutexLock lock(&mu_);
    return session_reads_;
  }

 private:
  SessionStore* const real_;
  absl::Mutex mu_;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::pair<SessionWrite, std::function<void(absl::Status)>>> held_
      ABSL_GUARDED_BY(mu_);
  std::function<void()> after_find_message_ ABSL_GUARDED_BY(mu_);
  std::function<void()> after_find_token_binding_ ABSL_GUARDED_BY(mu_);
  int find_message_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int session_reads_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status admit_ ABSL_GUARDED_BY(mu_);
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
    } else if (absl::StartsWith(r.text(), "deposit")) {
      response.set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
      response.set_reply_text("Deposits are credited after 12 confirmations.");
      response.set_answered_intent_id("deposit_not_credited");
      response.set_category(common::v1::CATEGORY_DEPOSIT);
      auto* guess = response.add_intent_guesses();
      guess->set_intent_id("deposit_not_credited");
      guess->set_confidence(0.9f);
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
  absl::StatusOr<routing::v1::EnqueueSessionResponse> Enqueue(
      const routing::v1::EnqueueSessionRequest& r) override {
    if (!status.ok()) return status;
    enqueued.push_back(r);
    routing::v1::EnqueueSessionResponse response;
    response.set_replayed(false);
    *response.mutable_hours() = hours;
    return response;
  }
  absl::StatusOr<routing::v1::GetQueueHoursResponse> QueueHours(
      const routing::v1::GetQueueHoursRequest& r) override {
    if (!status.ok()) return status;
    asked.push_back(r);
    routing::v1::GetQueueHoursResponse response;
    *response.mutable_hours() = hours;
    if (r.has_business_time()) *response.mutable_business_time_ends_at() = business_time_ends_at;
    return response;
  }
  // The hours every queue has (open by default), and the business-time
  // answer.
  routing::v1::QueueHours hours = [] {
    routing::v1::QueueHours open;
    open.set_open(true);
    return open;
  }();
  google::protobuf::Timestamp business_time_ends_at;
  std::vector<routing::v1::GetQueueHoursRequest> asked;
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
  SessionsTest()
      : path_(storage::MakeTempDir() + "/sessions.db"),
        metrics_(registry_) {
    db_ = *OpenSessionsDatabase({path_});
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    std::vector<std::unique_ptr<storage::Database>> readers;
    readers.push_back(*storage::Database::Open({path_}));
    readers.push_back(*storage::Database::Open({path_}));
    sqlite_ = std::make_unique<SqliteSessionStore>(committer_.get(), std::move(readers),
                                                   "switchboard.sessions.v1", nullptr);
    store_ = std::make_unique<HoldableStore>(sqlite_.get());
    check_ = *storage::Database::Open({path_});
    Make(&bot_);
  }
  ~SessionsTest() override {
    store_->Release();
    committer_->Stop();  // runs the callbacks of writes still queued
  }

  // A new Sessions over the same store: a restart (after the writes
  // already queued have completed, as they do before a clean exit).
  void Make(BotClient* bot, SessionsOptions options = SessionsOptions(),
            Executor answers = nullptr) {
    if (sessions_ != nullptr) {
      ASSERT_TRUE(committer_->Commit([](storage::Database&) { return absl::OkStatus(); }).ok());
    }
    sessions_ = std::make_unique<Sessions>(
        store_.get(), &clock_, &metrics_, &tokens_.verifier(), bot, &routing_,
        // Routing calls may be queued from the commit thread (an escalation
        // once it is durable).
        [this](std::function<void()> task) {
          absl::MutexLock lock(&background_mu_);
          background_.push_back(std::move(task));
        },
        [this](std::function<void()> task) {
          if (bot_pool_full_) return false;
          absl::MutexLock lock(&background_mu_);
          background_.push_back(std::move(task));
          return true;
        },
        options, std::move(answers));
    ASSERT_TRUE(sessions_->Load().ok());
  }

  // Runs queued background work (bot turns, routing calls) to completion,
  // with the writes it queues and the work their commits queue in turn.
  void RunBackground() {
    while (true) {
      // Once this commits, every earlier write has, and its callbacks ran.
      ASSERT_TRUE(committer_->Commit([](storage::Database&) { return absl::OkStatus(); }).ok());
      std::function<void()> task;
      {
        absl::MutexLock lock(&background_mu_);
        if (background_.empty()) return;
        task = std::move(background_.front());
        background_.pop_front();
      }
      task();
    }
  }

  v1::Session NewChat(const std::string& customer = "cust-1", const std::string& text = "") {
    v1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    if (!text.empty()) request.mutable_first_message()->set_text(text);
    auto created = sessions_->Create({customer, Role::kCustomer}, request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->session : v1::Session();
  }

  absl::StatusOr<Sessions::Sent> Send(const std::string& id, const Caller& caller,
                                      const std::string& text, const std::string& key) {
    v1::NewMessage message;
    message.set_text(text);
    return sessions_->SendMessage(caller, id, key, message);
  }

  v1::Session Get(const std::string& id) {
    auto session = sessions_->Get({"sup", Role::kSupervisor}, id);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : v1::Session();
  }

  std::vector<v1::SessionEvent> Events(const std::string& id) {
    return *sessions_->ReadEvents(id, 0, 1'000'000, 1000);
  }

  // A session escalated and assigned to agent-1.
  v1::Session Assigned(const std::string& customer = "cust-1") {
    v1::Session s = NewChat(customer);
    EXPECT_TRUE(sessions_->Escalate({customer, Role::kCustomer}, s.session_id()).ok());
    RunBackground();
    EXPECT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "o1").ok());
    return Get(s.session_id());
  }

  // The outbox, oldest first.
  std::vector<events::v1::Event> Outbox() {
    auto select = check_->Prepare("SELECT value FROM outbox ORDER BY id");
    std::vector<events::v1::Event> out;
    while (*select->Step()) out.emplace_back().ParseFromString(select->ColumnBlob(0));
    return out;
  }

  // Outbox events of `type` committed so far.
  int Count(absl::string_view type) {
    auto count = check_->Prepare("SELECT count(*) FROM outbox WHERE type = ?");
    count->Bind(1, std::string(type));
    EXPECT_TRUE(*count->Step());
    return static_cast<int>(count->ColumnInt(0));
  }

  std::string VerificationToken(const std::string& customer,
                                absl::Duration ttl = absl::Minutes(15)) {
    auth::VerificationClaims claims;
    claims.customer_id = customer;
    claims.method = "sms_otp";
    claims.level = auth::kLevelBasic;
    claims.token_id = absl::StrCat("tid-", ++tokens_issued_);
    claims.issued_at = clock_.Now();
    claims.expires_at = clock_.Now() + ttl;
    return *auth::SignVerificationToken(tokens_.verification_signer(), claims);
  }

  v1::CallbackDetails CallbackDetails() {
    v1::CallbackDetails details;
    details.set_phone_number("+441234567890");
    protoutil::ToTimestamp(clock_.Now() + absl::Hours(1), details.mutable_window_end());
    details.set_verification_token(VerificationToken("cust-1"));
    return details;
  }

  // Runs `first` on a thread while the store holds its commit, then
  // `retry` (the same request again) on another; fails the held commit;
  // returns the retry's outcome. A retry answered before the first write
  // is durable would come back OK here.
  absl::Status RetryWhileTheFirstCommitFails(std::function<absl::Status()> first,
                                             std::function<absl::Status()> retry) {
    store_->Hold();
    absl::Status first_status;
    std::thread first_thread([&] { first_status = first(); });
    EXPECT_TRUE(store_->WaitForHeld(1));
    absl::Status retry_status;
    absl::Notification retried;
    std::thread retry_thread([&] {
      retry_status = retry();
      retried.Notify();
    });
    // The retry finds the first write and waits for it (or, on a build
    // that answers from memory, is already done).
    retried.WaitForNotificationWithTimeout(absl::Milliseconds(200));
    store_->Fail(absl::InternalError("disk I/O error"));
    first_thread.join();
    retry_thread.join();
    EXPECT_EQ(first_status.code(), absl::StatusCode::kUnavailable) << first_status;
    return retry_status;
  }

  const Caller kCustomer{"cust-1", Role::kCustomer};
  const Caller kRouting{"routing", Role::kService};
  const Caller kAgent{"agent-1", Role::kAgent};
  const Caller kSupervisor{"sup", Role::kSupervisor};
  std::string path_;
  FakeClock clock_;
  testing::TestTokens tokens_{"sessions"};
  // Each VerificationToken gets its own token id.
  int tokens_issued_ = 0;
  prometheus::Registry registry_;
  SessionsMetrics metrics_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteSessionStore> sqlite_;
  std::unique_ptr<HoldableStore> store_;
  std::unique_ptr<storage::Database> check_;
  FakeBot bot_;
  FakeRouting routing_;
  bool bot_pool_full_ = false;
  absl::Mutex background_mu_;
  std::deque<std::function<void()>> background_;
  std::unique_ptr<Sessions> sessions_;
};

TEST_F(SessionsTest, BotAnswersInBotState) {
  v1::Session s = NewChat("cust-1", "how do I deposit?");
  EXPECT_EQ(s.state(), v1::SESSION_STATE_BOT);
  RunBackground();
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_BOT);
  EXPECT_EQ(after.message_count(), 2);
  auto events = Events(s.session_id());
  ASSERT_EQ(events.size(), 3u);  // created, customer message, bot reply
  EXPECT_EQ(events[2].message().sender_role(), common::v1::SENDER_ROLE_BOT);
  EXPECT_EQ(events[2].message().text(), "answer to how do I deposit?");
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].sequence(), int64_t(i + 1));
  EXPECT_EQ(Count("sessions.message_sent"), 2);
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
  EXPECT_EQ(Count("sessions.session_escalated"), 1);
  // The escalation moved GENERAL to the bot's DEPOSIT: data teams see it,
  // ahead of the escalation.
  std::vector<std::string> types;
  for (const auto& event : Outbox()) {
    if (event.has_category_changed()) {
      EXPECT_EQ(event.category_changed().source(), events::v1::CATEGORY_SOURCE_BOT_ESCALATION);
      EXPECT_EQ(event.category_changed().previous_category(), common::v1::CATEGORY_GENERAL);
      EXPECT_EQ(event.category_changed().category(), common::v1::CATEGORY_DEPOSIT);
    }
    if (event.has_category_changed() || event.has_session_escalated()) {
      types.push_back(event.type());
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"sessions.category_changed",
                                             "sessions.session_escalated"}));
}

TEST_F(SessionsTest, TheCategoryFollowsTheBotsAnswer) {
  v1::Session s = NewChat();
  EXPECT_EQ(s.category(), common::v1::CATEGORY_GENERAL);
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "deposit missing", "m1").ok());
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).category(), common::v1::CATEGORY_DEPOSIT);
  // Recorded for data teams before the bot's reply.
  std::vector<events::v1::Event> outbox = Outbox();
  auto changed = std::find_if(outbox.begin(), outbox.end(),
                              [](const auto& e) { return e.has_category_changed(); });
  ASSERT_NE(changed, outbox.end());
  EXPECT_EQ(changed->category_changed().previous_category(), common::v1::CATEGORY_GENERAL);
  EXPECT_EQ(changed->category_changed().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(changed->category_changed().source(), events::v1::CATEGORY_SOURCE_BOT_ANSWER);
  EXPECT_EQ(changed->category_changed().intent_id(), "deposit_not_credited");
  EXPECT_FLOAT_EQ(changed->category_changed().confidence(), 0.9f);
  EXPECT_EQ(changed->category_changed().state(), v1::SESSION_STATE_BOT);
  ASSERT_NE(changed + 1, outbox.end());
  EXPECT_EQ((changed + 1)->message_sent().sender_role(), common::v1::SENDER_ROLE_BOT);
  // A second answer of the same category changes nothing.
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "deposit again", "m2").ok());
  RunBackground();
  EXPECT_EQ(Count("sessions.category_changed"), 1);
  // The hand-off is made in the new category, with the bot's context.
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "human", "m3").ok());
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  const auto& e = routing_.enqueued[0];
  EXPECT_EQ(e.category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(e.handoff().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(e.handoff().intent_guesses(0).intent_id(), "deposit_not_credited");
  EXPECT_EQ(e.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(Count("sessions.category_changed"), 1);
}

// The bot's threads are few: a turn hands its answer to the group commit
// and goes on, and routing hears of an escalation only once it is durable.
TEST_F(SessionsTest, ABotTurnDoesNotWaitForItsCommitAndRoutingHearsOnceDurable) {
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "human", "m1").ok());
  store_->Hold();
  std::function<void()> turn;
  {
    absl::MutexLock lock(&background_mu_);
    ASSERT_EQ(background_.size(), 1u);
    turn = std::move(background_.front());
    background_.pop_front();
  }
  absl::Notification returned;
  std::thread bot_thread([&] {
    turn();
    returned.Notify();
  });
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "the bot turn waited for its commit";
  EXPECT_TRUE(store_->WaitForHeld(1));
  {
    absl::MutexLock lock(&background_mu_);
    EXPECT_TRUE(background_.empty()) << "routing was called before the escalation was durable";
  }
  store_->Release();
  bot_thread.join();
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_QUEUED);
}

// A read never shows a change a crash could still undo: while the session's
// latest write is being committed, TryGet leaves the read to Get, which
// answers once the write is durable.
TEST_F(SessionsTest, AReadWaitsUntilTheSessionsLatestChangeIsDurable) {
  v1::Session s = NewChat("cust-1", "hello");
  ASSERT_EQ(Get(s.session_id()).message_count(), 1);
  store_->Hold();
  v1::NewMessage message;
  message.set_text("are you there?");
  absl::Notification sent;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "m2", message,
                              [&](absl::StatusOr<Sessions::Sent>) { sent.Notify(); });
  ASSERT_TRUE(store_->WaitForHeld(1));
  EXPECT_FALSE(sessions_->TryGet(kCustomer, s.session_id()).has_value());
  absl::Notification read;
  absl::StatusOr<v1::Session> got;
  std::thread reader([&] {
    got = sessions_->Get(kCustomer, s.session_id());
    read.Notify();
  });
  EXPECT_FALSE(read.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "answered before the message was durable";
  store_->Release();
  reader.join();
  sent.WaitForNotification();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->message_count(), 2);
  EXPECT_TRUE(sessions_->TryGet(kCustomer, s.session_id()).has_value());
}

TEST_F(SessionsTest, AWritesAnswerIsTimedUntilDurableAndUntilAnswered) {
  v1::Session s = NewChat("cust-1", "hello");
  const uint64_t durable_before = metrics_.write_durable_seconds->Collect().histogram.sample_count;
  const uint64_t answered_before = metrics_.write_answer_seconds->Collect().histogram.sample_count;
  store_->Hold();
  v1::NewMessage message;
  message.set_text("are you there?");
  absl::Notification sent;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "m2", message,
                              [&](absl::StatusOr<Sessions::Sent>) { sent.Notify(); });
  ASSERT_TRUE(store_->WaitForHeld(1));
  clock_.Advance(absl::Seconds(2));  // a slow disk
  store_->Release();
  sent.WaitForNotification();
  const prometheus::ClientMetric::Histogram durable =
      metrics_.write_durable_seconds->Collect().histogram;
  EXPECT_EQ(durable.sample_count, durable_before + 1);
  EXPECT_GE(durable.sample_sum, 2.0);
  const prometheus::ClientMetric::Histogram answered =
      metrics_.write_answer_seconds->Collect().histogram;
  EXPECT_EQ(answered.sample_count, answered_before + 1);
  EXPECT_LT(answered.sample_sum, 2.0);  // the wait was the disk's, not the answer's

  // A call refused before writing is not timed.
  EXPECT_FALSE(Send("no-such-session", kCustomer, "hi", "m3").ok());
  EXPECT_EQ(metrics_.write_durable_seconds->Collect().histogram.sample_count, durable.sample_count);
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
  EXPECT_EQ(metrics_.bot_unavailable->Value(), 1);
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
  RunBackground();
  auto events = Events(s.session_id());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].message().text(), "answer to where is my deposit?");
  // Done: another restart does not answer twice.
  Make(&bot_);
  sessions_->ResumeBotTurns();
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).last_sequence(), 3);
}

TEST_F(SessionsTest, BotTurnsOfASessionRunInOrderOneAtATime) {
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "first", "k1").ok());
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "second", "k2").ok());
  // The second waits behind the first rather than taking another thread.
  ASSERT_EQ(background_.size(), 1u);
  RunBackground();
  auto events = Events(s.session_id());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3].message().text(), "answer to first");
  EXPECT_EQ(events[4].message().text(), "answer to second");
}

TEST_F(SessionsTest, AFullBotPoolEscalatesInsteadOfWaiting) {
  bot_pool_full_ = true;
  v1::Session s = NewChat("cust-1", "hello");
  RunBackground();
  EXPECT_EQ(bot_.calls, 0);
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(after.handoff().reason(), common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
  EXPECT_EQ(metrics_.bot_shed->Value(), 1);
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  // The session has no turn left behind: it is with the humans now.
  bot_pool_full_ = false;
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "still there?", "k2").ok());
  EXPECT_TRUE(background_.empty());
}

TEST_F(SessionsTest, ACustomerWritingFasterThanTheBotGetsAHuman) {
  SessionsOptions options;
  options.max_waiting_bot_turns = 1;
  Make(&bot_, options);
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "one", "k1").ok());    // runs
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "two", "k2").ok());    // waits
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "three", "k3").ok());  // beyond the cap
  ASSERT_EQ(background_.size(), 2u);
  // The shed turn escalates first; the running one then finds the session
  // out of the bot and answers nothing.
  auto shed = std::move(background_.back());
  background_.pop_back();
  shed();
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(metrics_.bot_shed->Value(), 1);
  for (const auto& e : Events(s.session_id())) {
    EXPECT_NE(e.message().sender_role(), common::v1::SENDER_ROLE_BOT);
  }
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
  // The key is found in the store (nothing of it stays in memory), also
  // after a restart.
  EXPECT_EQ(sessions_->footprint().pending_keys, 0u);
  Make(&bot_);
  auto after_restart = Send(s.session_id(), kCustomer, "hello", "key-1");
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_TRUE(after_restart->replayed);
  EXPECT_EQ(after_restart->message.sequence(), first->message.sequence());
}

// Durable retries: a retry is answered OK only once the first write is on
// disk; if that write fails, the retry gets the failure.

TEST_F(SessionsTest, ARetriedMessageSharesTheFirstCommitsFailure) {
  v1::Session s = NewChat();
  absl::Status retry = RetryWhileTheFirstCommitFails(
      [&] { return Send(s.session_id(), kCustomer, "hello", "k1").status(); },
      [&] { return Send(s.session_id(), kCustomer, "hello", "k1").status(); });
  EXPECT_EQ(retry.code(), absl::StatusCode::kUnavailable) << retry;
  // Memory may be ahead of the disk now: writes are refused until restart,
  // and the message was never stored.
  EXPECT_EQ(Send(s.session_id(), kCustomer, "hello", "k1").status().code(),
            absl::StatusCode::kUnavailable);
  Make(&bot_);
  EXPECT_EQ(Get(s.session_id()).message_count(), 0);
  auto again = Send(s.session_id(), kCustomer, "hello", "k1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->replayed);
}

TEST_F(SessionsTest, ARetriedMessageIsAnsweredOnceTheFirstIsDurable) {
  v1::Session s = NewChat();
  store_->Hold();
  absl::StatusOr<Sessions::Sent> first;
  std::thread first_thread([&] { first = Send(s.session_id(), kCustomer, "hello", "k1"); });
  ASSERT_TRUE(store_->WaitForHeld(1));
  absl::StatusOr<Sessions::Sent> retry;
  absl::Notification retried;
  std::thread retry_thread([&] {
    retry = Send(s.session_id(), kCustomer, "hello", "k1");
    retried.Notify();
  });
  EXPECT_FALSE(retried.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  store_->Release();
  first_thread.join();
  retry_thread.join();
  ASSERT_TRUE(first.ok() && retry.ok()) << first.status() << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->message.sequence(), first->message.sequence());
  EXPECT_EQ(Get(s.session_id()).message_count(), 1);
}

// SendMessageAsync: the caller's thread only decides; the answer comes from
// the commit.

// What one SendMessageAsync answered, once it has.
struct AsyncAnswer {
  Sessions::Answer<Sessions::Sent> Callback() {
    return [this](absl::StatusOr<Sessions::Sent> sent) {
      answer = std::move(sent);
      answered.Notify();
    };
  }
  absl::StatusOr<Sessions::Sent> answer = absl::UnknownError("not answered");
  absl::Notification answered;
};

TEST_F(SessionsTest, AnAsyncMessageIsAnsweredFromItsCommitAndAPendingReplayWaitsForIt) {
  v1::Session s = NewChat();  // with the bot
  v1::NewMessage hello;
  hello.set_text("hello");
  v1::NewMessage other;
  other.set_text("other");
  store_->Hold();
  AsyncAnswer first, replay, conflict;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", hello, first.Callback());
  // Returned with the write queued and not durable: nothing answered, no
  // bot turn for a message that is not on disk.
  ASSERT_TRUE(store_->WaitForHeld(1));
  EXPECT_FALSE(first.answered.HasBeenNotified());
  EXPECT_TRUE(background_.empty());
  // Retries while the first write is pending return at once too, and are
  // answered only once it is durable: the same message, or the conflict.
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", hello, replay.Callback());
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", other, conflict.Callback());
  EXPECT_FALSE(replay.answered.HasBeenNotified());
  EXPECT_FALSE(conflict.answered.HasBeenNotified());
  EXPECT_EQ(sessions_->footprint().pending_keys, 1u);

  store_->Release();
  for (AsyncAnswer* a : {&first, &replay, &conflict}) {
    ASSERT_TRUE(a->answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  ASSERT_TRUE(first.answer.ok()) << first.answer.status();
  ASSERT_TRUE(replay.answer.ok()) << replay.answer.status();
  EXPECT_FALSE(first.answer->replayed);
  EXPECT_TRUE(replay.answer->replayed);
  EXPECT_EQ(replay.answer->message.message_id(), first.answer->message.message_id());
  EXPECT_EQ(first.answer->state, v1::SESSION_STATE_BOT);
  EXPECT_EQ(conflict.answer.status().code(), absl::StatusCode::kAlreadyExists);
  // The bot turn of the durable message was queued before its answer.
  EXPECT_EQ(background_.size(), 1u);
  RunBackground();
  EXPECT_EQ(Get(s.session_id()).message_count(), 2);  // the customer's and the bot's
}

TEST_F(SessionsTest, AnAsyncMessageWhoseCommitFailsAndItsPendingReplayGetTheFailure) {
  v1::Session s = NewChat();
  v1::NewMessage hello;
  hello.set_text("hello");
  store_->Hold();
  AsyncAnswer first, replay;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", hello, first.Callback());
  ASSERT_TRUE(store_->WaitForHeld(1));
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", hello, replay.Callback());
  EXPECT_FALSE(replay.answered.HasBeenNotified());
  store_->Fail(absl::InternalError("disk I/O error"));
  for (AsyncAnswer* a : {&first, &replay}) {
    ASSERT_TRUE(a->answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_EQ(a->answer.status().code(), absl::StatusCode::kUnavailable) << a->answer.status();
    EXPECT_EQ(a->answer.status().message(), "sessions storage failed; retry later");
  }
  EXPECT_TRUE(background_.empty()) << "a bot turn for a message that is not on disk";
  // Memory may be ahead of the disk: the next message is refused at once,
  // on the calling thread, naming why.
  AsyncAnswer next;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k2", hello, next.Callback());
  ASSERT_TRUE(next.answered.HasBeenNotified());
  EXPECT_EQ(next.answer.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(next.answer.status().message(),
            "sessions storage failed; the service must be restarted");
}

TEST_F(SessionsTest, AnAsyncMessageNeedingNoWriteIsAnsweredOnTheCallersThread) {
  v1::Session s = NewChat();
  v1::NewMessage hello;
  hello.set_text("hello");
  AsyncAnswer bad;
  sessions_->SendMessageAsync(kCustomer, "", "k1", hello, bad.Callback());
  ASSERT_TRUE(bad.answered.HasBeenNotified());
  EXPECT_EQ(bad.answer.status().message(), "session_id: must not be empty");
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "hello", "k1").ok());
  // Durable already, found in the store: nothing to wait for.
  store_->Hold();
  AsyncAnswer stored;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", hello, stored.Callback());
  ASSERT_TRUE(stored.answered.HasBeenNotified());
  ASSERT_TRUE(stored.answer.ok()) << stored.answer.status();
  EXPECT_TRUE(stored.answer->replayed);
}

TEST_F(SessionsTest, ASessionCreatedHereTellsANewKeyWithoutReadingTheStore) {
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "hello", "k1").ok());
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "again", "k2").ok());
  EXPECT_EQ(store_->find_message_calls(), 0);
  auto retry = Send(s.session_id(), kCustomer, "hello", "k1");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(store_->find_message_calls(), 1);
  // Loaded from the store, a session does not know its keys: every new key
  // is looked up, and retries are still found.
  Make(&bot_);
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "more", "k3").ok());
  EXPECT_EQ(store_->find_message_calls(), 2);
  auto after_restart = Send(s.session_id(), kCustomer, "again", "k2");
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_TRUE(after_restart->replayed);
  EXPECT_EQ(Get(s.session_id()).message_count(), 3);
}

TEST_F(SessionsTest, AKeyThatSettlesWhileTheStoreIsReadIsNotMissed) {
  v1::Session s = NewChat();
  // Loaded from the store, so that the session's keys are read there.
  Make(&bot_);
  // The retry reads the store before the first write commits; the first
  // write is decided and committed right after that read, before the
  // retry decides. The retry must still find it, not store a duplicate.
  absl::StatusOr<Sessions::Sent> first;
  store_->AfterNextFindMessage(
      [&] { first = Send(s.session_id(), kCustomer, "hello", "k1"); });
  auto retry = Send(s.session_id(), kCustomer, "hello", "k1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->message.sequence(), first->message.sequence());
  EXPECT_EQ(Get(s.session_id()).message_count(), 1);
  EXPECT_GE(store_->find_message_calls(), 3);  // the retry read the store again
}

TEST_F(SessionsTest, ARetriedCreationSharesTheFirstCommitsFailure) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  request.set_request_id("req-1");
  request.mutable_first_message()->set_text("hi");
  request.set_first_client_message_id("m-1");
  absl::Status retry = RetryWhileTheFirstCommitFails(
      [&] { return sessions_->Create(kCustomer, request).status(); },
      [&] { return sessions_->Create(kCustomer, request).status(); });
  EXPECT_EQ(retry.code(), absl::StatusCode::kUnavailable) << retry;
}

TEST_F(SessionsTest, ARetriedCreationReturnsTheFirstSessionAndMessage) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  request.set_request_id("req-1");
  request.mutable_first_message()->set_text("hi");
  request.set_first_client_message_id("m-1");
  store_->Hold();
  absl::StatusOr<Sessions::Created> first;
  std::thread first_thread([&] { first = sessions_->Create(kCustomer, request); });
  ASSERT_TRUE(store_->WaitForHeld(1));
  absl::StatusOr<Sessions::Created> retry;
  std::thread retry_thread([&] { retry = sessions_->Create(kCustomer, request); });
  absl::SleepFor(absl::Milliseconds(50));
  store_->Release();
  first_thread.join();
  retry_thread.join();
  ASSERT_TRUE(first.ok() && retry.ok()) << first.status() << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->session.session_id(), first->session.session_id());
  ASSERT_TRUE(retry->first_message.has_value());
  EXPECT_EQ(retry->first_message->sequence(), first->first_message->sequence());
  // From the store, after a restart, too; and the first message's key
  // answers SendMessage retries.
  Make(&bot_);
  auto later = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->session.session_id(), first->session.session_id());
  EXPECT_EQ(later->first_message->text(), "hi");
  auto resent = Send(first->session.session_id(), kCustomer, "hi", "m-1");
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_TRUE(resent->replayed);
}

TEST_F(SessionsTest, RetriesByRequestIdShareTheFirstCommitsFailure) {
  v1::Session s = Assigned();
  v1::TransferSessionRequest transfer;
  transfer.set_session_id(s.session_id());
  transfer.mutable_queue()->set_category(common::v1::CATEGORY_KYC);
  transfer.set_request_id("t1");
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] { return sessions_->Transfer(kAgent, transfer).status(); },
                [&] { return sessions_->Transfer(kSupervisor, transfer).status(); })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, ResolveRetriesShareTheFirstCommitsFailure) {
  v1::Session s = Assigned();
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] { return sessions_->Resolve(kAgent, s.session_id(), "", "r1").status(); },
                [&] {
                  return sessions_->Resolve(kSupervisor, s.session_id(), "", "r1").status();
                })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, ReopenRetriesShareTheFirstCommitsFailure) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Resolve(kCustomer, s.session_id(), "", "").ok());
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] { return sessions_->Reopen(kCustomer, s.session_id(), "", "re1").status(); },
                [&] { return sessions_->Reopen(kCustomer, s.session_id(), "", "re1").status(); })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, CallbackRetriesShareTheFirstCommitsFailure) {
  v1::Session s = NewChat();
  const v1::CallbackDetails details = CallbackDetails();
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] {
                  return sessions_->RequestCallback(kCustomer, s.session_id(), details, "c1")
                      .status();
                },
                [&] {
                  return sessions_->RequestCallback(kCustomer, s.session_id(), details, "c1")
                      .status();
                })
                .code(),
            absl::StatusCode::kUnavailable);
}

// Calls answered "unchanged" when the state already says so (escalated,
// assigned, re-queued, closed) wait for that state to be durable too.
TEST_F(SessionsTest, StateReplaysShareTheFirstCommitsFailure) {
  v1::Session bot = NewChat();
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] { return sessions_->Escalate(kCustomer, bot.session_id()).status(); },
                [&] { return sessions_->Escalate(kCustomer, bot.session_id()).status(); })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, AssignReplaysShareTheFirstCommitsFailure) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] {
                  return sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "", "o1")
                      .status();
                },
                [&] {
                  return sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "", "o1")
                      .status();
                })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, CloseReplaysShareTheFirstCommitsFailure) {
  v1::Session s = NewChat();
  EXPECT_EQ(RetryWhileTheFirstCommitFails(
                [&] {
                  return sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED)
                      .status();
                },
                [&] {
                  return sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED)
                      .status();
                })
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionsTest, ARefusedAdmissionIsNotAStorageFailure) {
  v1::Session s = NewChat();
  store_->set_admit(absl::ResourceExhaustedError("storage busy"));
  EXPECT_EQ(Send(s.session_id(), kCustomer, "hello", "k1").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Get(s.session_id()).last_sequence(), 1);  // nothing decided
  store_->set_admit(absl::OkStatus());
  auto sent = Send(s.session_id(), kCustomer, "hello", "k1");
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_FALSE(sent->replayed);
}

// The working set: memory holds open work only.

TEST_F(SessionsTest, ClosedSessionsLeaveMemoryAndAreStillServed) {
  SessionsOptions options;
  options.closed_cache_size = 0;  // every read of a closed session goes to the store
  Make(&bot_, options);
  v1::Session s = NewChat();
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "hello", "k1").ok());
  RunBackground();
  ASSERT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  Sessions::Footprint footprint = sessions_->footprint();
  EXPECT_EQ(footprint.live_sessions, 0u);
  EXPECT_EQ(footprint.pending_keys, 0u);
  EXPECT_EQ(footprint.deadlines, 0u);
  // Not in memory: the non-blocking read says so; the blocking one reads
  // the store.
  EXPECT_FALSE(sessions_->TryGet(kCustomer, s.session_id()).has_value());
  const int reads = store_->session_reads();
  auto closed = sessions_->Get(kCustomer, s.session_id());
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_GT(store_->session_reads(), reads);
  EXPECT_EQ(sessions_->Get({"cust-2", Role::kCustomer}, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  // A retried message is still answered; a new one is refused.
  auto retry = Send(s.session_id(), kCustomer, "hello", "k1");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(Send(s.session_id(), kCustomer, "more", "k2").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  auto messages = sessions_->ListMessages(kCustomer, s.session_id(), 0, 0, false, 0, "");
  ASSERT_TRUE(messages.ok()) << messages.status();
  EXPECT_EQ(messages->messages.size(), 2u);
  EXPECT_EQ(messages->last_sequence, closed->last_sequence());
  EXPECT_EQ(*sessions_->Subscribe(kCustomer, s.session_id(), 0, nullptr),
            closed->last_sequence());
  EXPECT_EQ(sessions_->UpdateTyping(kCustomer, s.session_id(), true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sessions_->Escalate(kCustomer, s.session_id()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Routing retries an accept it could not record (its leader died after
// this call) possibly once the session has moved on: the offer applied is
// answered as applied, in memory and from the store; another is refused.
TEST_F(SessionsTest, AnAppliedOfferIsAnsweredAsAppliedAfterTheSessionMovedOn) {
  SessionsOptions options;
  options.closed_cache_size = 0;  // a closed session is read from the store
  Make(&bot_, options);
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "offer-1").ok());
  ASSERT_TRUE(sessions_->Resolve(kAgent, s.session_id(), "done", "r1").ok());
  auto resolved = sessions_->AssignAgent(kRouting, s.session_id(), "agent-1", "Ana", "offer-1");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->state(), v1::SESSION_STATE_RESOLVED);
  EXPECT_EQ(Count("sessions.agent_assigned"), 1);
  EXPECT_EQ(sessions_->AssignAgent(kRouting, s.session_id(), "agent-2", "", "offer-2")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  // Closed by the customer while assigned: out of memory, read from the store.
  v1::Session other = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, other.session_id()).ok());
  RunBackground();
  ASSERT_TRUE(
      sessions_->AssignAgent(kRouting, other.session_id(), "agent-1", "Ana", "offer-3").ok());
  ASSERT_TRUE(
      sessions_->Close(kCustomer, other.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  RunBackground();  // routing is told; then the session leaves memory
  ASSERT_FALSE(sessions_->TryGet(kCustomer, other.session_id()).has_value());
  auto closed = sessions_->AssignAgent(kRouting, other.session_id(), "agent-1", "Ana", "offer-3");
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(sessions_->AssignAgent(kRouting, other.session_id(), "agent-1", "Ana", "offer-9")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("sessions.agent_assigned"), 2);
}

TEST_F(SessionsTest, AReadClosedSessionIsServedFromTheCache) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  EXPECT_EQ(sessions_->footprint().live_sessions, 0u);
  EXPECT_EQ(sessions_->footprint().cached_closed, 1u);
  auto quick = sessions_->TryGet(kCustomer, s.session_id());
  ASSERT_TRUE(quick.has_value());
  ASSERT_TRUE(quick->ok());
  EXPECT_EQ((*quick)->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(store_->session_reads(), 0);
}

TEST_F(SessionsTest, StartUpLoadsOpenWorkOnly) {
  std::vector<std::string> closed;
  for (int i = 0; i < 5; ++i) {
    v1::Session s = NewChat(absl::StrCat("cust-", i));
    if (i < 3) {
      ASSERT_TRUE(sessions_->Close({s.customer_id(), Role::kCustomer}, s.session_id(),
                                   v1::CLOSE_REASON_UNSPECIFIED)
                      .ok());
      closed.push_back(s.session_id());
    }
  }
  Make(&bot_);
  EXPECT_EQ(sessions_->footprint().live_sessions, 2u);
  EXPECT_EQ(metrics_.sessions(v1::SESSION_STATE_CLOSED).Value(), 3 + 3);  // two runs
  EXPECT_EQ(Get(closed[0]).state(), v1::SESSION_STATE_CLOSED);
}

TEST_F(SessionsTest, TheCustomersOpenSessionsAreCounted) {
  SessionsOptions options;
  options.max_open_sessions = 2;
  Make(&bot_, options);
  v1::Session first = NewChat();
  NewChat();
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(sessions_->Create({"cust-2", Role::kCustomer}, request).ok());
  ASSERT_TRUE(
      sessions_->Close(kCustomer, first.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  EXPECT_TRUE(sessions_->Create(kCustomer, request).ok());
  // A restart counts them again from the open sessions it loads.
  Make(&bot_, options);
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SessionsTest, OnlySessionsWithSomethingDueAreIndexed) {
  v1::Session bot = NewChat();                   // idle timeout
  v1::Session queued = NewChat("cust-2");        // QUEUED chats wait without a timer
  ASSERT_TRUE(sessions_->Escalate({"cust-2", Role::kCustomer}, queued.session_id()).ok());
  EXPECT_EQ(sessions_->footprint().deadlines, 1u);
  ASSERT_TRUE(sessions_
                  ->RecordOffer(kRouting, queued.session_id(), "agent-1", "o1",
                                clock_.Now() + absl::Seconds(30))
                  .ok());
  EXPECT_EQ(sessions_->footprint().deadlines, 2u);  // the offer lapses
  clock_.Advance(absl::Seconds(31));
  ASSERT_EQ(*sessions_->Sweep(), 1);  // only the offer was due
  EXPECT_EQ(sessions_->footprint().deadlines, 1u);
  EXPECT_EQ(Get(bot.session_id()).state(), v1::SESSION_STATE_BOT);
}

TEST_F(SessionsTest, MessagesPerSecondAreLimitedWithARetryAfter) {
  v1::Session s = Assigned();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Send(s.session_id(), kCustomer, "hi", absl::StrCat("c", i)).ok());
  }
  absl::Status refused = Send(s.session_id(), kCustomer, "hi", "c10").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limits::RetryAfterSeconds(refused), 1);
  // The agent has a budget of their own.
  EXPECT_TRUE(Send(s.session_id(), kAgent, "hello", "a1").ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Send(s.session_id(), kCustomer, "hi", "c10").ok());
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
  EXPECT_TRUE(absl::StrContains(status.message(), "UploadAttachment")) << status;
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
  EXPECT_EQ(sessions_->Resolve(kSupervisor, s.session_id(), "", "").status().code(),
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
  EXPECT_EQ(Count("sessions.first_response_recorded"), 1);
  ASSERT_TRUE(Send(s.session_id(), kAgent, "again", "a2").ok());
  EXPECT_EQ(Count("sessions.first_response_recorded"), 1);
  // Another customer sees nothing.
  EXPECT_EQ(sessions_->Get({"cust-2", Role::kCustomer}, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Send(s.session_id(), {"cust-2", Role::kCustomer}, "x", "x1").status().code(),
            absl::StatusCode::kNotFound);
  auto resolved = sessions_->Resolve(kAgent, s.session_id(), "done", "r1");
  ASSERT_TRUE(resolved.ok());
  // The agent is no longer assigned, yet their retry gets the first answer;
  // another agent still sees nothing.
  auto retried = sessions_->Resolve(kAgent, s.session_id(), "done", "r1");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::SESSION_STATE_RESOLVED);
  EXPECT_EQ(sessions_->Resolve({"agent-2", Role::kAgent}, s.session_id(), "done", "r1")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
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

// The service answers from a thread of its own: what a commit sends to
// clients waits for that executor, in commit order.
TEST_F(SessionsTest, ACommitsAnswersAndEventsGoToTheAnswerExecutorInCommitOrder) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  absl::Mutex held_mu;
  std::deque<std::function<void()>> held;
  Make(&bot_, SessionsOptions(), [&](std::function<void()> task) {
    absl::MutexLock lock(&held_mu);
    held.push_back(std::move(task));
  });
  CountingListener listener;
  ASSERT_TRUE(sessions_->Subscribe(kCustomer, s.session_id(), 0, &listener).ok());
  v1::NewMessage text;
  text.set_text("one");
  AsyncAnswer one, two;
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k1", text, one.Callback());
  sessions_->SendMessageAsync(kCustomer, s.session_id(), "k2", text, two.Callback());
  // Once this commits, both messages have; nothing reached a client yet.
  ASSERT_TRUE(committer_->Commit([](storage::Database&) { return absl::OkStatus(); }).ok());
  EXPECT_FALSE(one.answered.HasBeenNotified());
  EXPECT_TRUE(listener.sequences.empty());
  // Committed all the same: a client that read sequence 4 from memory may
  // subscribe from it at once.
  CountingListener from_last;
  auto subscribed = sessions_->Subscribe(kCustomer, s.session_id(), 4, &from_last);
  ASSERT_TRUE(subscribed.ok()) << subscribed.status();
  EXPECT_EQ(*subscribed, 4);
  std::deque<std::function<void()>> tasks;
  {
    absl::MutexLock lock(&held_mu);
    tasks.swap(held);
  }
  ASSERT_EQ(tasks.size(), 4u);  // Each message's event, then its answer.
  tasks[0]();
  EXPECT_EQ(listener.sequences, (std::vector<int64_t>{3}));
  EXPECT_FALSE(one.answered.HasBeenNotified());
  tasks[1]();
  ASSERT_TRUE(one.answered.HasBeenNotified());
  EXPECT_FALSE(two.answered.HasBeenNotified());
  tasks[2]();
  tasks[3]();
  EXPECT_EQ(listener.sequences, (std::vector<int64_t>{3, 4}));
  ASSERT_TRUE(one.answer.ok()) << one.answer.status();
  ASSERT_TRUE(two.answer.ok()) << two.answer.status();
  EXPECT_EQ(one.answer->message.sequence(), 3);
  EXPECT_EQ(two.answer->message.sequence(), 4);
  sessions_->Unsubscribe(s.session_id(), &listener);
  sessions_->Unsubscribe(s.session_id(), &from_last);
  Make(&bot_);  // Nothing is sent to `held` once this test returns.
}

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
  EXPECT_EQ(metrics_.routing_pending->Value(), 1);
  routing_.status = absl::OkStatus();
  EXPECT_EQ(sessions_->RetryRouting(), 1);
  EXPECT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(sessions_->RetryRouting(), 0);
  EXPECT_EQ(metrics_.routing_pending->Value(), 0);
  // A restart keeps the pending flag cleared (and would keep it set).
  Make(&bot_);
  EXPECT_EQ(sessions_->RetryRouting(), 0);
}

TEST_F(SessionsTest, AClosedSessionStaysUntilRoutingHearsOfIt) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  routing_.status = absl::UnavailableError("routing down");
  ASSERT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  RunBackground();
  EXPECT_EQ(sessions_->footprint().live_sessions, 1u);
  // Also across a restart: start-up loads it although it is CLOSED.
  Make(&bot_);
  EXPECT_EQ(sessions_->footprint().live_sessions, 1u);
  routing_.status = absl::OkStatus();
  EXPECT_EQ(sessions_->RetryRouting(), 1);
  ASSERT_EQ(routing_.cancelled.size(), 1u);
  EXPECT_EQ(routing_.cancelled[0].second, routing::v1::CANCEL_REASON_CUSTOMER_LEFT);
  EXPECT_EQ(sessions_->footprint().live_sessions, 0u);
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

  // Acknowledged at once, with the reply target, by the system: in the
  // transcript and the stream, and never a first response.
  auto transcript =
      *sessions_->ListMessages(kCustomer, email->session.session_id(), 0, 0, false, 0, "");
  ASSERT_EQ(transcript.messages.size(), 2u);
  EXPECT_EQ(transcript.messages[1].sender_role(), common::v1::SENDER_ROLE_SYSTEM);
  EXPECT_TRUE(absl::StrContains(transcript.messages[1].text(), "within 48 hours"))
      << transcript.messages[1].text();
  EXPECT_FALSE(Get(email->session.session_id()).has_first_human_response_at());
  EXPECT_EQ(Count("sessions.first_response_recorded"), 0);
  auto urgent_transcript =
      *sessions_->ListMessages(kCustomer, urgent->session.session_id(), 0, 0, true, 1, "");
  EXPECT_TRUE(absl::StrContains(urgent_transcript.messages[0].text(), "within 4 hours"));

  clock_.Advance(absl::Hours(47));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_FALSE(Get(email->session.session_id()).sla().breached());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(sessions_->Sweep().ok());
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_TRUE(Get(email->session.session_id()).sla().breached());
  EXPECT_EQ(Count("sessions.sla_breached"), 2);  // both sessions, once each
  EXPECT_EQ(metrics_.sla_breach(common::v1::CHANNEL_EMAIL, common::v1::CATEGORY_WITHDRAWAL)
                .Value(),
            1);
}

TEST_F(SessionsTest, ChineseEmailsAreAcknowledgedInChinese) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_DEPOSIT);
  request.set_language("zh-CN");
  request.set_subject("充值未到账");
  request.mutable_first_message()->set_text("我的USDT充值还没到账");
  auto email = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(email.ok()) << email.status();
  EXPECT_EQ(email->session.message_count(), 2);
  auto events = Events(email->session.session_id());
  ASSERT_EQ(events.size(), 3u);  // created, the email, the acknowledgement
  EXPECT_EQ(events[2].message().sender_role(), common::v1::SENDER_ROLE_SYSTEM);
  EXPECT_EQ(events[2].message().sender_id(), "system");
  EXPECT_EQ(events[2].message().text(), "感谢您的来信。我们已收到您的邮件，将在48小时内回复您。");
  // In Kafka as a SYSTEM message, without its text.
  int system_messages = 0;
  for (const auto& event : Outbox()) {
    if (event.message_sent().sender_role() == common::v1::SENDER_ROLE_SYSTEM) ++system_messages;
  }
  EXPECT_EQ(system_messages, 1);
}

TEST_F(SessionsTest, ResolvingInvitesTheCustomerToRate) {
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  request.set_language("zh-CN");
  auto chat = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(chat.ok());
  const std::string id = chat->session.session_id();
  ASSERT_TRUE(sessions_->Escalate(kCustomer, id).ok());
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, id, "agent-1", "Ana", "o1").ok());
  auto resolved = sessions_->Resolve(kAgent, id, "fixed", "r1");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  auto events = Events(id);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].state_changed().state(), v1::SESSION_STATE_RESOLVED);
  const v1::Message& invitation = events.back().message();
  EXPECT_EQ(invitation.sender_role(), common::v1::SENDER_ROLE_SYSTEM);
  EXPECT_TRUE(absl::StrContains(invitation.text(), "响应速度")) << invitation.text();
  EXPECT_FALSE(Get(id).has_first_human_response_at());
  // A retried resolve does not invite twice.
  ASSERT_TRUE(sessions_->Resolve(kSupervisor, id, "fixed", "r1").ok());
  EXPECT_EQ(Events(id).size(), events.size());
  // An English chat resolved by its customer from the bot is invited in
  // English.
  v1::Session en = NewChat("cust-2");
  ASSERT_TRUE(sessions_->Resolve({"cust-2", Role::kCustomer}, en.session_id(), "", "").ok());
  EXPECT_TRUE(absl::StrContains(Events(en.session_id()).back().message().text(),
                                "professionalism"));
}

TEST_F(SessionsTest, IdleSessionsClose) {
  v1::Session s = NewChat();
  clock_.Advance(absl::Minutes(29));
  ASSERT_TRUE(sessions_->Sweep().ok());
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_BOT);
  // A message restarts the idle clock.
  ASSERT_TRUE(Send(s.session_id(), kCustomer, "still here", "k1").ok());
  RunBackground();
  clock_.Advance(absl::Minutes(2));
  ASSERT_EQ(*sessions_->Sweep(), 0);
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_BOT);
  clock_.Advance(absl::Minutes(29));
  ASSERT_EQ(*sessions_->Sweep(), 1);
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(Get(s.session_id()).close_reason(), v1::CLOSE_REASON_IDLE_TIMEOUT);
  EXPECT_EQ(sessions_->footprint().live_sessions, 0u);
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
  const v1::CallbackDetails details = CallbackDetails();
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
  // The retry is answered from the store after a restart; once the call
  // is over another may be requested.
  Make(&bot_);
  auto after_restart = sessions_->RequestCallback(kCustomer, s.session_id(), details, "cb-1");
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_EQ(after_restart->phone_session.session_id(), callback->phone_session.session_id());
  ASSERT_TRUE(sessions_
                  ->Close(kSupervisor, callback->phone_session.session_id(),
                          v1::CLOSE_REASON_UNSPECIFIED)
                  .ok());
  EXPECT_TRUE(sessions_->RequestCallback(kCustomer, s.session_id(), details, "cb-2").ok());
}

TEST_F(SessionsTest, AVerificationTokenVerifiesTheFirstSessionItIsUsedOnOnly) {
  v1::Session first = NewChat();
  v1::Session second = NewChat();
  const std::string token = VerificationToken("cust-1");
  ASSERT_TRUE(sessions_->AttachVerification(kCustomer, first.session_id(), token).ok());
  // Again on the same session: fine (the binding stays as it was).
  ASSERT_TRUE(sessions_->AttachVerification(kCustomer, first.session_id(), token).ok());
  const int attached = Count("sessions.verification_attached");
  auto elsewhere = sessions_->AttachVerification(kCustomer, second.session_id(), token);
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(elsewhere.status().message(), "verification_token"));
  EXPECT_FALSE(Get(second.session_id()).has_verification());
  EXPECT_EQ(Count("sessions.verification_attached"), attached);
  // Nor for a callback from the other session, nor for a PHONE session.
  v1::CallbackDetails details = CallbackDetails();
  details.set_verification_token(token);
  auto callback = sessions_->RequestCallback(kCustomer, second.session_id(), details, "cb-1");
  EXPECT_EQ(callback.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StartsWith(callback.status().message(), "callback.verification_token"));
  v1::CreateSessionRequest phone;
  phone.set_channel(common::v1::CHANNEL_PHONE);
  phone.set_category(common::v1::CATEGORY_ACCOUNT_SECURITY);
  *phone.mutable_callback() = details;
  EXPECT_EQ(sessions_->Create(kCustomer, phone).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The binding is durable: a restart does not free the token.
  Make(&bot_);
  EXPECT_EQ(sessions_->AttachVerification(kCustomer, second.session_id(), token).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(sessions_->AttachVerification(kCustomer, first.session_id(), token).ok());
  // A callback binds its token to the session it was asked from.
  v1::CallbackDetails fresh = CallbackDetails();
  ASSERT_TRUE(sessions_->RequestCallback(kCustomer, second.session_id(), fresh, "cb-2").ok());
  EXPECT_EQ(sessions_->AttachVerification(kCustomer, first.session_id(),
                                          fresh.verification_token())
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(sessions_
                  ->AttachVerification(kCustomer, second.session_id(),
                                       fresh.verification_token())
                  .ok());
  // So does a PHONE session's creation.
  *phone.mutable_callback() = CallbackDetails();
  auto created = sessions_->Create(kCustomer, phone);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(sessions_->AttachVerification(kCustomer, first.session_id(),
                                          phone.callback().verification_token())
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SessionsTest, ATokenBoundByAWriteNotYetDurableIsRefusedElsewhere) {
  v1::Session first = NewChat();
  v1::Session second = NewChat();
  const std::string token = VerificationToken("cust-1");
  store_->Hold();
  absl::Status first_status;
  std::thread attach([&] {
    first_status = sessions_->AttachVerification(kCustomer, first.session_id(), token).status();
  });
  ASSERT_TRUE(store_->WaitForHeld(1));
  EXPECT_EQ(sessions_->AttachVerification(kCustomer, second.session_id(), token).status().code(),
            absl::StatusCode::kPermissionDenied);
  store_->Release();
  attach.join();
  EXPECT_TRUE(first_status.ok()) << first_status;
  EXPECT_EQ(sessions_->footprint().pending_keys, 0u);
}

TEST_F(SessionsTest, ABindingThatSettlesWhileTheStoreIsReadIsNotMissed) {
  v1::Session first = NewChat();
  v1::Session second = NewChat();
  const std::string token = VerificationToken("cust-1");
  // The attach to `second` reads the store before the attach to `first` is
  // decided; that one is decided and committed before `second`'s decides.
  absl::Status first_status;
  store_->AfterNextFindTokenBinding([&] {
    first_status = sessions_->AttachVerification(kCustomer, first.session_id(), token).status();
  });
  auto second_status = sessions_->AttachVerification(kCustomer, second.session_id(), token);
  EXPECT_TRUE(first_status.ok()) << first_status;
  EXPECT_EQ(second_status.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(Get(second.session_id()).has_verification());
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
  // The same key from another customer is another session.
  auto other = sessions_->Create({"cust-2", Role::kCustomer}, request);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->replayed);
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
  clock_.Advance(absl::Seconds(20));
  absl::Status refused = sessions_->Create(kCustomer, request).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limits::RetryAfterSeconds(refused), 40);  // when the minute ends
  clock_.Advance(absl::Minutes(1));
  for (int i = 0; i < 10; ++i) NewChat();  // 20 open now
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(sessions_->Create(kCustomer, request).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(sessions_->Create({"cust-2", Role::kCustomer}, request).ok());
}

TEST_F(SessionsTest, TransferToAnotherQueueAndBackToTheBot) {
  v1::Session s = Assigned();
  v1::TransferSessionRequest transfer;
  transfer.set_session_id(s.session_id());
  transfer.mutable_queue()->set_category(common::v1::CATEGORY_KYC);
  transfer.set_note("needs KYC team");
  transfer.set_request_id("t1");
  auto moved = sessions_->Transfer(kAgent, transfer);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(moved->category(), common::v1::CATEGORY_KYC);
  EXPECT_EQ(sessions_->Transfer(kAgent, transfer).status().code(),
            absl::StatusCode::kNotFound);  // agent-1 left
  EXPECT_TRUE(sessions_->Transfer(kSupervisor, transfer).ok());  // replay
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

TEST_F(SessionsTest, TransferToANamedAgent) {
  v1::Session s = Assigned();
  v1::TransferSessionRequest transfer;
  transfer.set_session_id(s.session_id());
  transfer.set_agent_id("agent-7");
  transfer.set_note("VIP, knows the case");
  auto moved = sessions_->Transfer(kAgent, transfer);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(moved->category(), s.category());
  EXPECT_TRUE(moved->assigned_agent_id().empty());
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 2u);
  const auto& e = routing_.enqueued[1];
  EXPECT_EQ(e.target_agent_id(), "agent-7");
  EXPECT_EQ(e.excluded_agent_id(), "agent-1");
  EXPECT_TRUE(e.at_head());
  EXPECT_EQ(e.reason(), routing::v1::ENQUEUE_REASON_TRANSFERRED);
  // The named agent cannot see it until routing offers it to them.
  EXPECT_EQ(sessions_->Get({"agent-7", Role::kAgent}, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(sessions_->AssignAgent(kRouting, s.session_id(), "agent-7", "Li", "o7").ok());
  EXPECT_TRUE(sessions_->Get({"agent-7", Role::kAgent}, s.session_id()).ok());
  // Transferring to the agent who has it is a mistake.
  transfer.set_agent_id("agent-7");
  EXPECT_EQ(sessions_->Transfer({"agent-7", Role::kAgent}, transfer).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("sessions.session_transferred"), 1);
}

TEST_F(SessionsTest, RequeueByRouting) {
  v1::Session s = Assigned();
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
  // Closed sessions are listed too (from the store).
  ASSERT_TRUE(sessions_->Close(kCustomer, ids[1], v1::CLOSE_REASON_UNSPECIFIED).ok());
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
  Sessions::ListFilter closed;
  closed.states = {v1::SESSION_STATE_CLOSED};
  auto closed_page = sessions_->List(kCustomer, closed, 0, "");
  ASSERT_EQ(closed_page->sessions.size(), 1u);
  EXPECT_EQ(closed_page->sessions[0].session_id(), ids[3]);
  Sessions::ListFilter other;
  other.customer_id = "cust-2";
  EXPECT_EQ(sessions_->List(kCustomer, other, 0, "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(sessions_->List(kCustomer, {}, 0, "garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sessions_->List({"agent-1", Role::kAgent}, {}, 0, "")->sessions.size(), 0u);
}

}  // namespace
}  // namespace switchboard::sessions

namespace switchboard::sessions {
namespace {

// ---- hours of operation ----

// The texts of the session's SYSTEM messages, oldest first, once the
// writes queued so far (background ones too) are durable.
std::vector<std::string> SystemTexts(storage::GroupCommitter& committer, Sessions& sessions,
                                     const Caller& caller, const std::string& session_id) {
  EXPECT_TRUE(committer.Commit([](storage::Database&) { return absl::OkStatus(); }).ok());
  std::vector<std::string> out;
  auto page = sessions.ListMessages(caller, session_id, 0, 0, false, 0, "");
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return out;
  for (const v1::Message& m : page->messages) {
    if (m.sender_role() == common::v1::SENDER_ROLE_SYSTEM) out.push_back(m.text());
  }
  return out;
}

// Closed now; opens Monday 2026-03-09 09:00 in Berlin (08:00 UTC).
routing::v1::QueueHours ClosedUntilMonday() {
  routing::v1::QueueHours hours;
  hours.set_open(false);
  hours.set_schedule_id("desk-berlin");
  hours.set_schedule_version(3);
  hours.set_time_zone("Europe/Berlin");
  protoutil::ToTimestamp(absl::FromCivil(absl::CivilMinute(2026, 3, 9, 8, 0), absl::UTCTimeZone()),
                         hours.mutable_next_opening_at());
  *hours.mutable_next_transition_at() = hours.next_opening_at();
  return hours;
}

TEST_F(SessionsTest, EmailSlaCountsBusinessHoursForTheChosenCategories) {
  SessionsOptions options;
  options.business_hours_sla_categories = {common::v1::CATEGORY_DEPOSIT};
  Make(&bot_, options);
  routing_.hours = ClosedUntilMonday();
  // 48 business hours of 09:00-17:00 weekdays, as routing counts them.
  const absl::Time due =
      absl::FromCivil(absl::CivilMinute(2026, 3, 16, 16, 0), absl::UTCTimeZone());
  protoutil::ToTimestamp(due, &routing_.business_time_ends_at);

  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_DEPOSIT);
  request.set_language("en");
  request.set_subject("Deposit");
  request.mutable_first_message()->set_text("Where is my deposit?");
  auto email = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(email.ok()) << email.status();
  EXPECT_TRUE(email->session.sla().business_hours());
  EXPECT_EQ(protoutil::FromTimestamp(email->session.sla().due_at()), due);
  EXPECT_EQ(protoutil::FromDuration(email->session.sla().target()), absl::Hours(48));
  ASSERT_EQ(routing_.asked.size(), 1u);
  EXPECT_EQ(routing_.asked[0].channel(), common::v1::CHANNEL_EMAIL);
  EXPECT_EQ(protoutil::FromDuration(routing_.asked[0].business_time()), absl::Hours(48));
  EXPECT_EQ(protoutil::FromTimestamp(routing_.asked[0].from()), clock_.Now());
  // The acknowledgement states the due time in the desk's zone and in UTC.
  const std::vector<std::string> texts =
      SystemTexts(*committer_, *sessions_, kCustomer, email->session.session_id());
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_NE(texts[0].find("48 hours of business hours"), std::string::npos) << texts[0];
  EXPECT_NE(texts[0].find("2026-03-16 17:00 (Europe/Berlin), 2026-03-16 16:00 UTC"),
            std::string::npos)
      << texts[0];
  // Routing is told the same due time.
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 1u);
  EXPECT_EQ(protoutil::FromTimestamp(routing_.enqueued[0].first_response_due_at()), due);

  // Other categories keep calendar time, without asking routing.
  request.set_category(common::v1::CATEGORY_KYC);
  auto kyc = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(kyc.ok());
  EXPECT_FALSE(kyc->session.sla().business_hours());
  EXPECT_EQ(protoutil::FromTimestamp(kyc->session.sla().due_at()),
            clock_.Now() + absl::Hours(48));
  EXPECT_EQ(routing_.asked.size(), 1u);

  // Routing down: the calendar due time (never later) is promised instead.
  routing_.status = absl::UnavailableError("routing down");
  request.set_category(common::v1::CATEGORY_DEPOSIT);
  auto fallback = sessions_->Create(kCustomer, request);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_FALSE(fallback->session.sla().business_hours());
  EXPECT_EQ(protoutil::FromTimestamp(fallback->session.sla().due_at()),
            clock_.Now() + absl::Hours(48));
  EXPECT_NE(SystemTexts(*committer_, *sessions_, kCustomer, fallback->session.session_id())[0].find(
                "within 48 hours."),
            std::string::npos);
}

TEST_F(SessionsTest, ACallbackRequestedWhileClosedIsBookedForTheOpening) {
  v1::Session s = NewChat();
  routing_.hours = ClosedUntilMonday();
  auto callback = sessions_->RequestCallback(kCustomer, s.session_id(), CallbackDetails(), "c1");
  ASSERT_TRUE(callback.ok()) << callback.status();
  EXPECT_EQ(callback->callback.scheduled_for().seconds(),
            routing_.hours.next_opening_at().seconds());
  EXPECT_EQ(callback->phone_session.callback().scheduled_for().seconds(),
            routing_.hours.next_opening_at().seconds());
  ASSERT_EQ(routing_.asked.size(), 1u);
  EXPECT_EQ(routing_.asked[0].channel(), common::v1::CHANNEL_PHONE);
  // Data teams see the booking too.
  bool booked_event = false;
  for (const events::v1::Event& event : Outbox()) {
    if (!event.has_callback_requested()) continue;
    booked_event = true;
    EXPECT_EQ(event.callback_requested().scheduled_for().seconds(),
              routing_.hours.next_opening_at().seconds());
  }
  EXPECT_TRUE(booked_event);
  const std::vector<std::string> texts =
      SystemTexts(*committer_, *sessions_, kCustomer, s.session_id());
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_NE(texts[0].find("booked for 2026-03-09 09:00 (Europe/Berlin), 2026-03-09 08:00 UTC"),
            std::string::npos)
      << texts[0];

  // Open: no booking, no message.
  v1::Session other = NewChat();
  routing_.hours = routing::v1::QueueHours();
  routing_.hours.set_open(true);
  auto now = sessions_->RequestCallback(kCustomer, other.session_id(), CallbackDetails(), "c2");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_FALSE(now->callback.has_scheduled_for());
  EXPECT_TRUE(SystemTexts(*committer_, *sessions_, kCustomer, other.session_id()).empty());

  // Routing down: the callback is still taken, without a booked time.
  v1::Session third = NewChat();
  routing_.status = absl::UnavailableError("routing down");
  auto blind = sessions_->RequestCallback(kCustomer, third.session_id(), CallbackDetails(), "c3");
  ASSERT_TRUE(blind.ok()) << blind.status();
  EXPECT_FALSE(blind->callback.has_scheduled_for());
}

TEST_F(SessionsTest, AChatEscalatedWhileClosedIsToldAndMayContinueByEmail) {
  routing_.hours = ClosedUntilMonday();
  v1::Session s = NewChat("cust-1");
  ASSERT_TRUE(sessions_->Escalate(kCustomer, s.session_id()).ok());
  RunBackground();
  std::vector<std::string> texts = SystemTexts(*committer_, *sessions_, kCustomer, s.session_id());
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_NE(texts[0].find("opens again at 2026-03-09 09:00 (Europe/Berlin), 2026-03-09 08:00 UTC"),
            std::string::npos)
      << texts[0];
  EXPECT_NE(texts[0].find("continue by email"), std::string::npos);

  // Only the session's customer, only while it waits as a chat.
  EXPECT_EQ(sessions_->ContinueByEmail(kAgent, s.session_id()).status().code(),
            absl::StatusCode::kNotFound);
  v1::Session in_bot = NewChat("cust-1");
  EXPECT_EQ(sessions_->ContinueByEmail(kCustomer, in_bot.session_id()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto email = sessions_->ContinueByEmail(kCustomer, s.session_id());
  ASSERT_TRUE(email.ok()) << email.status();
  EXPECT_EQ(email->channel(), common::v1::CHANNEL_EMAIL);
  EXPECT_EQ(email->continued_from(), common::v1::CHANNEL_CHAT);
  EXPECT_EQ(email->state(), v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(protoutil::FromTimestamp(email->sla().due_at()), clock_.Now() + absl::Hours(48));
  texts = SystemTexts(*committer_, *sessions_, kCustomer, s.session_id());
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_NE(texts[1].find("will reply within 48 hours"), std::string::npos) << texts[1];
  EXPECT_EQ(Count("sessions.channel_changed"), 1);
  // Routing moves the entry to the EMAIL queue, with the due time.
  RunBackground();
  ASSERT_EQ(routing_.enqueued.size(), 2u);
  EXPECT_EQ(routing_.enqueued[1].channel(), common::v1::CHANNEL_EMAIL);
  EXPECT_TRUE(routing_.enqueued[1].has_first_response_due_at());
  // The EMAIL queue's closed answer does not repeat the chat notice.
  EXPECT_EQ(SystemTexts(*committer_, *sessions_, kCustomer, s.session_id()).size(), 2u);

  // Idempotent.
  auto again = sessions_->ContinueByEmail(kCustomer, s.session_id());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sla().due_at().seconds(), email->sla().due_at().seconds());
  EXPECT_EQ(Count("sessions.channel_changed"), 1);
  // Durable: a restart reads it back.
  Make(&bot_);
  EXPECT_EQ(Get(s.session_id()).continued_from(), common::v1::CHANNEL_CHAT);
  EXPECT_EQ(Get(s.session_id()).channel(), common::v1::CHANNEL_EMAIL);
}

// A record as the attachment logic writes it after an upload.
AttachmentRecord Uploaded(const std::string& session_id, const Caller& uploader,
                          const std::string& attachment_id, const std::string& upload_id,
                          v1::AttachmentState state = v1::ATTACHMENT_STATE_PENDING_SCAN) {
  AttachmentRecord r;
  v1::Attachment& a = r.attachment;
  a.set_attachment_id(attachment_id);
  a.set_session_id(session_id);
  a.set_uploader_id(uploader.id);
  a.set_uploader_role(SenderFor(uploader.role));
  a.set_file_name("screenshot.png");
  a.set_content_type("image/png");
  a.set_size_bytes(1234);
  a.set_sha256(std::string(64, 'a'));
  a.set_state(state);
  r.upload_id = upload_id;
  r.fingerprint = upload_id + "-header";
  r.blob_key = a.sha256();
  return r;
}

TEST_F(SessionsTest, AnAttachmentChangeIsAnEventOnTheSessionsStreamAndInKafka) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->CheckUpload(kCustomer, s.session_id()).ok());
  AttachmentRecord record = Uploaded(s.session_id(), kCustomer, "att_1", "up-1");
  ASSERT_TRUE(sessions_->WriteAttachment(record).ok());
  std::vector<v1::SessionEvent> events = Events(s.session_id());
  ASSERT_TRUE(events.back().has_attachment_updated());
  EXPECT_EQ(events.back().attachment_updated().state(), v1::ATTACHMENT_STATE_PENDING_SCAN);
  EXPECT_EQ(Get(s.session_id()).last_sequence(), events.back().sequence());
  // The verdict is another event; the record follows it.
  record.attachment.set_state(v1::ATTACHMENT_STATE_CLEAN);
  ASSERT_TRUE(sessions_->WriteAttachment(record).ok());
  EXPECT_EQ(Events(s.session_id()).back().attachment_updated().state(),
            v1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ((*sessions_->FindAttachment("att_1"))->attachment.state(),
            v1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ(Count("sessions.attachment_changed"), 2);
  // Metadata only: the file's name never reaches Kafka.
  for (const events::v1::Event& e : Outbox()) {
    EXPECT_FALSE(absl::StrContains(e.SerializeAsString(), "screenshot.png"));
  }
}

TEST_F(SessionsTest, AnUploadIdHoldsOneFileOnly) {
  v1::Session s = NewChat();
  ASSERT_TRUE(sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_1", "up-1"))
                  .ok());
  const int64_t sequence = Get(s.session_id()).last_sequence();
  absl::Status status =
      sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_2", "up-1"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_FALSE(sessions_->FindAttachment("att_2")->has_value());
  EXPECT_EQ(Get(s.session_id()).last_sequence(), sequence);
  // The same key in another session, or of another uploader, is another file.
  v1::Session other = NewChat();
  EXPECT_TRUE(sessions_->WriteAttachment(Uploaded(other.session_id(), kCustomer, "att_3", "up-1"))
                  .ok());
  // While a write holds the key, a second file with it is refused at once.
  store_->Hold();
  std::thread first([&] {
    EXPECT_TRUE(
        sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_4", "up-2")).ok());
  });
  ASSERT_TRUE(store_->WaitForHeld(1));
  EXPECT_EQ(sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_5", "up-2"))
                .code(),
            absl::StatusCode::kAlreadyExists);
  store_->Release();
  first.join();
  EXPECT_TRUE(sessions_->FindAttachment("att_4")->has_value());
}

TEST_F(SessionsTest, WhoMayUploadAndWhoMayDownload) {
  v1::Session s = Assigned();
  const Caller other_customer{"cust-2", Role::kCustomer};
  const Caller other_agent{"agent-2", Role::kAgent};
  EXPECT_TRUE(sessions_->CheckUpload(kCustomer, s.session_id()).ok());
  EXPECT_TRUE(sessions_->CheckUpload(kAgent, s.session_id()).ok());
  EXPECT_EQ(sessions_->CheckUpload(other_customer, s.session_id()), NotFound());
  EXPECT_EQ(sessions_->CheckUpload(other_agent, s.session_id()), NotFound());
  EXPECT_TRUE(sessions_->CheckDownload(kCustomer, s.session_id()).ok());
  EXPECT_TRUE(sessions_->CheckDownload(kAgent, s.session_id()).ok());
  EXPECT_TRUE(sessions_->CheckDownload(kSupervisor, s.session_id()).ok());
  EXPECT_EQ(sessions_->CheckDownload(other_customer, s.session_id()), NotFound());
  EXPECT_EQ(sessions_->CheckDownload(other_agent, s.session_id()), NotFound());
  EXPECT_EQ(sessions_->CheckDownload(kCustomer, "no-such-session"), NotFound());
  // After the session closes: nobody uploads, its participants still download.
  ASSERT_TRUE(sessions_->Close(kCustomer, s.session_id(), v1::CLOSE_REASON_UNSPECIFIED).ok());
  EXPECT_EQ(sessions_->CheckUpload(kCustomer, s.session_id()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sessions_->CheckDownload(kAgent, s.session_id()).ok());
  EXPECT_TRUE(sessions_->CheckDownload(kCustomer, s.session_id()).ok());
  EXPECT_EQ(sessions_->CheckDownload(other_customer, s.session_id()), NotFound());
  // A CLOSED session's record changes without an event on its stream.
  const int64_t sequence = Get(s.session_id()).last_sequence();
  ASSERT_TRUE(sessions_->WriteAttachment(Uploaded(s.session_id(), kAgent, "att_1", "up-1",
                                                  v1::ATTACHMENT_STATE_DELETED))
                  .ok());
  EXPECT_EQ(Get(s.session_id()).last_sequence(), sequence);
  EXPECT_EQ(Count("sessions.attachment_changed"), 1);
}

TEST_F(SessionsTest, AMessageCarriesTheSendersOwnFilesOfTheSession) {
  v1::Session s = NewChat();
  v1::Session other = NewChat("cust-2");
  ASSERT_TRUE(sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_1", "up-1"))
                  .ok());
  ASSERT_TRUE(sessions_->WriteAttachment(Uploaded(s.session_id(), kCustomer, "att_2", "up-2",
                                                  v1::ATTACHMENT_STATE_REJECTED))
                  .ok());
  ASSERT_TRUE(sessions_->WriteAttachment(
                  Uploaded(other.session_id(), {"cust-2", Role::kCustomer}, "att_3", "up-3"))
                  .ok());
  v1::NewMessage message;
  message.add_attachment_ids("att_1");
  absl::StatusOr<Sessions::Sent> sent =
      sessions_->SendMessage(kCustomer, s.session_id(), "k1", message);
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_EQ(sent->message.attachments_size(), 1);
  EXPECT_EQ(sent->message.attachments(0).attachment_id(), "att_1");
  EXPECT_EQ(sent->message.attachments(0).file_name(), "screenshot.png");
  EXPECT_EQ(sent->message.attachments(0).state(), v1::ATTACHMENT_STATE_PENDING_SCAN);
  // The retry is the same message.
  sent = sessions_->SendMessage(kCustomer, s.session_id(), "k1", message);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(sent->replayed);
  for (const char* id : {"att_2", "att_3", "att_404"}) {
    v1::NewMessage bad;
    bad.add_attachment_ids(id);
    absl::Status status = sessions_->SendMessage(kCustomer, s.session_id(), absl::StrCat("k-", id), bad)
                              .status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_TRUE(absl::StrContains(status.message(), "message.attachment_ids[0]")) << status;
  }
  v1::NewMessage many;
  for (int i = 0; i < 11; ++i) many.add_attachment_ids(absl::StrCat("att_x", i));
  EXPECT_TRUE(absl::StrContains(
      sessions_->SendMessage(kCustomer, s.session_id(), "k-many", many).status().message(),
      "at most 10"));
}

}  // namespace
}  // namespace switchboard::sessions
