#include "services/feedback/feedback.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "libs/limits/retry_after.h"
#include "libs/storage/commit_gate.h"
#include "gtest/gtest.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/feedback/sqlite_store.h"

namespace switchboard::feedback {
namespace {

using auth::Role;
using common::v1::CATEGORY_GENERAL;
using common::v1::CATEGORY_WITHDRAWAL;
using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;

// Sessions as a map; can be taken down.
class FakeSessions : public SessionsPort {
 public:
  absl::StatusOr<SessionInfo> GetSession(const std::string& session_id,
                                         absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    last_deadline_ = deadline;
    if (down_) return absl::UnavailableError("sessions down");
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return absl::NotFoundError("no such session");
    return it->second;
  }
  absl::Status CloseRated(const std::string& session_id, absl::Time) override {
    absl::MutexLock lock(&mu_);
    closed_.push_back(session_id);
    if (down_) return absl::UnavailableError("sessions down");
    return absl::OkStatus();
  }
  void Put(SessionInfo info) {
    absl::MutexLock lock(&mu_);
    sessions_[info.session_id] = std::move(info);
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  std::vector<std::string> closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  absl::Time last_deadline() {
    absl::MutexLock lock(&mu_);
    return last_deadline_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, SessionInfo> sessions_;
  std::vector<std::string> closed_;
  bool down_ = false;
  absl::Time last_deadline_;
};

// Records routing calls; can be taken down.
class FakeRouting : public RoutingPort {
 public:
  absl::Status EnqueueComplaint(const v1::Complaint& complaint) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("routing down");
    enqueued_.push_back(complaint.complaint_id());
    return absl::OkStatus();
  }
  absl::Status CancelComplaint(const std::string& complaint_id) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("routing down");
    cancelled_.push_back(complaint_id);
    return absl::OkStatus();
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  std::vector<std::string> enqueued() {
    absl::MutexLock lock(&mu_);
    return enqueued_;
  }
  std::vector<std::string> cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> enqueued_;
  std::vector<std::string> cancelled_;
  bool down_ = false;
};

SessionInfo Resolved(const std::string& id, const std::string& customer,
                     const std::string& agent, absl::Time resolved_at) {
  SessionInfo s;
  s.session_id = id;
  s.customer_id = customer;
  s.agent_id = agent;
  s.channel = CHANNEL_CHAT;
  s.category = CATEGORY_WITHDRAWAL;
  s.resolved = true;
  s.open_resolved = true;
  s.resolved_at = resolved_at;
  return s;
}

v1::SubmitFeedbackRequest Rating(const std::string& session, int speed, int prof, int res,
                                 int overall, const std::string& comment = "") {
  v1::SubmitFeedbackRequest r;
  r.set_session_id(session);
  r.mutable_ratings()->set_response_speed(speed);
  r.mutable_ratings()->set_professionalism(prof);
  r.mutable_ratings()->set_problem_resolution(res);
  r.set_overall_satisfaction(overall);
  r.set_comment(comment);
  return r;
}

// The logic over the real SQLite store, fake peers and a fake clock.
class FeedbackTest : public ::testing::Test {
 protected:
  FeedbackTest() : path_(storage::MakeTempDir() + "/feedback.db") {
    db_ = *storage::Database::Open({path_});
    EXPECT_TRUE(db_->Migrate(FeedbackMigrations()).ok());
    gate_ = std::make_unique<storage::CommitGate>(db_.get());
    storage::GroupCommitter::Options committer_options;
    committer_options.max_queue = kMaxQueue;
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get(), committer_options);
    store_ = std::make_unique<SqliteFeedbackStore>(committer_.get(), path_,
                                                   "switchboard.feedback.v1", nullptr);
    metrics_ = std::make_unique<FeedbackMetrics>(registry_);
    feedback_ = std::make_unique<Feedback>(store_.get(), &sessions_, &routing_, &clock_,
                                           metrics_.get(), FeedbackOptions(),
                                           [this] { ++kicks_; });
    EXPECT_TRUE(feedback_->Load().ok());
  }
  ~FeedbackTest() override { gate_->Open(); }

  // Client writes the store admits while others wait.
  static constexpr int kMaxQueue = 2;

  absl::StatusOr<v1::SubmitFeedbackResponse> Submit(const std::string& customer,
                                                    const v1::SubmitFeedbackRequest& r) {
    return feedback_->SubmitFeedback({Role::kCustomer, customer}, r, absl::InfiniteFuture());
  }

  absl::StatusOr<v1::FileComplaintResponse> File(const std::string& customer,
                                                 const std::string& session,
                                                 const std::string& request_id = "") {
    v1::FileComplaintRequest r;
    r.set_session_id(session);
    r.set_reason(v1::COMPLAINT_REASON_AGENT_CONDUCT);
    r.set_description("The agent was rude.");
    r.set_request_id(request_id);
    return feedback_->FileComplaint({Role::kCustomer, customer}, r, absl::InfiniteFuture());
  }

  absl::StatusOr<v1::UpdateComplaintResponse> Update(v1::UpdateComplaintRequest r,
                                                     const std::string& sup = "sup-1") {
    return feedback_->UpdateComplaint({Role::kSupervisor, sup}, r);
  }

  int64_t OutboxRows(absl::string_view type) {
    int64_t rows = -1;
    EXPECT_TRUE(committer_
                    ->Commit([&](storage::Database& db) {
                      auto count = db.Prepare("SELECT COUNT(*) FROM outbox WHERE type = ?");
                      if (!count.ok()) return count.status();
                      count->Bind(1, type);
                      if (absl::StatusOr<bool> row = count->Step(); !row.ok()) {
                        return row.status();
                      }
                      rows = count->ColumnInt(0);
                      count->Reset();
                      return absl::OkStatus();
                    })
                    .ok());
    return rows;
  }

  std::string path_;
  FakeClock clock_;
  FakeSessions sessions_;
  FakeRouting routing_;
  prometheus::Registry registry_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::CommitGate> gate_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteFeedbackStore> store_;
  std::unique_ptr<FeedbackMetrics> metrics_;
  std::unique_ptr<Feedback> feedback_;
  int kicks_ = 0;
};

// A call running on a thread of its own, as a second client would make it.
template <typename T>
class Background {
 public:
  explicit Background(std::function<T()> call)
      : thread_([this, call = std::move(call)] {
          result_.emplace(call());
          done_.Notify();
        }) {}
  ~Background() { thread_.join(); }
  bool done() const { return done_.HasBeenNotified(); }
  T& result() {
    done_.WaitForNotification();
    return *result_;
  }

 private:
  std::optional<T> result_;
  absl::Notification done_;
  std::thread thread_;
};

// What the first attempt and the retry of one client write got.
template <typename T>
struct Attempts {
  T first;
  T retry;
};

// Durable retries: a client sends `call`, its commit is held at the gate
// (queued, not yet on disk), and the client retries. The retry must not be
// answered before the first commit ends; with `fail_first` that commit then
// fails, and the retry must not be answered before its own commit either.
class FeedbackRetryTest : public FeedbackTest {
 protected:
  template <typename T>
  Attempts<T> RetryWhileTheFirstIsHeld(std::function<T()> call, bool fail_first) {
    gate_->Close();
    Background<T> first(call);
    EXPECT_TRUE(gate_->AwaitHeld(1));
    Background<T> retry(call);
    EXPECT_TRUE(WaitForQueuedWrites(1));
    EXPECT_FALSE(retry.done()) << "answered while the first write is not durable";
    if (fail_first) {
      gate_->FailHeld();
      first.result();
      EXPECT_TRUE(gate_->AwaitHeld(1)) << "the retry wrote nothing itself";
      EXPECT_FALSE(retry.done()) << "answered before its own write is durable";
    }
    gate_->Open();
    return {first.result(), retry.result()};
  }

  bool WaitForQueuedWrites(int count) {
    const absl::Time limit = absl::Now() + absl::Seconds(30);
    while (committer_->queued() < count && absl::Now() < limit) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    return committer_->queued() >= count;
  }
};

TEST_F(FeedbackRetryTest, ARetriedRatingIsAnsweredOnceTheFirstIsDurable) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  v1::SubmitFeedbackRequest rating = Rating("s-1", 5, 5, 4, 5);
  rating.set_request_id("rate-1");
  auto attempts = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::SubmitFeedbackResponse>>(
      [&] { return Submit("cust-1", rating); }, /*fail_first=*/false);
  ASSERT_TRUE(attempts.first.ok()) << attempts.first.status();
  ASSERT_TRUE(attempts.retry.ok()) << attempts.retry.status();
  EXPECT_FALSE(attempts.first->replayed());
  EXPECT_TRUE(attempts.retry->replayed());
  EXPECT_EQ(attempts.retry->feedback().feedback_id(), attempts.first->feedback().feedback_id());
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 1);
}

TEST_F(FeedbackRetryTest, ARetriedRatingWhoseFirstCommitFailedIsStoredByTheRetry) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  v1::SubmitFeedbackRequest rating = Rating("s-1", 5, 5, 4, 5);
  rating.set_request_id("rate-1");
  auto attempts = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::SubmitFeedbackResponse>>(
      [&] { return Submit("cust-1", rating); }, /*fail_first=*/true);
  EXPECT_FALSE(attempts.first.ok());
  ASSERT_TRUE(attempts.retry.ok()) << attempts.retry.status();
  EXPECT_FALSE(attempts.retry->replayed()) << "nothing of the first attempt was stored";
  v1::GetFeedbackRequest get;
  get.set_session_id("s-1");
  auto stored = feedback_->GetFeedback({Role::kCustomer, "cust-1"}, get);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->feedback().feedback_id(), attempts.retry->feedback().feedback_id());
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 1);
}

TEST_F(FeedbackRetryTest, ARetriedComplaintIsAnsweredOnceTheFirstIsDurableOrFiledByTheRetry) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  auto held = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::FileComplaintResponse>>(
      [&] { return File("cust-1", "s-1", "complain-1"); }, /*fail_first=*/false);
  ASSERT_TRUE(held.first.ok() && held.retry.ok());
  EXPECT_TRUE(held.retry->replayed());
  EXPECT_EQ(held.retry->complaint().complaint_id(), held.first->complaint().complaint_id());

  auto failed = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::FileComplaintResponse>>(
      [&] { return File("cust-1", "s-1", "complain-2"); }, /*fail_first=*/true);
  EXPECT_FALSE(failed.first.ok());
  ASSERT_TRUE(failed.retry.ok()) << failed.retry.status();
  EXPECT_FALSE(failed.retry->replayed());
  EXPECT_EQ(OutboxRows("feedback.complaint_filed"), 2);
}

TEST_F(FeedbackRetryTest, ARetriedComplaintUpdateIsAnsweredOnceTheFirstIsDurableOrAppliedByTheRetry) {
  auto filed = File("cust-1", "", "complain-1");
  ASSERT_TRUE(filed.ok()) << filed.status();
  v1::UpdateComplaintRequest note;
  note.set_complaint_id(filed->complaint().complaint_id());
  note.set_note("called the customer back");
  note.set_request_id("note-1");
  auto held = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::UpdateComplaintResponse>>(
      [&] { return Update(note); }, /*fail_first=*/false);
  ASSERT_TRUE(held.first.ok() && held.retry.ok());
  EXPECT_EQ(held.retry->complaint().notes_size(), 1) << "the note was added twice";

  note.set_note("sent the refund details");
  note.set_request_id("note-2");
  auto failed = RetryWhileTheFirstIsHeld<absl::StatusOr<v1::UpdateComplaintResponse>>(
      [&] { return Update(note); }, /*fail_first=*/true);
  EXPECT_FALSE(failed.first.ok());
  ASSERT_TRUE(failed.retry.ok()) << failed.retry.status();
  EXPECT_EQ(failed.retry->complaint().notes_size(), 2);
  EXPECT_EQ(OutboxRows("feedback.complaint_updated"), 2);
}

TEST_F(FeedbackTest, AFullWriteQueueRefusesClientWritesBeforeAnythingIsDecided) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  gate_->Close();
  // One write is being committed, kMaxQueue more wait behind it.
  for (int i = 0; i <= kMaxQueue; ++i) {
    committer_->Submit([](storage::Database&) { return absl::OkStatus(); },
                       [](absl::Status) {});
    if (i == 0) ASSERT_TRUE(gate_->AwaitHeld(1));
  }
  sessions_.set_down(true);  // Asking sessions would fail differently.
  auto rating = Submit("cust-1", Rating("s-1", 5, 5, 5, 5));
  EXPECT_EQ(rating.status().code(), absl::StatusCode::kResourceExhausted) << rating.status();
  EXPECT_EQ(limits::RetryAfterSeconds(rating.status()), 1);
  auto complaint = File("cust-1", "s-1", "c-1");
  EXPECT_EQ(complaint.status().code(), absl::StatusCode::kResourceExhausted);
  v1::UpdateComplaintRequest update;
  update.set_complaint_id("any");
  update.set_note("a note");
  EXPECT_EQ(Update(update).status().code(), absl::StatusCode::kResourceExhausted);
  gate_->Open();
  sessions_.set_down(false);
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (committer_->queued() > 0 && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(2));
  auto later = Submit("cust-1", Rating("s-1", 5, 5, 5, 5));
  EXPECT_TRUE(later.ok()) << later.status();
}

TEST_F(FeedbackTest, RatesAResolvedSessionOnceAndClosesIt) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now() - absl::Minutes(10)));
  auto first = Submit("cust-1", Rating("s-1", 5, 4, 3, 4, "thanks"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed());
  const v1::Feedback& f = first->feedback();
  EXPECT_FALSE(f.feedback_id().empty());
  EXPECT_EQ(f.customer_id(), "cust-1");
  EXPECT_EQ(f.agent_id(), "ana");
  EXPECT_EQ(f.channel(), CHANNEL_CHAT);
  EXPECT_EQ(f.category(), CATEGORY_WITHDRAWAL);
  EXPECT_EQ(f.ratings().professionalism(), 4);
  EXPECT_EQ(f.submitted_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(f.session_resolved_at().seconds(),
            absl::ToUnixSeconds(clock_.Now() - absl::Minutes(10)));
  EXPECT_EQ(sessions_.closed(), std::vector<std::string>{"s-1"});
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 1);
  EXPECT_EQ(metrics_->overall_satisfaction->Collect().histogram.sample_count, 1u);

  // A retry (same content, no request id) gets the first result.
  auto retry = Submit("cust-1", Rating("s-1", 5, 4, 3, 4, "thanks"));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->replayed());
  EXPECT_EQ(retry->feedback().feedback_id(), f.feedback_id());
  // A different rating is refused; another customer sees nothing.
  EXPECT_EQ(Submit("cust-1", Rating("s-1", 1, 1, 1, 1)).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Submit("cust-2", Rating("s-1", 5, 4, 3, 4, "thanks")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 1);
  EXPECT_EQ(sessions_.closed().size(), 1u);

  // A retry succeeds even while sessions is down: it needs no check.
  sessions_.set_down(true);
  EXPECT_TRUE(Submit("cust-1", Rating("s-1", 5, 4, 3, 4, "thanks")).ok());
}

TEST_F(FeedbackTest, SameRequestIdReplaysEvenIfTheContentDiffers) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  v1::SubmitFeedbackRequest r = Rating("s-1", 5, 5, 5, 5);
  r.set_request_id("req-1");
  ASSERT_TRUE(Submit("cust-1", r).ok());
  r.set_overall_satisfaction(1);
  auto replay = Submit("cust-1", r);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->replayed());
  EXPECT_EQ(replay->feedback().overall_satisfaction(), 5);
  r.set_request_id("req-2");
  EXPECT_EQ(Submit("cust-1", r).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(FeedbackTest, RefusesWhatSessionsDoesNotConfirm) {
  SessionInfo open = Resolved("s-open", "cust-1", "ana", absl::InfinitePast());
  open.resolved = false;
  open.open_resolved = false;
  sessions_.Put(open);
  sessions_.Put(Resolved("s-2", "cust-2", "ana", clock_.Now()));
  EXPECT_EQ(Submit("cust-1", Rating("s-open", 5, 5, 5, 5)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Submit("cust-1", Rating("s-unknown", 5, 5, 5, 5)).status().code(),
            absl::StatusCode::kNotFound);
  // Another customer's session looks like a missing one.
  auto other = Submit("cust-1", Rating("s-2", 5, 5, 5, 5));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.status().message(), "session_id: no such session");

  sessions_.set_down(true);
  auto down = Submit("cust-2", Rating("s-2", 5, 5, 5, 5));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  sessions_.set_down(false);
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 0);
  EXPECT_EQ(metrics_->sessions_unavailable->Value(), 1);
  // Nothing was stored: the retry now goes through.
  EXPECT_TRUE(Submit("cust-2", Rating("s-2", 5, 5, 5, 5)).ok());
}

TEST_F(FeedbackTest, AcceptsAClosedSessionThatWasResolvedWithoutClosingIt) {
  SessionInfo closed = Resolved("s-1", "cust-1", "", clock_.Now());
  closed.open_resolved = false;
  sessions_.Put(closed);
  auto r = Submit("cust-1", Rating("s-1", 3, 3, 3, 3));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->feedback().agent_id(), "");
  EXPECT_TRUE(sessions_.closed().empty());
}

TEST_F(FeedbackTest, ClosingFailureDoesNotFailTheRating) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  // GetSession answers, CloseSession fails: the rating stands.
  class CloseFails : public FakeSessions {
   public:
    absl::Status CloseRated(const std::string&, absl::Time) override {
      return absl::UnavailableError("down");
    }
  } sessions;
  sessions.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  Feedback feedback(store_.get(), &sessions, &routing_, &clock_, metrics_.get(),
                    FeedbackOptions());
  EXPECT_TRUE(feedback
                  .SubmitFeedback({Role::kCustomer, "cust-1"}, Rating("s-1", 4, 4, 4, 4),
                                  absl::InfiniteFuture())
                  .ok());
}

TEST_F(FeedbackTest, RejectsBadRatingsNamingTheField) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  struct Case {
    v1::SubmitFeedbackRequest request;
    std::string field;
  };
  v1::SubmitFeedbackRequest bad_utf8 = Rating("s-1", 5, 5, 5, 5, std::string("caf\xc3", 4));
  v1::SubmitFeedbackRequest bad_key = Rating("s-1", 5, 5, 5, 5);
  bad_key.set_request_id("has space");
  const std::vector<Case> cases = {
      {Rating("s-1", 0, 5, 5, 5), "ratings.response_speed"},
      {Rating("s-1", 5, 6, 5, 5), "ratings.professionalism"},
      {Rating("s-1", 5, 5, -1, 5), "ratings.problem_resolution"},
      {Rating("s-1", 5, 5, 5, 0), "overall_satisfaction"},
      {Rating("s-1", 5, 5, 5, 5, std::string(2001, 'x')), "comment"},
      {bad_utf8, "comment"},
      {Rating("", 5, 5, 5, 5), "session_id"},
      {bad_key, "request_id"},
  };
  for (const Case& c : cases) {
    absl::Status s = Submit("cust-1", c.request).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_TRUE(absl::StartsWith(s.message(), c.field)) << s.message();
  }
  // 2,000 characters (not bytes) is the limit.
  std::string chinese;
  for (int i = 0; i < 2000; ++i) chinese += "好";
  EXPECT_TRUE(Submit("cust-1", Rating("s-1", 5, 5, 5, 5, chinese)).ok());
  EXPECT_EQ(OutboxRows("feedback.feedback_submitted"), 1);
}

TEST_F(FeedbackTest, ComplaintLifecycleReachesRoutingEvenIfItWasDown) {
  sessions_.Put(Resolved("s-1", "cust-1", "ana", clock_.Now()));
  routing_.set_down(true);
  auto filed = File("cust-1", "s-1", "file-1");
  ASSERT_TRUE(filed.ok()) << filed.status();
  const v1::Complaint& c = filed->complaint();
  EXPECT_EQ(c.state(), v1::COMPLAINT_STATE_OPEN);
  EXPECT_EQ(c.agent_id(), "ana");
  EXPECT_EQ(c.category(), CATEGORY_WITHDRAWAL);
  EXPECT_EQ(c.channel(), CHANNEL_CHAT);
  EXPECT_EQ(kicks_, 1);
  EXPECT_EQ(metrics_->complaints(v1::COMPLAINT_STATE_OPEN).Value(), 1);

  // Routing is down: the complaint is committed and stays owed.
  EXPECT_EQ(*feedback_->SyncRouting(), 0);
  EXPECT_EQ(metrics_->routing_pending->Value(), 1);
  routing_.set_down(false);
  EXPECT_EQ(*feedback_->SyncRouting(), 1);
  EXPECT_EQ(routing_.enqueued(), std::vector<std::string>{c.complaint_id()});
  EXPECT_EQ(*feedback_->SyncRouting(), 0);

  // A retried FileComplaint returns the first complaint.
  auto replay = File("cust-1", "s-1", "file-1");
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->replayed());
  EXPECT_EQ(replay->complaint().complaint_id(), c.complaint_id());
  EXPECT_EQ(OutboxRows("feedback.complaint_filed"), 1);

  clock_.Advance(absl::Minutes(5));
  v1::UpdateComplaintRequest ack;
  ack.set_complaint_id(c.complaint_id());
  ack.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
  ack.set_expected_state(v1::COMPLAINT_STATE_OPEN);
  ack.set_note("calling the customer");
  ack.set_request_id("ack-1");
  auto acked = Update(ack);
  ASSERT_TRUE(acked.ok()) << acked.status();
  EXPECT_EQ(acked->complaint().state(), v1::COMPLAINT_STATE_ACKNOWLEDGED);
  EXPECT_EQ(acked->complaint().assignee_id(), "sup-1");
  EXPECT_EQ(acked->complaint().acknowledged_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  ASSERT_EQ(acked->complaint().notes_size(), 1);
  EXPECT_EQ(acked->complaint().notes(0).author_id(), "sup-1");
  EXPECT_EQ(metrics_->complaints(v1::COMPLAINT_STATE_OPEN).Value(), 0);
  EXPECT_EQ(metrics_->complaints(v1::COMPLAINT_STATE_ACKNOWLEDGED).Value(), 1);
  EXPECT_EQ(*feedback_->SyncRouting(), 1);
  EXPECT_EQ(routing_.cancelled(), std::vector<std::string>{c.complaint_id()});

  // The same request again is a replay: no second note, no event.
  auto again = Update(ack);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->complaint().notes_size(), 1);
  EXPECT_EQ(OutboxRows("feedback.complaint_updated"), 1);

  // Another supervisor, working from a stale read, is told to re-read.
  v1::UpdateComplaintRequest stale = ack;
  stale.set_request_id("ack-2");
  EXPECT_EQ(Update(stale, "sup-2").status().code(), absl::StatusCode::kAborted);

  v1::UpdateComplaintRequest resolve;
  resolve.set_complaint_id(c.complaint_id());
  resolve.set_state(v1::COMPLAINT_STATE_RESOLVED);
  EXPECT_EQ(Update(resolve).status().code(), absl::StatusCode::kInvalidArgument);
  resolve.set_resolution("We apologised and coached the agent.");
  auto resolved = Update(resolve);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->complaint().state(), v1::COMPLAINT_STATE_RESOLVED);
  EXPECT_TRUE(resolved->complaint().has_resolved_at());

  // Final: only notes.
  EXPECT_EQ(Update(resolve).status().code(), absl::StatusCode::kFailedPrecondition);
  v1::UpdateComplaintRequest reassign;
  reassign.set_complaint_id(c.complaint_id());
  reassign.set_assignee_id("sup-9");
  EXPECT_EQ(Update(reassign).status().code(), absl::StatusCode::kFailedPrecondition);
  v1::UpdateComplaintRequest note;
  note.set_complaint_id(c.complaint_id());
  note.set_note("customer satisfied");
  auto noted = Update(note);
  ASSERT_TRUE(noted.ok());
  EXPECT_EQ(noted->complaint().notes_size(), 2);
  EXPECT_EQ(OutboxRows("feedback.complaint_updated"), 3);

  // The customer sees the outcome but not notes or assignee.
  v1::GetComplaintRequest get;
  get.set_complaint_id(c.complaint_id());
  auto seen = feedback_->GetComplaint({Role::kCustomer, "cust-1"}, get);
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->complaint().notes_size(), 0);
  EXPECT_EQ(seen->complaint().assignee_id(), "");
  EXPECT_EQ(seen->complaint().resolution(), "We apologised and coached the agent.");
  EXPECT_EQ(feedback_->GetComplaint({Role::kCustomer, "cust-2"}, get).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FeedbackTest, WrongTransitionsAreRefused) {
  auto filed = File("cust-1", "");
  ASSERT_TRUE(filed.ok()) << filed.status();
  EXPECT_EQ(filed->complaint().category(), CATEGORY_GENERAL);
  EXPECT_EQ(filed->complaint().channel(), common::v1::CHANNEL_UNSPECIFIED);
  const std::string id = filed->complaint().complaint_id();

  v1::UpdateComplaintRequest skip;
  skip.set_complaint_id(id);
  skip.set_state(v1::COMPLAINT_STATE_RESOLVED);
  skip.set_resolution("done");
  EXPECT_EQ(Update(skip).status().code(), absl::StatusCode::kFailedPrecondition);

  v1::UpdateComplaintRequest reopen;
  reopen.set_complaint_id(id);
  reopen.set_state(v1::COMPLAINT_STATE_OPEN);
  EXPECT_EQ(Update(reopen).status().code(), absl::StatusCode::kInvalidArgument);

  v1::UpdateComplaintRequest nothing;
  nothing.set_complaint_id(id);
  EXPECT_EQ(Update(nothing).status().code(), absl::StatusCode::kInvalidArgument);

  v1::UpdateComplaintRequest early_resolution;
  early_resolution.set_complaint_id(id);
  early_resolution.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
  early_resolution.set_resolution("too early");
  EXPECT_EQ(Update(early_resolution).status().code(), absl::StatusCode::kInvalidArgument);

  v1::UpdateComplaintRequest ack;
  ack.set_complaint_id(id);
  ack.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
  ack.set_assignee_id("sup-7");
  auto acked = Update(ack);
  ASSERT_TRUE(acked.ok());
  EXPECT_EQ(acked->complaint().assignee_id(), "sup-7");
  ack.clear_assignee_id();
  EXPECT_EQ(Update(ack).status().code(), absl::StatusCode::kFailedPrecondition);

  v1::UpdateComplaintRequest unknown;
  unknown.set_complaint_id("nope");
  unknown.set_note("x");
  EXPECT_EQ(Update(unknown).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OutboxRows("feedback.complaint_updated"), 1);
}

TEST_F(FeedbackTest, ComplaintChecksTheSessionAndTheCustomersOpenComplaints) {
  sessions_.Put(Resolved("s-2", "cust-2", "ana", clock_.Now()));
  EXPECT_EQ(File("cust-1", "s-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(File("cust-1", "s-unknown").status().code(), absl::StatusCode::kNotFound);
  sessions_.set_down(true);
  EXPECT_EQ(File("cust-2", "s-2").status().code(), absl::StatusCode::kUnavailable);
  sessions_.set_down(false);

  for (int i = 0; i < 10; ++i) ASSERT_TRUE(File("cust-1", "").ok());
  EXPECT_EQ(File("cust-1", "").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(File("cust-2", "").ok());

  // A customer files for themselves only; staff must name the customer.
  v1::FileComplaintRequest r;
  r.set_reason(v1::COMPLAINT_REASON_OTHER);
  r.set_description("x");
  r.set_customer_id("cust-2");
  EXPECT_EQ(feedback_->FileComplaint({Role::kCustomer, "cust-3"}, r, absl::InfiniteFuture())
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  r.clear_customer_id();
  EXPECT_EQ(feedback_->FileComplaint({Role::kSupervisor, "sup"}, r, absl::InfiniteFuture())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  r.set_reason(v1::COMPLAINT_REASON_UNSPECIFIED);
  r.set_customer_id("cust-3");
  EXPECT_EQ(feedback_->FileComplaint({Role::kService, "bot"}, r, absl::InfiniteFuture())
                .status()
                .message(),
            "reason: must be set to a known reason");
  r.set_reason(v1::COMPLAINT_REASON_OTHER);
  r.set_description("");
  EXPECT_EQ(feedback_->FileComplaint({Role::kService, "bot"}, r, absl::InfiniteFuture())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  r.set_description(std::string(4001, 'x'));
  EXPECT_EQ(feedback_->FileComplaint({Role::kService, "bot"}, r, absl::InfiniteFuture())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FeedbackTest, ListsNewestFirstInPagesWithinTheCallersRights) {
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("s-", i);
    sessions_.Put(Resolved(id, i < 4 ? "cust-1" : "cust-2", i % 2 == 0 ? "ana" : "bob",
                           clock_.Now()));
    ASSERT_TRUE(Submit(i < 4 ? "cust-1" : "cust-2", Rating(id, 3, 3, 3, i + 1)).ok());
    clock_.Advance(absl::Seconds(1));
  }
  v1::ListFeedbackRequest list;
  list.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto r = feedback_->ListFeedback({Role::kSupervisor, "sup"}, list);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& f : r->feedbacks()) seen.push_back(f.session_id());
    if (r->next_page_token().empty()) break;
    list.set_page_token(r->next_page_token());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"s-4", "s-3", "s-2", "s-1", "s-0"}));

  v1::ListFeedbackRequest mine;
  auto customer = feedback_->ListFeedback({Role::kCustomer, "cust-2"}, mine);
  ASSERT_TRUE(customer.ok());
  ASSERT_EQ(customer->feedbacks_size(), 1);
  auto agent = feedback_->ListFeedback({Role::kAgent, "bob"}, mine);
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->feedbacks_size(), 2);
  mine.set_agent_id("ana");
  EXPECT_EQ(feedback_->ListFeedback({Role::kAgent, "bob"}, mine).status().code(),
            absl::StatusCode::kPermissionDenied);
  mine.set_max_overall_satisfaction(2);
  auto unhappy = feedback_->ListFeedback({Role::kSupervisor, "sup"}, mine);
  ASSERT_TRUE(unhappy.ok());
  ASSERT_EQ(unhappy->feedbacks_size(), 1);
  EXPECT_EQ(unhappy->feedbacks(0).session_id(), "s-0");

  v1::ListFeedbackRequest bad;
  bad.set_page_token("garbage!");
  EXPECT_EQ(feedback_->ListFeedback({Role::kSupervisor, "sup"}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Agents read feedback on their own sessions only.
  v1::GetFeedbackRequest get;
  get.set_session_id("s-0");
  EXPECT_TRUE(feedback_->GetFeedback({Role::kAgent, "ana"}, get).ok());
  EXPECT_EQ(feedback_->GetFeedback({Role::kAgent, "bob"}, get).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(feedback_->GetFeedback({Role::kCustomer, "cust-2"}, get).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FeedbackTest, SummaryAggregatesTheWindowByGroup) {
  const absl::Time start = clock_.Now();
  // ana: overall 5, 4, 2; bob: 1; the bot: 3 (email). One before the window.
  struct R {
    std::string agent;
    int overall;
    std::string comment;
  };
  const std::vector<R> ratings = {
      {"ana", 5, "great"}, {"ana", 4, ""}, {"ana", 2, "meh"}, {"bob", 1, ""}, {"", 3, ""}};
  SessionInfo early = Resolved("s-early", "cust-0", "ana", start - absl::Hours(2));
  sessions_.Put(early);
  clock_.Set(start - absl::Hours(1));
  ASSERT_TRUE(Submit("cust-0", Rating("s-early", 1, 1, 1, 1)).ok());
  clock_.Set(start);
  for (size_t i = 0; i < ratings.size(); ++i) {
    const std::string id = absl::StrCat("s-", i);
    SessionInfo s = Resolved(id, "cust-1", ratings[i].agent, start);
    if (ratings[i].agent.empty()) s.channel = CHANNEL_EMAIL;
    sessions_.Put(s);
    ASSERT_TRUE(Submit("cust-1", Rating(id, ratings[i].overall, 5, 4, ratings[i].overall,
                                        ratings[i].comment))
                    .ok());
    clock_.Advance(absl::Minutes(1));
  }
  ASSERT_TRUE(File("cust-1", "s-3").ok());  // about bob
  clock_.Advance(absl::Minutes(1));  // the window ends (exclusive) at now

  v1::GetSummaryRequest request;
  protoutil::ToTimestamp(start, request.mutable_start_time());
  request.set_group_by(v1::SUMMARY_GROUPING_AGENT);
  request.set_page_size(2);
  auto page1 = feedback_->GetSummary({Role::kSupervisor, "sup"}, request);
  ASSERT_TRUE(page1.ok()) << page1.status();
  const v1::FeedbackSummary& total = page1->total();
  EXPECT_EQ(total.feedback_count(), 5);
  EXPECT_DOUBLE_EQ(total.overall_satisfaction().mean(), 3.0);
  EXPECT_DOUBLE_EQ(total.professionalism().mean(), 5.0);
  EXPECT_EQ(std::vector<int64_t>(total.overall_satisfaction().distribution().begin(),
                                 total.overall_satisfaction().distribution().end()),
            (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_EQ(std::vector<int64_t>(total.problem_resolution().distribution().begin(),
                                 total.problem_resolution().distribution().end()),
            (std::vector<int64_t>{0, 0, 0, 5, 0}));
  EXPECT_DOUBLE_EQ(total.csat_share(), 0.4);
  EXPECT_EQ(total.comment_count(), 2);
  EXPECT_EQ(total.complaints_filed(), 1);
  EXPECT_EQ(page1->end_time().seconds(), absl::ToUnixSeconds(clock_.Now()));

  // Groups by agent id: "" (the bot), "ana", then "bob" on page 2.
  ASSERT_EQ(page1->groups_size(), 2);
  EXPECT_EQ(page1->groups(0).agent_id(), "");
  EXPECT_EQ(page1->groups(0).summary().feedback_count(), 1);
  EXPECT_EQ(page1->groups(1).agent_id(), "ana");
  EXPECT_EQ(page1->groups(1).summary().feedback_count(), 3);
  EXPECT_NEAR(page1->groups(1).summary().overall_satisfaction().mean(), 11.0 / 3, 1e-9);
  EXPECT_NEAR(page1->groups(1).summary().csat_share(), 2.0 / 3, 1e-9);
  ASSERT_FALSE(page1->next_page_token().empty());
  request.set_page_token(page1->next_page_token());
  auto page2 = feedback_->GetSummary({Role::kSupervisor, "sup"}, request);
  ASSERT_TRUE(page2.ok()) << page2.status();
  ASSERT_EQ(page2->groups_size(), 1);
  EXPECT_EQ(page2->groups(0).agent_id(), "bob");
  EXPECT_EQ(page2->groups(0).summary().feedback_count(), 1);
  EXPECT_EQ(page2->groups(0).summary().complaints_filed(), 1);
  EXPECT_TRUE(page2->next_page_token().empty());

  v1::GetSummaryRequest by_channel;
  protoutil::ToTimestamp(start, by_channel.mutable_start_time());
  by_channel.set_group_by(v1::SUMMARY_GROUPING_CHANNEL);
  auto channels = feedback_->GetSummary({Role::kService, "reports"}, by_channel);
  ASSERT_TRUE(channels.ok());
  ASSERT_EQ(channels->groups_size(), 2);
  EXPECT_EQ(channels->groups(0).channel(), CHANNEL_CHAT);
  EXPECT_EQ(channels->groups(0).summary().feedback_count(), 4);
  EXPECT_EQ(channels->groups(1).channel(), CHANNEL_EMAIL);

  // An agent reads their own figures only.
  v1::GetSummaryRequest mine;
  protoutil::ToTimestamp(start, mine.mutable_start_time());
  mine.set_agent_id("ana");
  auto ana = feedback_->GetSummary({Role::kAgent, "ana"}, mine);
  ASSERT_TRUE(ana.ok());
  EXPECT_EQ(ana->total().feedback_count(), 3);
  EXPECT_EQ(feedback_->GetSummary({Role::kAgent, "bob"}, mine).status().code(),
            absl::StatusCode::kPermissionDenied);
  mine.clear_agent_id();
  EXPECT_EQ(feedback_->GetSummary({Role::kAgent, "bob"}, mine).status().code(),
            absl::StatusCode::kPermissionDenied);

  // Windows: required, ordered, at most 366 days. An empty window is zeros.
  v1::GetSummaryRequest bad;
  EXPECT_EQ(feedback_->GetSummary({Role::kSupervisor, "s"}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  protoutil::ToTimestamp(start, bad.mutable_start_time());
  protoutil::ToTimestamp(start, bad.mutable_end_time());
  EXPECT_EQ(feedback_->GetSummary({Role::kSupervisor, "s"}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  protoutil::ToTimestamp(start + absl::Hours(24 * 367), bad.mutable_end_time());
  EXPECT_EQ(feedback_->GetSummary({Role::kSupervisor, "s"}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::GetSummaryRequest empty;
  protoutil::ToTimestamp(start - absl::Hours(100), empty.mutable_start_time());
  protoutil::ToTimestamp(start - absl::Hours(99), empty.mutable_end_time());
  auto zeros = feedback_->GetSummary({Role::kSupervisor, "s"}, empty);
  ASSERT_TRUE(zeros.ok());
  EXPECT_EQ(zeros->total().feedback_count(), 0);
  EXPECT_EQ(zeros->total().csat_share(), 0);
  EXPECT_EQ(zeros->total().response_speed().distribution_size(), 5);
}

}  // namespace
}  // namespace switchboard::feedback
