#include <atomic>
#include <functional>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/protoutil/time.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/store_backends.h"
#include "services/feedback/postgres_store.h"
#include "services/feedback/sqlite_store.h"

namespace switchboard::feedback {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

StoredFeedback Rating(const std::string& session, const std::string& agent, int overall,
                      absl::Time at) {
  StoredFeedback s;
  v1::Feedback& f = s.feedback;
  f.set_feedback_id("fb-" + session);
  f.set_session_id(session);
  f.set_customer_id("cust-1");
  f.set_agent_id(agent);
  f.set_channel(common::v1::CHANNEL_CHAT);
  f.set_category(common::v1::CATEGORY_DEPOSIT);
  f.mutable_ratings()->set_response_speed(overall);
  f.mutable_ratings()->set_professionalism(overall);
  f.mutable_ratings()->set_problem_resolution(overall);
  f.set_overall_satisfaction(overall);
  protoutil::ToTimestamp(at, f.mutable_submitted_at());
  protoutil::ToTimestamp(at - absl::Minutes(1), f.mutable_session_resolved_at());
  s.request_id = "req-" + session;
  return s;
}

events::v1::Event Event(const std::string& key) {
  events::v1::Event e;
  e.mutable_feedback_submitted()->set_session_id(key);
  EXPECT_TRUE(events::Seal(e, "feedback", key, kT0).ok());
  return e;
}

ComplaintRecord Complaint(const std::string& id, const std::string& customer,
                          const std::string& request_id, absl::Time at) {
  ComplaintRecord r;
  r.request_id = request_id;
  r.routing = RoutingAction::kEnqueue;
  v1::Complaint& c = r.complaint;
  c.set_complaint_id(id);
  c.set_customer_id(customer);
  c.set_category(common::v1::CATEGORY_GENERAL);
  c.set_reason(v1::COMPLAINT_REASON_OTHER);
  c.set_description("words");
  c.set_state(v1::COMPLAINT_STATE_OPEN);
  protoutil::ToTimestamp(at, c.mutable_filed_at());
  return r;
}

using testing::Backend;

constexpr char kTopic[] = "switchboard.feedback.v1";

// The same cases on each backend: a SQLite file in a temporary folder, and
// a fresh database on a real PostgreSQL.
class FeedbackStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  FeedbackStoreTest() : place_(testing::NewStorePlace(GetParam(), "feedback.db")) {
    Open();
  }

  // Opens the store (again, as after a restart).
  void Open() {
    store_.reset();
    sqlite_ = nullptr;
    committer_.reset();
    db_.reset();
    if (GetParam() == Backend::kPostgres) {
      auto migrated =
          storage::PostgresConnection::OpenMigrated(place_.uri, PostgresFeedbackMigrations());
      ASSERT_TRUE(migrated.ok()) << migrated.status();
      store_ = std::make_unique<PostgresFeedbackStore>(place_.uri, kTopic,
                                                       [this] { commits_.fetch_add(1); });
      return;
    }
    db_ = *storage::Database::Open({place_.path});
    ASSERT_TRUE(db_->Migrate(FeedbackMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    auto sqlite = std::make_unique<SqliteFeedbackStore>(committer_.get(), place_.path, kTopic,
                                                        [this] { commits_.fetch_add(1); });
    sqlite_ = sqlite.get();
    store_ = std::move(sqlite);
  }

  int64_t OutboxRows() { return testing::OutboxRows(place_); }

  const testing::StorePlace place_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<FeedbackStore> store_;
  SqliteFeedbackStore* sqlite_ = nullptr;  // store_, on SQLite
  std::atomic<int> commits_{0};
};

TEST_P(FeedbackStoreTest, OneRatingPerSessionEvenUnderConcurrentInserts) {
  std::atomic<int> inserted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      StoredFeedback f = Rating("s-1", "ana", 1 + i % 5, kT0);
      f.feedback.set_feedback_id(absl::StrCat("fb-", i));
      absl::StatusOr<FeedbackStore::Inserted> r = store_->InsertFeedback(f, Event("s-1"));
      ASSERT_TRUE(r.ok()) << r.status();
      if (r->inserted) inserted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(inserted.load(), 1);
  EXPECT_EQ(OutboxRows(), 1);
  // SQLite notifies the relay after every write of a rating; PostgreSQL
  // only after the one that appended an event.
  EXPECT_EQ(commits_.load(), GetParam() == Backend::kSqlite ? 8 : 1);

  auto stored = store_->GetFeedback("s-1");
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->request_id, "req-s-1");
  EXPECT_EQ((*stored)->feedback.session_resolved_at().seconds(),
            absl::ToUnixSeconds(kT0 - absl::Minutes(1)));
  EXPECT_FALSE(store_->GetFeedback("s-2")->has_value());
}

TEST_P(FeedbackStoreTest, EverythingSurvivesARestart) {
  ASSERT_TRUE(store_->InsertFeedback(Rating("s-1", "ana", 5, kT0), Event("s-1")).ok());
  auto filed = store_->InsertComplaint(Complaint("c-1", "cust-1", "r-1", kT0), 10, Event("c-1"));
  ASSERT_TRUE(filed.ok() && filed->inserted);
  Open();
  EXPECT_TRUE(store_->GetFeedback("s-1")->has_value());
  auto complaint = store_->GetComplaint("c-1");
  ASSERT_TRUE(complaint.ok() && complaint->has_value());
  EXPECT_EQ((*complaint)->routing, RoutingAction::kEnqueue);
  auto pending = store_->PendingRouting(10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  // An update that replaced the action meanwhile is not cleared.
  ASSERT_TRUE(store_->RoutingDone("c-1", RoutingAction::kCancel).ok());
  EXPECT_EQ(store_->PendingRouting(10)->size(), 1u);
  ASSERT_TRUE(store_->RoutingDone("c-1", RoutingAction::kEnqueue).ok());
  EXPECT_EQ(store_->PendingRouting(10)->size(), 0u);
  EXPECT_EQ(OutboxRows(), 2);
}

TEST_P(FeedbackStoreTest, ComplaintRequestIdsAndTheUnresolvedCap) {
  ASSERT_TRUE(store_->InsertComplaint(Complaint("c-1", "cust-1", "r-1", kT0), 2, Event("c-1"))
                  .ok());
  auto replay =
      store_->InsertComplaint(Complaint("c-2", "cust-1", "r-1", kT0), 2, Event("c-2"));
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->inserted);
  EXPECT_EQ(replay->record.complaint.complaint_id(), "c-1");
  // Another customer may use the same request id.
  EXPECT_TRUE(store_->InsertComplaint(Complaint("c-3", "cust-2", "r-1", kT0), 2, Event("c-3"))
                  ->inserted);
  EXPECT_TRUE(
      store_->InsertComplaint(Complaint("c-4", "cust-1", "", kT0), 2, Event("c-4"))->inserted);
  EXPECT_EQ(store_->InsertComplaint(Complaint("c-5", "cust-1", "", kT0), 2, Event("c-5"))
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  auto found = store_->FindComplaintByRequest("cust-2", "r-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->complaint.complaint_id(), "c-3");
  auto counts = store_->CountComplaintsByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[v1::COMPLAINT_STATE_OPEN], 3);
}

TEST_P(FeedbackStoreTest, UpdateIsReadModifyWriteAndRemembersRequestIds) {
  ASSERT_TRUE(store_->InsertComplaint(Complaint("c-1", "cust-1", "", kT0), 10, Event("c-1"))
                  .ok());
  int applied = 0;
  FeedbackStore::Mutation ack = [&](ComplaintRecord& r, bool seen)
      -> absl::StatusOr<std::optional<events::v1::Event>> {
    if (seen) return std::nullopt;
    ++applied;
    r.complaint.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
    r.routing = RoutingAction::kCancel;
    return Event("c-1");
  };
  auto first = store_->UpdateComplaint("c-1", "u-1", ack);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->complaint.state(), v1::COMPLAINT_STATE_ACKNOWLEDGED);
  auto second = store_->UpdateComplaint("c-1", "u-1", ack);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(applied, 1);
  EXPECT_EQ(OutboxRows(), 2);
  // A refused mutation writes nothing.
  auto refused = store_->UpdateComplaint(
      "c-1", "u-2", [](ComplaintRecord& r, bool) -> absl::StatusOr<std::optional<events::v1::Event>> {
        r.complaint.set_state(v1::COMPLAINT_STATE_RESOLVED);
        return absl::AbortedError("stale");
      });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ((*store_->GetComplaint("c-1"))->complaint.state(),
            v1::COMPLAINT_STATE_ACKNOWLEDGED);
  EXPECT_EQ(store_->UpdateComplaint("nope", "", ack).status().code(),
            absl::StatusCode::kNotFound);

  ComplaintFilter filter;
  filter.states = {v1::COMPLAINT_STATE_ACKNOWLEDGED};
  auto listed = store_->ListComplaints(filter, ListCursor(), 10);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
  filter.states = {v1::COMPLAINT_STATE_OPEN};
  EXPECT_EQ(store_->ListComplaints(filter, ListCursor(), 10)->size(), 0u);
}

TEST_P(FeedbackStoreTest, SummaryAggregatesTheWindowAndOnSqliteReadsOnlyCoveringIndexes) {
  for (int i = 0; i < 50; ++i) {
    StoredFeedback rating = Rating(absl::StrCat("s-", i), i % 2 ? "ana" : "bob", 1 + i % 5,
                                   kT0 + absl::Minutes(i));
    if (i % 3 == 0) rating.feedback.set_comment("fine");
    ASSERT_TRUE(store_->InsertFeedback(rating, Event("s")).ok());
  }
  SummaryQuery query;
  query.start = kT0;
  query.end = kT0 + absl::Minutes(10);
  auto page = store_->Summarize(query);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->total.feedback_count(), 10);
  EXPECT_DOUBLE_EQ(page->total.overall_satisfaction().mean(), 3.0);
  EXPECT_EQ(page->total.overall_satisfaction().distribution_size(), 5);
  EXPECT_EQ(page->total.overall_satisfaction().distribution(4), 2);  // scores 5: i = 4, 9
  EXPECT_DOUBLE_EQ(page->total.csat_share(), 0.4);                  // 4 or 5: i = 3, 4, 8, 9
  EXPECT_EQ(page->total.comment_count(), 4);                        // i = 0, 3, 6, 9
  SummaryQuery by_agent = query;
  by_agent.agent_id = "ana";
  EXPECT_EQ(store_->Summarize(by_agent)->total.feedback_count(), 5);

  if (sqlite_ == nullptr) return;  // EXPLAIN QUERY PLAN is SQLite's
  auto plan = sqlite_->ExplainSummary(query);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::cout << "summary plan (window):\n" << *plan;
  EXPECT_NE(plan->find("USING COVERING INDEX feedback_by_time"), std::string::npos) << *plan;
  plan = sqlite_->ExplainSummary(by_agent);
  ASSERT_TRUE(plan.ok());
  std::cout << "summary plan (window, agent):\n" << *plan;
  EXPECT_NE(plan->find("USING COVERING INDEX feedback_by_"), std::string::npos) << *plan;
  EXPECT_EQ(plan->find("SCAN feedback\n"), std::string::npos) << *plan;
}

// Groups come in key order, a page at a time, with the complaints of each
// key beside its ratings.
TEST_P(FeedbackStoreTest, SummaryGroupsByAgentAPageAtATime) {
  int i = 0;
  for (const char* agent : {"cy", "ana", "bob", "ana"}) {
    ASSERT_TRUE(store_
                    ->InsertFeedback(Rating(absl::StrCat("s-", i), agent, 2 + i, kT0 + absl::Minutes(i)),
                                     Event("s"))
                    .ok());
    ++i;
  }
  ComplaintRecord complaint = Complaint("c-1", "cust-1", "", kT0);
  complaint.complaint.set_agent_id("bob");
  ASSERT_TRUE(store_->InsertComplaint(complaint, 10, Event("c-1")).ok());
  SummaryQuery query;
  query.start = kT0;
  query.end = kT0 + absl::Hours(1);
  query.group_by = v1::SUMMARY_GROUPING_AGENT;
  query.page_size = 2;
  auto first = store_->Summarize(query);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->total.feedback_count(), 4);
  EXPECT_EQ(first->total.complaints_filed(), 1);
  ASSERT_EQ(first->groups.size(), 2u);
  EXPECT_EQ(first->groups[0].agent_id(), "ana");
  EXPECT_EQ(first->groups[0].summary().feedback_count(), 2);
  EXPECT_DOUBLE_EQ(first->groups[0].summary().overall_satisfaction().mean(), 4.0);  // 3, 5
  EXPECT_EQ(first->groups[1].agent_id(), "bob");
  EXPECT_EQ(first->groups[1].summary().complaints_filed(), 1);
  EXPECT_TRUE(first->more);
  EXPECT_EQ(first->last_key, "bob");
  query.after_set = true;
  query.after_key = first->last_key;
  auto second = store_->Summarize(query);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->groups.size(), 1u);
  EXPECT_EQ(second->groups[0].agent_id(), "cy");
  EXPECT_EQ(second->groups[0].summary().overall_satisfaction().distribution(1), 1);
  EXPECT_FALSE(second->more);
}

TEST_P(FeedbackStoreTest, ConcurrentComplaintsOfOneCustomerStopAtTheCap) {
  std::atomic<int> filed{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      const std::string id = absl::StrCat("c-", i);
      auto r = store_->InsertComplaint(Complaint(id, "cust-1", "", kT0), 3, Event(id));
      if (r.ok() && r->inserted) filed.fetch_add(1);
      if (r.status().code() == absl::StatusCode::kResourceExhausted) refused.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(filed.load(), 3);
  EXPECT_EQ(refused.load(), 5);
  EXPECT_EQ(OutboxRows(), 3);
  EXPECT_EQ((*store_->CountComplaintsByState())[v1::COMPLAINT_STATE_OPEN], 3);
}

// A category or channel group key is a number; anything else is refused,
// never read as 0 (which would restart the pages from the first group).
TEST_P(FeedbackStoreTest, SummaryRefusesAGroupKeyThatIsNotANumber) {
  ASSERT_TRUE(store_->InsertFeedback(Rating("s-1", "ana", 4, kT0), Event("s-1")).ok());
  SummaryQuery query;
  query.start = kT0;
  query.end = kT0 + absl::Minutes(10);
  query.group_by = v1::SUMMARY_GROUPING_CATEGORY;
  query.after_set = true;
  query.after_key = "deposit";
  auto page = store_->Summarize(query);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << page.status();

  query.after_key = "0";
  page = store_->Summarize(query);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->groups.size(), 1u);
  EXPECT_EQ(page->groups[0].category(), common::v1::CATEGORY_DEPOSIT);
}

TEST_P(FeedbackStoreTest, ComplaintCountsFollowEveryChangeWithoutCountingRows) {
  ASSERT_TRUE(store_->InsertComplaint(Complaint("c-1", "cust-1", "", kT0), 10, Event("c-1"))
                  .ok());
  ASSERT_TRUE(store_->InsertComplaint(Complaint("c-2", "cust-1", "", kT0), 10, Event("c-2"))
                  .ok());
  FeedbackStore::Mutation ack = [](ComplaintRecord& r, bool)
      -> absl::StatusOr<std::optional<events::v1::Event>> {
    r.complaint.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
    return Event(r.complaint.complaint_id());
  };
  ASSERT_TRUE(store_->UpdateComplaint("c-1", "", ack).ok());
  // A note (no change of state) leaves the counts alone.
  FeedbackStore::Mutation note = [](ComplaintRecord& r, bool)
      -> absl::StatusOr<std::optional<events::v1::Event>> {
    r.complaint.add_notes()->set_text("called back");
    return Event(r.complaint.complaint_id());
  };
  ASSERT_TRUE(store_->UpdateComplaint("c-1", "", note).ok());
  auto counts = store_->CountComplaintsByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ((*counts)[v1::COMPLAINT_STATE_OPEN], 1);
  EXPECT_EQ((*counts)[v1::COMPLAINT_STATE_ACKNOWLEDGED], 1);
  EXPECT_EQ((*counts)[v1::COMPLAINT_STATE_RESOLVED], 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, FeedbackStoreTest,
                         testing::AllBackends(), testing::BackendName);

// Two stores on one PostgreSQL database, each with connections of its own,
// as two feedback replicas run: the database, not a lock in either process,
// decides every race.
class TwoReplicasTest : public ::testing::Test {
 protected:
  TwoReplicasTest() : uri_(testing::SharedPostgresServer().CreateDatabase()) {
    auto migrated = storage::PostgresConnection::OpenMigrated(uri_, PostgresFeedbackMigrations());
    EXPECT_TRUE(migrated.ok()) << migrated.status();
    for (auto& replica : replicas_) {
      replica = std::make_unique<PostgresFeedbackStore>(uri_, kTopic, nullptr);
    }
  }

  int64_t Count(const std::string& sql) {
    auto db = storage::PostgresConnection::Open(uri_);
    if (!db.ok()) return -1;
    auto rows = (*db)->Query(sql);
    return rows.ok() ? rows->Int(0, 0) : -1;
  }

  // Runs `write(replica, i)` on 16 threads, alternating replicas, all
  // released at once.
  void Race(const std::function<void(FeedbackStore&, int)>& write) {
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        write(*replicas_[i % 2], i);
      });
    }
    go.store(true);
    for (auto& t : threads) t.join();
  }

  std::string uri_;
  std::unique_ptr<PostgresFeedbackStore> replicas_[2];
};

TEST_F(TwoReplicasTest, OneRatingPerSessionAndEveryLoserSeesTheWinner) {
  std::atomic<int> inserted{0};
  std::atomic<int> errors{0};
  std::vector<std::string> seen(16);
  Race([&](FeedbackStore& store, int i) {
    StoredFeedback f = Rating("s-1", "ana", 1 + i % 5, kT0);
    f.feedback.set_feedback_id(absl::StrCat("fb-", i));
    auto r = store.InsertFeedback(f, Event("s-1"));
    if (!r.ok()) {
      errors.fetch_add(1);
      return;
    }
    if (r->inserted) inserted.fetch_add(1);
    seen[i] = r->stored.feedback.feedback_id();
  });
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(inserted.load(), 1);
  auto stored = replicas_[1]->GetFeedback("s-1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  for (const std::string& id : seen) EXPECT_EQ(id, (*stored)->feedback.feedback_id());
  EXPECT_EQ(Count("SELECT COUNT(*) FROM feedback"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM outbox"), 1);
}

TEST_F(TwoReplicasTest, TheOpenComplaintCapHoldsAndARequestIdFilesOnce) {
  std::atomic<int> filed{0};
  std::atomic<int> refused{0};
  std::atomic<int> errors{0};
  // Half the callers retry one request id (r-1), half file new complaints:
  // r-1 is filed once, and 3 open complaints at most, whoever wins.
  Race([&](FeedbackStore& store, int i) {
    const std::string id = absl::StrCat("c-", i);
    auto r = store.InsertComplaint(Complaint(id, "cust-1", i % 4 == 0 ? "r-1" : "", kT0), 3,
                                   Event(id));
    if (r.ok()) {
      if (r->inserted) filed.fetch_add(1);
    } else if (r.status().code() == absl::StatusCode::kResourceExhausted) {
      refused.fetch_add(1);
    } else {
      errors.fetch_add(1);
    }
  });
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(filed.load(), 3);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM complaints"), 3);
  EXPECT_LE(Count("SELECT COUNT(*) FROM complaints WHERE request_id = 'r-1'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM outbox"), 3);
  EXPECT_EQ((*replicas_[0]->CountComplaintsByState())[v1::COMPLAINT_STATE_OPEN], 3);
}

TEST_F(TwoReplicasTest, ConcurrentUpdatesOfOneComplaintApplyEachRequestOnce) {
  ASSERT_TRUE(replicas_[0]->InsertComplaint(Complaint("c-1", "cust-1", "", kT0), 3, Event("c-1"))
                  .ok());
  std::atomic<int> errors{0};
  // Each caller adds a note with one of 4 request ids: 4 notes, whatever
  // the interleaving; every read-modify-write sees the one before.
  Race([&](FeedbackStore& store, int i) {
    auto r = store.UpdateComplaint(
        "c-1", absl::StrCat("u-", i % 4),
        [i](ComplaintRecord& r, bool seen) -> absl::StatusOr<std::optional<events::v1::Event>> {
          if (seen) return std::nullopt;
          r.complaint.add_notes()->set_text(absl::StrCat("note ", i % 4));
          return Event("c-1");
        });
    if (!r.ok()) errors.fetch_add(1);
  });
  EXPECT_EQ(errors.load(), 0);
  auto complaint = replicas_[1]->GetComplaint("c-1");
  ASSERT_TRUE(complaint.ok() && complaint->has_value());
  EXPECT_EQ((*complaint)->complaint.notes_size(), 4);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM outbox"), 5);
}

TEST(SqliteFeedbackStoreMigrationTest, ComplaintsFiledBeforeTheCountsAreCountedOnce) {
  const std::string path = storage::MakeTempDir() + "/old.db";
  {
    auto old = storage::Database::Open({path});
    ASSERT_TRUE(
        (*old)->Migrate({FeedbackMigrations()[0], FeedbackMigrations()[1]}).ok());
    for (const auto& [id, state] : {std::pair{"c-1", 1}, {"c-2", 3}, {"c-3", 3}}) {
      auto insert = (*old)->Prepare(
          "INSERT INTO complaints VALUES (?, 'cust-1', '', '', 0, 0, ?, '', 0, '', 0, x'')");
      ASSERT_TRUE(insert->Bind(1, id).Bind(2, state).Run().ok());
    }
  }
  auto db = storage::Database::OpenMigrated({path}, FeedbackMigrations());
  ASSERT_TRUE(db.ok()) << db.status();
  storage::GroupCommitter committer(db->get());
  SqliteFeedbackStore store(&committer, path, "switchboard.feedback.v1", nullptr);
  auto counts = store.CountComplaintsByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(*counts, (std::array<int64_t, 4>{0, 1, 0, 2}));
}

}  // namespace
}  // namespace switchboard::feedback
