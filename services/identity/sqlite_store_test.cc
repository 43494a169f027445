#include "services/identity/sqlite_store.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/test_dir.h"

namespace switchboard::identity {
namespace {

class SqliteIdentityStoreTest : public ::testing::Test {
 protected:
  SqliteIdentityStoreTest() : path_(storage::MakeTempDir() + "/identity.db") { Open(); }

  void Open() {
    store_.reset();
    committer_.reset();
    db_ = *storage::Database::Open({path_});
    ASSERT_TRUE(db_->Migrate(IdentityMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteIdentityStore>(
        committer_.get(), "switchboard.identity.v1", [this] { ++commits_; });
  }

  absl::Status Apply(IdentityWrite write) {
    absl::Notification done;
    absl::Status status;
    store_->Apply(std::move(write), [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  int64_t OutboxRows() {
    int64_t rows = -1;
    EXPECT_TRUE(committer_
                    ->Commit([&](storage::Database& db) {
                      auto count = db.Prepare("SELECT COUNT(*) FROM outbox");
                      if (!count.ok()) return count.status();
                      absl::StatusOr<bool> row = count->Step();
                      if (!row.ok()) return row.status();
                      rows = count->ColumnInt(0);
                      return count->Step().status();
                    })
                    .ok());
    return rows;
  }

  const std::string path_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteIdentityStore> store_;
  int commits_ = 0;
};

TEST_F(SqliteIdentityStoreTest, RoundTripsEveryRecordAcrossReopen) {
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
  ch.state = ChallengeState::kReplaced;
  EnrollmentRecord& e = write.enrollments.emplace_back();
  e.enrollment_id = "enr_1";
  e.customer_id = "cust-1";
  e.secret_sealed = "sealed";
  e.actor_id = "sup-1";
  e.created_at = t;
  e.expires_at = t + absl::Minutes(10);
  e.attempts_used = 1;
  e.used = true;
  events::v1::Event& event = write.events.emplace_back();
  event.mutable_contact_changed()->set_customer_id("cust-1");
  ASSERT_TRUE(events::Seal(event, "identity", "cust-1", t).ok());
  ASSERT_TRUE(Apply(write).ok());
  EXPECT_EQ(commits_, 1);
  EXPECT_EQ(OutboxRows(), 1);

  Open();
  absl::StatusOr<IdentityStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->customers.size(), 1u);
  const CustomerRecord& c2 = contents->customers[0];
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
  ASSERT_EQ(contents->challenges.size(), 1u);
  const ChallengeRecord& ch2 = contents->challenges[0];
  EXPECT_EQ(ch2.method, ch.method);
  EXPECT_EQ(ch2.session_id, "sess-1");
  EXPECT_EQ(ch2.code_hash, ch.code_hash);
  EXPECT_EQ(ch2.expires_at, ch.expires_at);
  EXPECT_EQ(ch2.attempts_used, 2);
  EXPECT_EQ(ch2.max_attempts, 5);
  EXPECT_EQ(ch2.state, ChallengeState::kReplaced);
  ASSERT_EQ(contents->enrollments.size(), 1u);
  EXPECT_EQ(contents->enrollments[0].actor_id, "sup-1");
  EXPECT_EQ(contents->enrollments[0].attempts_used, 1);
  EXPECT_TRUE(contents->enrollments[0].used);

  IdentityWrite deletes;
  deletes.deleted_challenge_ids = {"chl_1"};
  deletes.deleted_enrollment_ids = {"enr_1"};
  ASSERT_TRUE(Apply(deletes).ok());
  contents = store_->Load();
  ASSERT_TRUE(contents.ok());
  EXPECT_TRUE(contents->challenges.empty());
  EXPECT_TRUE(contents->enrollments.empty());
  EXPECT_EQ(contents->customers.size(), 1u);
}

TEST_F(SqliteIdentityStoreTest, AFailedWriteLeavesNothingBehind) {
  IdentityWrite write;
  write.customers.emplace_back().customer_id = "cust-1";
  // An unsealed event makes AppendToOutbox fail: the customer row must go too.
  write.events.emplace_back().mutable_contact_changed()->set_customer_id("cust-1");
  EXPECT_FALSE(Apply(write).ok());
  EXPECT_EQ(commits_, 0);
  absl::StatusOr<IdentityStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok());
  EXPECT_TRUE(contents->customers.empty());
  EXPECT_EQ(OutboxRows(), 0);
}

}  // namespace
}  // namespace switchboard::identity
