#include <atomic>
#include <thread>

#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/store_backends.h"
#include "services/identity/postgres_store.h"
#include "services/identity/sqlite_store.h"

namespace switchboard::identity {
namespace {

using testing::Backend;

constexpr char kTopic[] = "switchboard.identity.v1";

// The same cases on each backend: a SQLite file in a temporary folder, and
// a fresh database on a real PostgreSQL.
class IdentityStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  IdentityStoreTest() : place_(testing::NewStorePlace(GetParam(), "identity.db")) {
    Open();
  }

  // Opens the store (again, as after a restart).
  void Open() {
    store_.reset();
    committer_.reset();
    db_.reset();
    if (GetParam() == Backend::kPostgres) {
      auto migrated =
          storage::PostgresConnection::OpenMigrated(place_.uri, PostgresIdentityMigrations());
      ASSERT_TRUE(migrated.ok()) << migrated.status();
      store_ = std::make_unique<PostgresIdentityStore>(place_.uri, kTopic, [this] { ++commits_; });
      return;
    }
    db_ = *storage::Database::Open({place_.path});
    ASSERT_TRUE(db_->Migrate(IdentityMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteIdentityStore>(committer_.get(), place_.path, kTopic,
                                                   [this] { ++commits_; });
  }

  absl::Status Apply(IdentityWrite write) {
    return testing::ApplyAndWait(*store_, std::move(write));
  }

  int64_t OutboxRows() { return testing::OutboxRows(place_); }

  const testing::StorePlace place_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<IdentityStore> store_;
  std::atomic<int> commits_{0};
};

TEST_P(IdentityStoreTest, RoundTripsEveryRecordAcrossReopen) {
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  IdentityWrite write;
  CustomerRecord& c = write.customers.emplace_back();
  c.customer_id = "cust-1";
  c.email = "ana@example.com";
  c.phone = "+8613800138000";
  c.totp_secret_sealed = std::string("\x00\x01sealed\xff", 9);
  c.totp_enrolled_at = t;
  c.last_totp_step = 60'000'000;
  c.current_challenge_id = "chl_1";
  c.locked_until = t + absl::Minutes(30);
  c.recent_starts = {t, t + absl::Seconds(30)};
  c.recent_failures = {t + absl::Milliseconds(5)};
  ChallengeRecord& ch = write.challenges.emplace_back();
  ch.challenge_id = "chl_1";
  ch.customer_id = "cust-1";
  ch.method = common::v1::VERIFICATION_METHOD_SMS_OTP;
  ch.session_id = "sess-1";
  ch.code_hash = std::string(32, '\x07');
  ch.created_at = t;
  ch.expires_at = t + absl::Minutes(5);
  ch.attempts_used = 2;
  ch.max_attempts = 5;
  ch.state = ChallengeState::kUsed;
  ch.start_request_id = "start-1";
  ch.complete_request_id = "done-1";
  ch.completed_code_hash = std::string(32, '\x08');
  ch.token_id = "vt_1";
  ch.token_issued_at = t + absl::Minutes(1);
  ch.token_expires_at = t + absl::Minutes(16);
  EnrollmentRecord& e = write.enrollments.emplace_back();
  e.enrollment_id = "enr_1";
  e.customer_id = "cust-1";
  e.secret_sealed = "sealed";
  e.actor_id = "sup-1";
  e.created_at = t;
  e.expires_at = t + absl::Minutes(10);
  e.attempts_used = 1;
  e.used = true;
  e.start_request_id = "enroll-1";
  e.account_label = "Ana";
  e.confirm_request_id = "confirm-1";
  e.confirmed_at = t + absl::Minutes(2);
  e.replaced = true;
  events::v1::Event& event = write.events.emplace_back();
  event.mutable_contact_changed()->set_customer_id("cust-1");
  ASSERT_TRUE(events::Seal(event, "identity", "cust-1", t).ok());
  ASSERT_TRUE(Apply(write).ok());
  EXPECT_EQ(commits_, 1);
  EXPECT_EQ(OutboxRows(), 1);

  Open();
  auto customer = store_->GetCustomer("cust-1");
  ASSERT_TRUE(customer.ok()) << customer.status();
  ASSERT_TRUE(customer->has_value());
  const CustomerRecord& c2 = **customer;
  EXPECT_EQ(c2.email, c.email);
  EXPECT_EQ(c2.phone, c.phone);
  EXPECT_EQ(c2.totp_secret_sealed, c.totp_secret_sealed);
  EXPECT_EQ(c2.totp_enrolled_at, t);
  EXPECT_EQ(c2.last_totp_step, c.last_totp_step);
  EXPECT_EQ(c2.current_challenge_id, "chl_1");
  EXPECT_EQ(c2.locked_until, c.locked_until);
  EXPECT_EQ(c2.recent_starts, c.recent_starts);
  EXPECT_EQ(c2.recent_failures, c.recent_failures);
  EXPECT_TRUE(c2.recent_enrollments.empty());
  EXPECT_FALSE(store_->GetCustomer("cust-2")->has_value());

  auto challenge = store_->GetChallenge("chl_1");
  ASSERT_TRUE(challenge.ok() && challenge->has_value());
  const ChallengeRecord& ch2 = **challenge;
  EXPECT_EQ(ch2.method, ch.method);
  EXPECT_EQ(ch2.session_id, "sess-1");
  EXPECT_EQ(ch2.code_hash, ch.code_hash);
  EXPECT_EQ(ch2.expires_at, ch.expires_at);
  EXPECT_EQ(ch2.attempts_used, 2);
  EXPECT_EQ(ch2.max_attempts, 5);
  EXPECT_EQ(ch2.state, ChallengeState::kUsed);
  EXPECT_EQ(ch2.complete_request_id, "done-1");
  EXPECT_EQ(ch2.completed_code_hash, ch.completed_code_hash);
  EXPECT_EQ(ch2.token_id, "vt_1");
  EXPECT_EQ(ch2.token_issued_at, ch.token_issued_at);
  EXPECT_EQ(ch2.token_expires_at, ch.token_expires_at);
  auto by_request = store_->FindChallengeByRequest("cust-1", "start-1");
  ASSERT_TRUE(by_request.ok() && by_request->has_value());
  EXPECT_EQ((*by_request)->challenge_id, "chl_1");
  EXPECT_FALSE(store_->FindChallengeByRequest("cust-2", "start-1")->has_value());
  EXPECT_FALSE(store_->FindChallengeByRequest("cust-1", "")->has_value());

  auto enrollment = store_->GetEnrollment("enr_1");
  ASSERT_TRUE(enrollment.ok() && enrollment->has_value());
  EXPECT_EQ((*enrollment)->actor_id, "sup-1");
  EXPECT_EQ((*enrollment)->attempts_used, 1);
  EXPECT_TRUE((*enrollment)->used);
  EXPECT_EQ((*enrollment)->account_label, "Ana");
  EXPECT_EQ((*enrollment)->confirm_request_id, "confirm-1");
  EXPECT_EQ((*enrollment)->confirmed_at, e.confirmed_at);
  EXPECT_TRUE((*enrollment)->replaced);
  auto enrollment_by_request = store_->FindEnrollmentByRequest("cust-1", "enroll-1");
  ASSERT_TRUE(enrollment_by_request.ok() && enrollment_by_request->has_value());

  // Expired more than a minute before the cutoff: both go, the customer stays.
  auto deleted = store_->DeleteExpired(t + absl::Hours(1), 100);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2);
  EXPECT_FALSE(store_->GetChallenge("chl_1")->has_value());
  EXPECT_FALSE(store_->GetEnrollment("enr_1")->has_value());
  EXPECT_TRUE(store_->GetCustomer("cust-1")->has_value());
}

TEST_P(IdentityStoreTest, AccountChangesAndSourcesAreFoundByTheirIndexes) {
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  IdentityWrite write;
  const auto change = [&](const std::string& id, const std::string& customer,
                          ChangeState state, absl::Time requested) {
    AccountChangeRecord c;
    c.change_id = id;
    c.customer_id = customer;
    c.method = common::v1::VERIFICATION_METHOD_SMS_OTP;
    c.new_address = "+8613800138000";
    c.new_secret_sealed = std::string("\x00\x01", 2);
    c.totp_step = 42;
    c.requested_by = "sup-1";
    c.requested_at = requested;
    c.effective_at = requested + absl::Hours(24);
    c.state = state;
    c.resolution = state == ChangeState::kPending ? 0 : 2;
    c.resolved_at = state == ChangeState::kPending ? absl::InfinitePast() : requested;
    c.forget_after =
        state == ChangeState::kPending ? absl::InfiniteFuture() : requested + absl::Hours(1);
    c.code_hash = "hash";
    c.code_attempts = 2;
    c.notified = {common::v1::VERIFICATION_METHOD_EMAIL_OTP,
                  common::v1::VERIFICATION_METHOD_SMS_OTP};
    write.changes.push_back(c);
  };
  change("chg_old", "cust-1", ChangeState::kCancelled, t);
  change("chg_new", "cust-1", ChangeState::kPending, t + absl::Minutes(1));
  change("chg_other", "cust-2", ChangeState::kPending, t + absl::Minutes(2));
  SourceRecord source;
  source.source_key = "abc";
  source.recent_failures = {t, t + absl::Seconds(1)};
  source.locked_until = t + absl::Minutes(30);
  source.lockouts = 2;
  source.forget_after = t + absl::Hours(25);
  write.sources.push_back(source);
  ASSERT_TRUE(Apply(write).ok());
  Open();

  auto got = store_->GetChange("chg_new");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->new_secret_sealed, std::string("\x00\x01", 2));
  EXPECT_EQ((*got)->totp_step, 42);
  EXPECT_EQ((*got)->notified.size(), 2u);
  EXPECT_EQ((*got)->code_attempts, 2);
  EXPECT_EQ((*got)->resolved_at, absl::InfinitePast());
  auto listed = store_->ListChanges("cust-1", 10);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].change_id, "chg_new");
  EXPECT_EQ(store_->ListChanges("cust-1", 1)->size(), 1u);
  ASSERT_EQ(store_->PendingChanges("cust-1")->size(), 1u);
  EXPECT_EQ(store_->PendingChanges("cust-1")->at(0).change_id, "chg_new");
  EXPECT_TRUE(store_->DueChanges(t + absl::Hours(24), 10)->empty());
  auto due = store_->DueChanges(t + absl::Hours(25), 10);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].change_id, "chg_new");
  EXPECT_EQ(store_->DueChanges(t + absl::Hours(25), 1)->size(), 1u);
  auto stored_source = store_->GetSource("abc");
  ASSERT_TRUE(stored_source.ok() && stored_source->has_value());
  EXPECT_EQ((*stored_source)->recent_failures.size(), 2u);
  EXPECT_EQ((*stored_source)->lockouts, 2);
  EXPECT_EQ((*stored_source)->locked_until, t + absl::Minutes(30));
  // The resolved change goes once forgotten; pending ones never do.
  EXPECT_EQ(*store_->DeleteExpired(t + absl::Hours(2), 100), 1);
  EXPECT_FALSE(store_->GetChange("chg_old")->has_value());
  EXPECT_EQ(*store_->DeleteExpired(t + absl::Hours(26), 100), 1);
  EXPECT_FALSE(store_->GetSource("abc")->has_value());
  EXPECT_TRUE(store_->GetChange("chg_new")->has_value());
}

TEST(SqliteIdentityStoreTest, ADatabaseOfTheFirstReleaseMigratesAndKeepsItsRows) {
  const std::string path = storage::MakeTempDir() + "/old.db";
  {
    auto old = storage::Database::Open({path});
    ASSERT_TRUE((*old)
                    ->Migrate({IdentityMigrations()[0], IdentityMigrations()[1]})
                    .ok());
    ASSERT_TRUE((*old)
                    ->Execute("INSERT INTO challenges VALUES ('chl_old', 'cust-1', 1, '', x'00', "
                              "0, 10, 0, 5, 0)")
                    .ok());
  }
  auto db = storage::Database::OpenMigrated({path}, IdentityMigrations());
  ASSERT_TRUE(db.ok()) << db.status();
  storage::GroupCommitter committer(db->get());
  SqliteIdentityStore store(&committer, path, "switchboard.identity.v1", nullptr);
  auto challenge = store.GetChallenge("chl_old");
  ASSERT_TRUE(challenge.ok() && challenge->has_value()) << challenge.status();
  EXPECT_EQ((*challenge)->start_request_id, "");
  EXPECT_EQ((*challenge)->state, ChallengeState::kOpen);
}

TEST_P(IdentityStoreTest, AFailedWriteLeavesNothingBehind) {
  IdentityWrite write;
  write.customers.emplace_back().customer_id = "cust-1";
  // An unsealed event makes AppendToOutbox fail: the customer row must go too.
  write.events.emplace_back().mutable_contact_changed()->set_customer_id("cust-1");
  EXPECT_FALSE(Apply(write).ok());
  EXPECT_EQ(commits_, 0);
  EXPECT_FALSE(store_->GetCustomer("cust-1")->has_value());
  EXPECT_EQ(OutboxRows(), 0);
}

TEST_P(IdentityStoreTest, AWriteOverAStaleRevisionIsRefusedAndLeavesNothing) {
  if (GetParam() == Backend::kSqlite) {
    GTEST_SKIP() << "SQLite's one process serialises each customer itself; it keeps no "
                    "revisions";
  }
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  IdentityWrite first;
  first.customers.emplace_back().customer_id = "cust-1";
  ASSERT_TRUE(Apply(first).ok());
  // A record read as absent must still be absent.
  EXPECT_TRUE(absl::IsAborted(Apply(first)));

  CustomerRecord read = **store_->GetCustomer("cust-1");
  EXPECT_EQ(read.revision, 1);
  CustomerRecord winner = read;
  winner.lockouts = 1;
  IdentityWrite won;
  won.customers.push_back(winner);
  ASSERT_TRUE(Apply(won).ok());

  // The loser read the same revision: its whole write goes, events too.
  CustomerRecord loser = read;
  loser.lockouts = 7;
  IdentityWrite lost;
  lost.customers.push_back(loser);
  ChallengeRecord& challenge = lost.challenges.emplace_back();
  challenge.challenge_id = "chl_1";
  challenge.customer_id = "cust-1";
  events::v1::Event& event = lost.events.emplace_back();
  event.mutable_contact_changed()->set_customer_id("cust-1");
  ASSERT_TRUE(events::Seal(event, "identity", "cust-1", t).ok());
  absl::Status refused = Apply(lost);
  EXPECT_TRUE(absl::IsAborted(refused)) << refused;
  EXPECT_EQ((*store_->GetCustomer("cust-1"))->lockouts, 1);
  EXPECT_EQ((*store_->GetCustomer("cust-1"))->revision, 2);
  EXPECT_FALSE(store_->GetChallenge("chl_1")->has_value());
  EXPECT_EQ(OutboxRows(), 0);

  // One pending change per customer and method, whoever inserts the second.
  AccountChangeRecord change;
  change.change_id = "chg_1";
  change.customer_id = "cust-1";
  change.method = common::v1::VERIFICATION_METHOD_EMAIL_OTP;
  change.state = ChangeState::kPending;
  IdentityWrite pending;
  pending.changes.push_back(change);
  ASSERT_TRUE(Apply(pending).ok());
  pending.changes[0].change_id = "chg_2";
  EXPECT_TRUE(absl::IsAborted(Apply(pending)));
  // Superseding the first in the same write makes room for the second.
  AccountChangeRecord superseded = **store_->GetChange("chg_1");
  superseded.state = ChangeState::kCancelled;
  pending.changes.push_back(superseded);
  EXPECT_TRUE(Apply(pending).ok());
  ASSERT_EQ(store_->PendingChanges("cust-1")->size(), 1u);
  EXPECT_EQ(store_->PendingChanges("cust-1")->at(0).change_id, "chg_2");
}

INSTANTIATE_TEST_SUITE_P(Backends, IdentityStoreTest,
                         testing::AllBackends(), testing::BackendName);

// Two PostgresIdentityStores on one database stand for two identity
// replicas: each decides from what it read, and the revision makes the
// loser of every race read and decide again, so no update is lost.
TEST(TwoReplicasTest, EveryReadDecideWriteOfOneCustomerCountsOnceAcrossStores) {
  const std::string uri = testing::SharedPostgresServer().CreateDatabase();
  ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresIdentityMigrations()).ok());
  PostgresIdentityStore a(uri, kTopic, nullptr);
  PostgresIdentityStore b(uri, kTopic, nullptr);
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  constexpr int kThreads = 8;
  constexpr int kEach = 15;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      IdentityStore& store = i % 2 == 0 ? static_cast<IdentityStore&>(a) : b;
      for (int n = 0; n < kEach; ++n) {
        // A failed attempt: read the customer, count it, write it back
        // with its event; on a refusal, read again (as the logic does).
        while (true) {
          auto read = store.GetCustomer("cust-1");
          ASSERT_TRUE(read.ok()) << read.status();
          CustomerRecord customer;
          if (read->has_value()) {
            customer = **read;
          } else {
            customer.customer_id = "cust-1";
          }
          customer.recent_failures.push_back(t + absl::Microseconds(i * 1000 + n));
          IdentityWrite write;
          write.customers.push_back(customer);
          events::v1::Event& event = write.events.emplace_back();
          event.mutable_verification_failed()->set_customer_id("cust-1");
          EXPECT_TRUE(events::Seal(event, "identity", "cust-1", t).ok());
          absl::Status status = testing::ApplyAndWait(store, std::move(write));
          if (status.ok()) break;
          ASSERT_TRUE(absl::IsAborted(status)) << status;
          refused.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto customer = a.GetCustomer("cust-1");
  ASSERT_TRUE(customer.ok() && customer->has_value());
  EXPECT_EQ((*customer)->recent_failures.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ((*customer)->revision, kThreads * kEach);
  // The race happened: some writes were refused and decided again.
  EXPECT_GT(refused.load(), 0);
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok());
  auto rows = (*db)->Query("SELECT COUNT(*) FROM outbox");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->Int(0, 0), kThreads * kEach);
}

}  // namespace
}  // namespace switchboard::identity
