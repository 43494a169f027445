// Two identity replicas in one test: two Identity objects (each with its own
// per-customer locks, as two processes have) over two PostgresIdentityStores
// on one database. What one process's locks guarantee must hold across
// them because the store refuses writes decided from stale state.
#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/storage/postgres.h"
#include "libs/testing/postgres.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/registry.h"
#include "services/identity/identity.h"
#include "services/identity/postgres_store.h"

namespace switchboard::identity {
namespace {

using common::v1::VERIFICATION_METHOD_EMAIL_OTP;

// Remembers the codes it was asked to deliver.
class FakeNotifier : public CodeNotifier {
 public:
  absl::Status Deliver(const v1::CodeDeliveryRequest& request) override {
    absl::MutexLock lock(&mu_);
    codes_[request.challenge_id()] = request.code();
    return absl::OkStatus();
  }
  std::string CodeFor(const std::string& challenge_id) {
    absl::MutexLock lock(&mu_);
    return codes_[challenge_id];
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> codes_;
};

testing::PostgresServer& SharedServer() {
  static testing::PostgresServer server;
  return server;
}

std::string OtherCode(const std::string& code) {
  std::string other = code;
  other[0] = other[0] == '9' ? '0' : static_cast<char>(other[0] + 1);
  return other;
}

class TwoReplicasTest : public ::testing::Test {
 protected:
  TwoReplicasTest() : uri_(SharedServer().CreateDatabase()) {
    auto migrated = storage::PostgresConnection::OpenMigrated(uri_, PostgresIdentityMigrations());
    EXPECT_TRUE(migrated.ok()) << migrated.status();
    options_.max_calls_per_customer = 16;
    for (int i = 0; i < 2; ++i) {
      stores_.push_back(
          std::make_unique<PostgresIdentityStore>(uri_, "switchboard.identity.v1", nullptr));
    }
  }

  void Build() {
    for (auto& store : stores_) {
      replicas_.push_back(std::make_unique<Identity>(store.get(), &clock_, &metrics_, &hasher_,
                                                     &box_, &tokens_.verification_signer(),
                                                     &notifier_, options_));
    }
  }

  int64_t Count(const std::string& sql) {
    auto db = storage::PostgresConnection::Open(uri_);
    if (!db.ok()) return -1;
    auto rows = (*db)->Query(sql);
    return rows.ok() ? rows->Int(0, 0) : -1;
  }

  // Runs `call(replica, thread)` on `threads` threads, alternating replicas.
  void Race(int threads, const std::function<void(Identity&, int)>& call) {
    std::vector<std::thread> running;
    for (int i = 0; i < threads; ++i) {
      running.emplace_back([&, i] { call(*replicas_[i % 2], i); });
    }
    for (std::thread& thread : running) thread.join();
  }

  const std::string uri_;
  IdentityOptions options_;
  std::vector<std::unique_ptr<PostgresIdentityStore>> stores_;
  FakeClock clock_;
  FakeNotifier notifier_;
  prometheus::Registry registry_;
  IdentityMetrics metrics_{registry_};
  CodeHasher hasher_{std::string(32, 'h')};
  SecretBox box_{std::string(32, 's')};
  testing::TestTokens tokens_{"identity"};
  std::vector<std::unique_ptr<Identity>> replicas_;
};

TEST_F(TwoReplicasTest, AOneTimeCodeIsAcceptedOnceWhicheverReplicasTryIt) {
  Build();
  ASSERT_TRUE(replicas_[0]
                  ->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "ana@example.com",
                                    "accounts")
                  .ok());
  for (int round = 0; round < 3; ++round) {
    clock_.Advance(absl::Minutes(1));
    auto started = replicas_[round % 2]->StartVerification(
        {"cust-1", VERIFICATION_METHOD_EMAIL_OTP, "", "", ""});
    ASSERT_TRUE(started.ok()) << started.status();
    const std::string challenge = started->challenge.challenge_id;
    const std::string code = notifier_.CodeFor(challenge);
    std::atomic<int> accepted{0};
    Race(8, [&](Identity& replica, int i) {
      auto done = replica.CompleteVerification("", challenge, code, absl::StrCat("req-", i));
      if (done.ok()) {
        accepted.fetch_add(1);
      } else {
        // Used by another call, or refused five times over (a client retries).
        EXPECT_TRUE(absl::IsFailedPrecondition(done.status()) ||
                    absl::IsAborted(done.status()))
            << done.status();
      }
    });
    EXPECT_EQ(accepted.load(), 1) << "round " << round;
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM challenges WHERE state = 1"), 3);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM outbox WHERE type LIKE '%.verification_succeeded'"), 3);
}

TEST_F(TwoReplicasTest, EveryAnsweredWrongCodeCountsOnceForChallengeCustomerAndSource) {
  options_.max_attempts = 1000;
  options_.lockout_failures = 1000;
  options_.source_lockout_failures = 1000;
  Build();
  ASSERT_TRUE(replicas_[0]
                  ->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "ana@example.com",
                                    "accounts")
                  .ok());
  auto started = replicas_[1]->StartVerification(
      {"cust-1", VERIFICATION_METHOD_EMAIL_OTP, "", "", ""});
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string challenge = started->challenge.challenge_id;
  const std::string wrong = OtherCode(notifier_.CodeFor(challenge));
  std::atomic<int> denied{0};
  Race(8, [&](Identity& replica, int) {
    for (int n = 0; n < 8; ++n) {
      auto done = replica.CompleteVerification("", challenge, wrong, "", "203.0.113.9");
      if (absl::IsPermissionDenied(done.status())) {
        denied.fetch_add(1);
      } else {
        EXPECT_TRUE(absl::IsAborted(done.status())) << done.status();
      }
    }
  });
  EXPECT_GT(denied.load(), 32);
  auto stored = stores_[0]->GetChallenge(challenge);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->attempts_used, denied.load());
  auto customer = stores_[1]->GetCustomer("cust-1");
  ASSERT_TRUE(customer.ok() && customer->has_value());
  EXPECT_EQ(static_cast<int>((*customer)->recent_failures.size()), denied.load());
  EXPECT_EQ(Count("SELECT SUM(array_length(string_to_array(recent_failures, ','), 1)) "
                  "FROM sources"),
            denied.load());
  EXPECT_EQ(Count("SELECT COUNT(*) FROM outbox WHERE type LIKE '%.verification_failed'"),
            denied.load());
}

TEST_F(TwoReplicasTest, ARequestIdStartsOneChallengeWhicheverReplicasRetryIt) {
  options_.resend_interval = absl::ZeroDuration();
  options_.max_starts_per_hour = 1000;
  Build();
  for (int round = 0; round < 5; ++round) {
    const std::string request = absl::StrCat("start-", round);
    absl::Mutex mu;
    std::set<std::string> challenges;
    Race(4, [&](Identity& replica, int) {
      auto started = replica.StartVerification(
          {"cust-1", VERIFICATION_METHOD_EMAIL_OTP, "", "", request});
      if (!started.ok()) {
        EXPECT_TRUE(absl::IsAborted(started.status())) << started.status();
        return;
      }
      absl::MutexLock lock(&mu);
      challenges.insert(started->challenge.challenge_id);
    });
    EXPECT_EQ(challenges.size(), 1u) << "round " << round;
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM challenges"), 5);
}

}  // namespace
}  // namespace switchboard::identity
