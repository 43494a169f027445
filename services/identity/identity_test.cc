#include "services/identity/identity.h"

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/limits/retry_after.h"
#include "libs/storage/commit_gate.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/registry.h"
#include "services/identity/sqlite_store.h"
#include "services/identity/totp.h"

namespace switchboard::identity {
namespace {

using common::v1::VERIFICATION_METHOD_EMAIL_OTP;
using common::v1::VERIFICATION_METHOD_SMS_OTP;
using common::v1::VERIFICATION_METHOD_TOTP;
using common::v1::VERIFICATION_METHOD_UNSPECIFIED;

// Remembers every code it was asked to deliver; can be told to fail.
class FakeNotifier : public CodeNotifier {
 public:
  absl::Status Deliver(const v1::CodeDeliveryRequest& request) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("gateway down");
    requests_.push_back(request);
    return absl::OkStatus();
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }
  std::vector<v1::CodeDeliveryRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::string CodeFor(const std::string& challenge_id) {
    absl::MutexLock lock(&mu_);
    for (const auto& r : requests_) {
      if (r.challenge_id() == challenge_id) return r.code();
    }
    return "";
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::CodeDeliveryRequest> requests_;
  bool fail_ = false;
};

std::string Base32Decode(absl::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int value = c >= 'A' && c <= 'Z' ? c - 'A' : c - '2' + 26;
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string OtherCode(const std::string& code) {
  std::string other = code;
  other[0] = other[0] == '9' ? '0' : static_cast<char>(other[0] + 1);
  return other;
}

int64_t Payload(const absl::Status& status, const char* key) {
  auto value = status.GetPayload(key);
  if (!value.has_value()) return -1;
  return std::stoll(std::string(*value));
}

// Polls `done` for up to 30 s.
bool WaitFor(const std::function<bool()>& done) {
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (!done() && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(2));
  return done();
}

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

// The logic over the real SQLite store, with a CommitGate in front of its
// commits, a fake notifier and a fake clock.
class IdentityTest : public ::testing::Test {
 protected:
  IdentityTest() : path_(storage::MakeTempDir() + "/identity.db") {
    Open();
    Rebuild(IdentityOptions());
  }
  ~IdentityTest() override { Close(); }

  // Opens the database, the committer and the store (synchronous=NORMAL:
  // these tests commit thousands of times and do not cut the power).
  void Open() {
    db_ = *storage::Database::OpenMigrated({path_, /*synchronous_full=*/false},
                                           IdentityMigrations());
    gate_ = std::make_unique<storage::CommitGate>(db_.get());
    storage::GroupCommitter::Options options;
    options.max_queue = kMaxQueue;
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get(), options);
    store_ = std::make_unique<SqliteIdentityStore>(committer_.get(), path_,
                                                   "switchboard.identity.v1", nullptr);
  }
  void Close() {
    gate_->Open();
    identity_.reset();
    store_.reset();
    committer_->Stop();
    committer_.reset();
    gate_.reset();
    db_.reset();
  }
  void Rebuild(IdentityOptions options) {
    identity_ = std::make_unique<Identity>(store_.get(), &clock_, &metrics_, &hasher_, &box_,
                                           &tokens_.verification_signer(), &notifier_, options);
  }
  // A process restart: nothing survives but the file.
  void Restart(IdentityOptions options) {
    Close();
    Open();
    Rebuild(options);
  }

  // The events committed so far, in commit order.
  std::vector<events::v1::Event> Events() {
    std::vector<events::v1::Event> events;
    auto reader = storage::Database::Open({path_});
    auto select = (*reader)->Prepare("SELECT value FROM outbox ORDER BY id");
    while (*select->Step()) {
      events.emplace_back();
      EXPECT_TRUE(events.back().ParseFromString(select->ColumnBlob(0)));
    }
    return events;
  }
  int64_t Rows(const std::string& table) {
    auto reader = storage::Database::Open({path_});
    auto count = (*reader)->Prepare("SELECT COUNT(*) FROM " + table);
    EXPECT_TRUE(*count->Step());
    return count->ColumnInt(0);
  }

  // Client writes the store admits while others wait.
  static constexpr int kMaxQueue = 2;

  absl::StatusOr<Identity::Started> Start(
      const std::string& customer,
      common::v1::VerificationMethod method = VERIFICATION_METHOD_EMAIL_OTP,
      const std::string& session = "") {
    return identity_->StartVerification({customer, method, session, ""});
  }

  // Registers an email and starts an email challenge; returns its id.
  std::string StartEmail(const std::string& customer) {
    EXPECT_TRUE(identity_->RegisterContact(customer, VERIFICATION_METHOD_EMAIL_OTP,
                                           customer + "@example.com", "accounts")
                    .ok());
    absl::StatusOr<Identity::Started> started = Start(customer);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->challenge.challenge_id : "";
  }

  // Enrolls an authenticator; returns the raw secret.
  std::string Enroll(const std::string& customer) {
    auto started = identity_->StartTotpEnrollment(customer, "", "support-tool", std::nullopt);
    EXPECT_TRUE(started.ok()) << started.status();
    const std::string secret = Base32Decode(started->secret_base32);
    auto confirmed = identity_->ConfirmTotpEnrollment(
        customer, started->enrollment.enrollment_id,
        Hotp(secret, TotpStep(clock_.Now()), 6));
    EXPECT_TRUE(confirmed.ok()) << confirmed.status();
    return secret;
  }

  int CountEvents(events::v1::Event::PayloadCase payload) {
    int n = 0;
    for (const auto& e : Events()) n += e.payload_case() == payload;
    return n;
  }

  const std::string path_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::CommitGate> gate_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteIdentityStore> store_;
  FakeClock clock_;
  FakeNotifier notifier_;
  prometheus::Registry registry_;
  IdentityMetrics metrics_{registry_};
  CodeHasher hasher_{std::string(32, 'h')};
  SecretBox box_{std::string(32, 's')};
  testing::TestTokens tokens_{"identity"};
  std::unique_ptr<Identity> identity_;

  // What a verification token says, checked as other services check it:
  // two tokens with equal claims are the same verification.
  std::string ClaimsOf(const std::string& token) {
    absl::StatusOr<auth::VerificationClaims> c =
        auth::VerifyVerificationToken(tokens_.verifier(), token, clock_.Now());
    if (!c.ok()) return c.status().ToString();
    return absl::StrCat(c->customer_id, "|", c->token_id, "|", c->session_id, "|", c->method,
                        "|", c->level, "|", absl::FormatTime(c->issued_at), "|",
                        absl::FormatTime(c->expires_at));
  }
};

TEST_F(IdentityTest, EmailCodeYieldsATokenForThatCustomerOnly) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  auto started = Start("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "sess-1");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->challenge.expires_at, clock_.Now() + absl::Minutes(5));
  EXPECT_EQ(started->challenge.max_attempts, 5);
  EXPECT_EQ(started->resend_available_at, clock_.Now() + absl::Seconds(30));
  ASSERT_EQ(notifier_.requests().size(), 1u);
  const v1::CodeDeliveryRequest request = notifier_.requests()[0];
  EXPECT_EQ(request.address(), "ana@example.com");
  EXPECT_EQ(request.language(), "en");
  EXPECT_EQ(request.challenge_id(), started->challenge.challenge_id);
  ASSERT_TRUE(ValidateCode(request.code()).ok());
  EXPECT_FALSE(started->challenge.code_hash.empty());
  EXPECT_EQ(started->challenge.code_hash.find(request.code()), std::string::npos);

  // Another customer cannot even see the challenge.
  EXPECT_TRUE(absl::IsNotFound(identity_->CompleteVerification(
      "cust-2", started->challenge.challenge_id, request.code()).status()));

  auto completed =
      identity_->CompleteVerification("cust-1", started->challenge.challenge_id, request.code());
  ASSERT_TRUE(completed.ok()) << completed.status();
  EXPECT_EQ(completed->claims.customer_id, "cust-1");
  EXPECT_EQ(completed->claims.session_id, "sess-1");
  EXPECT_EQ(completed->claims.level, auth::kLevelBasic);
  EXPECT_EQ(completed->verification.method(), VERIFICATION_METHOD_EMAIL_OTP);
  auto claims = auth::VerifyVerificationToken(tokens_.verifier(), completed->token, clock_.Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->method, "email_otp");
  EXPECT_EQ(claims->expires_at, claims->issued_at + absl::Minutes(15));

  TokenCheck check = CheckVerificationToken(tokens_.verifier(), completed->token, "cust-2", "",
                                            common::v1::VERIFICATION_LEVEL_UNSPECIFIED,
                                            clock_.Now());
  EXPECT_EQ(check.reason, v1::INVALID_TOKEN_REASON_WRONG_CUSTOMER);

  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationStarted), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationSucceeded), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kContactChanged), 1);
  // No event carries the code, the address or the token.
  for (const auto& event : Events()) {
    const std::string bytes = event.SerializeAsString();
    EXPECT_EQ(bytes.find(request.code()), std::string::npos) << event.type();
    EXPECT_EQ(bytes.find("ana@example.com"), std::string::npos) << event.type();
    EXPECT_EQ(bytes.find(completed->token), std::string::npos) << event.type();
  }
}

TEST_F(IdentityTest, CodesExpireWithTheClock) {
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  clock_.Advance(absl::Minutes(5));
  absl::Status status = identity_->CompleteVerification("cust-1", id, code).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_NE(status.message().find("expired"), std::string::npos);

  clock_.Advance(absl::Seconds(30));
  const std::string fresh = StartEmail("cust-1");
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_TRUE(identity_->CompleteVerification("cust-1", fresh, notifier_.CodeFor(fresh)).ok());
}

TEST_F(IdentityTest, CodeTtlIsCappedAtTenMinutes) {
  IdentityOptions options;
  options.code_ttl = absl::Hours(1);
  Rebuild(options);
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                         "+8613800138000", "accounts")
                  .ok());
  auto started = Start("cust-1", VERIFICATION_METHOD_SMS_OTP);
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->challenge.expires_at, clock_.Now() + absl::Minutes(10));
}

TEST_F(IdentityTest, AUsedCodeIsRefused) {
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  ASSERT_TRUE(identity_->CompleteVerification("cust-1", id, code).ok());
  absl::Status again = identity_->CompleteVerification("cust-1", id, code).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_NE(again.message().find("already used"), std::string::npos);
  const auto events = Events();
  ASSERT_EQ(events.back().payload_case(), events::v1::Event::kVerificationFailed);
  EXPECT_EQ(events.back().verification_failed().failure(),
            events::v1::VERIFICATION_FAILURE_CHALLENGE_USED);
}

TEST_F(IdentityTest, ANewChallengeKillsTheOldCode) {
  const std::string first = StartEmail("cust-1");
  const std::string first_code = notifier_.CodeFor(first);
  clock_.Advance(absl::Seconds(30));
  auto second = Start("cust-1");
  ASSERT_TRUE(second.ok()) << second.status();
  absl::Status old = identity_->CompleteVerification("cust-1", first, first_code).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(old)) << old;
  EXPECT_NE(old.message().find("replaced"), std::string::npos);
  bool replaced_in_event = false;
  for (const auto& e : Events()) {
    if (e.has_verification_started() &&
        e.verification_started().replaced_challenge_id() == first) {
      replaced_in_event = true;
    }
  }
  EXPECT_TRUE(replaced_in_event);
  const std::string second_id = second->challenge.challenge_id;
  EXPECT_TRUE(
      identity_->CompleteVerification("cust-1", second_id, notifier_.CodeFor(second_id)).ok());
}

TEST_F(IdentityTest, AttemptCapHoldsExactlyUnderConcurrentGuesses) {
  IdentityOptions options;
  options.lockout_failures = 1000;  // Only the per-challenge cap is under test.
  options.max_calls_per_customer = 16;
  Rebuild(options);
  const std::string id = StartEmail("cust-1");
  const std::string wrong = OtherCode(notifier_.CodeFor(id));

  std::atomic<int> denied{0}, exhausted{0}, other{0};
  absl::Mutex mu;
  std::multiset<int64_t> remaining;
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        absl::Status s = identity_->CompleteVerification("cust-1", id, wrong).status();
        if (absl::IsPermissionDenied(s)) {
          ++denied;
          absl::MutexLock lock(&mu);
          remaining.insert(Payload(s, kAttemptsRemaining));
        } else if (absl::IsFailedPrecondition(s)) {
          ++exhausted;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(denied.load(), 5);
  EXPECT_EQ(exhausted.load(), 16 * 25 - 5);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(remaining, (std::multiset<int64_t>{0, 1, 2, 3, 4}));
  // The right code is no use now.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->CompleteVerification("cust-1", id, notifier_.CodeFor(id)).status()));
}

TEST_F(IdentityTest, RepeatedFailuresLockTheCustomerOutUntilTheLockoutEnds) {
  // Default: 10 failures within an hour lock for 30 minutes; 5 per challenge.
  for (int round = 0; round < 2; ++round) {
    const std::string id = StartEmail("cust-1");
    const std::string wrong = OtherCode(notifier_.CodeFor(id));
    for (int i = 0; i < 5; ++i) {
      absl::Status s = identity_->CompleteVerification("cust-1", id, wrong).status();
      if (round == 1 && i == 4) {
        EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
        EXPECT_EQ(Payload(s, limits::kRetryAfter), 1800);
        EXPECT_NE(s.message().find("retry after 1800 s"), std::string::npos);
      } else {
        EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
      }
    }
    clock_.Advance(absl::Seconds(30));
  }
  EXPECT_EQ(CountEvents(events::v1::Event::kCustomerLockedOut), 1);
  absl::Status start = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(start)) << start;
  EXPECT_EQ(Payload(start, limits::kRetryAfter), 1800 - 30);
  // Another customer is not affected.
  EXPECT_TRUE(Start("cust-2").ok());

  clock_.Advance(absl::Minutes(29));
  EXPECT_TRUE(absl::IsResourceExhausted(Start("cust-1").status()));
  clock_.Advance(absl::Seconds(31));
  const std::string id = StartEmail("cust-1");
  EXPECT_TRUE(identity_->CompleteVerification("cust-1", id, notifier_.CodeFor(id)).ok());
}

// Fails `n` attempts of `customer` from `source`, on as many challenges as
// that takes (a challenge allows 5); returns the last attempt's status.
absl::Status FailAttempts(Identity& identity, FakeNotifier& notifier, FakeClock& clock,
                          const std::string& customer, const std::string& source, int n) {
  absl::Status last;
  while (n > 0) {
    clock.Advance(absl::Seconds(31));  // past the resend interval
    absl::StatusOr<Identity::Started> started = identity.StartVerification(
        {customer, VERIFICATION_METHOD_EMAIL_OTP, "", "", "", source});
    if (!started.ok()) return started.status();
    const std::string id = started->challenge.challenge_id;
    const std::string wrong = OtherCode(notifier.CodeFor(id));
    for (int i = 0; i < 5 && n > 0; ++i, --n) {
      last = identity.CompleteVerification(customer, id, wrong, "", source).status();
      if (absl::IsResourceExhausted(last)) return last;
    }
  }
  return last;
}

TEST_F(IdentityTest, EachLockoutOfARunLastsTwiceTheOneBeforeUpToTheCap) {
  IdentityOptions options;
  options.lockout_failures = 3;
  options.max_starts_per_hour = 1000;
  options.max_lockout = absl::Hours(3);
  Rebuild(options);
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "cust-1@example.com", "accounts")
                  .ok());
  // 30 min, 1 h, 2 h, then the 3 h cap; the level survives a restart.
  for (int64_t expected : {1800, 3600, 7200, 10800, 10800}) {
    absl::Status locked = FailAttempts(*identity_, notifier_, clock_, "cust-1", "", 3);
    ASSERT_TRUE(absl::IsResourceExhausted(locked)) << locked;
    EXPECT_EQ(Payload(locked, limits::kRetryAfter), expected);
    absl::Status start = Start("cust-1").status();
    EXPECT_TRUE(absl::IsResourceExhausted(start)) << start;
    clock_.Advance(absl::Seconds(expected));
    Restart(options);
  }
  std::vector<std::pair<int, int64_t>> lockouts;
  for (const auto& e : Events()) {
    if (e.has_customer_locked_out()) {
      lockouts.emplace_back(e.customer_locked_out().lockout_number(),
                            e.customer_locked_out().duration().seconds());
    }
  }
  EXPECT_EQ(lockouts, (std::vector<std::pair<int, int64_t>>{
                          {1, 1800}, {2, 3600}, {3, 7200}, {4, 10800}, {5, 10800}}));
  // A quiet day after the last lockout ends the run: the next is a first.
  clock_.Advance(absl::Hours(24));
  absl::Status again = FailAttempts(*identity_, notifier_, clock_, "cust-1", "", 3);
  EXPECT_EQ(Payload(again, limits::kRetryAfter), 1800);
}

TEST_F(IdentityTest, OneSourceFailingForManyCustomersIsLockedOutForAll) {
  IdentityOptions options;
  options.source_lockout_failures = 8;
  Rebuild(options);
  for (const char* customer : {"a", "b", "c", "d", "victim"}) {
    ASSERT_TRUE(identity_->RegisterContact(customer, VERIFICATION_METHOD_EMAIL_OTP,
                                           absl::StrCat(customer, "@example.com"), "accounts")
                    .ok());
  }
  // 2 wrong codes for each of 4 customers: no customer comes near their own
  // limit, but the source reaches its 8.
  const std::string attacker = "203.0.113.7";
  absl::Status last;
  for (const char* customer : {"a", "b", "c", "d"}) {
    last = FailAttempts(*identity_, notifier_, clock_, customer, attacker, 2);
  }
  EXPECT_TRUE(absl::IsResourceExhausted(last)) << last;
  EXPECT_NE(last.message().find("this address"), std::string::npos) << last;
  EXPECT_EQ(Payload(last, limits::kRetryAfter), 1800);
  EXPECT_EQ(CountEvents(events::v1::Event::kCustomerLockedOut), 0);
  ASSERT_EQ(CountEvents(events::v1::Event::kSourceLockedOut), 1);
  for (const auto& e : Events()) {
    if (!e.has_source_locked_out()) continue;
    // The address is never stored or published, only its keyed hash.
    EXPECT_EQ(e.source_locked_out().source_key().size(), 64u);
    EXPECT_EQ(e.source_locked_out().customer_id(), "d");
    EXPECT_EQ(e.source_locked_out().lockout_number(), 1);
    EXPECT_EQ(e.entity_id(),
              absl::StrCat("source-", e.source_locked_out().source_key().substr(0, 16)));
    EXPECT_EQ(e.DebugString().find(attacker), std::string::npos);
  }
  EXPECT_EQ(metrics_.source_lockouts->Value(), 1);
  // The source is refused for every customer, on start and completion.
  clock_.Advance(absl::Seconds(31));
  absl::Status refused =
      identity_->StartVerification({"victim", VERIFICATION_METHOD_EMAIL_OTP, "", "", "", attacker})
          .status();
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  // The same customer from another address is not.
  auto elsewhere = identity_->StartVerification(
      {"victim", VERIFICATION_METHOD_EMAIL_OTP, "", "", "", "198.51.100.1"});
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  const std::string id = elsewhere->challenge.challenge_id;
  EXPECT_TRUE(absl::IsResourceExhausted(
      identity_->CompleteVerification("victim", id, notifier_.CodeFor(id), "", attacker).status()));
  // It survives a restart, escalates like a customer's, and is forgotten
  // by the sweep once it no longer matters.
  Restart(options);
  clock_.Advance(absl::Minutes(31));
  absl::Status second = FailAttempts(*identity_, notifier_, clock_, "victim", attacker, 8);
  EXPECT_EQ(Payload(second, limits::kRetryAfter), 3600);
  EXPECT_EQ(Rows("sources"), 1);
  clock_.Advance(absl::Hours(1) + absl::Hours(24) + absl::Hours(2));
  ASSERT_TRUE(identity_->Sweep().ok());
  EXPECT_EQ(Rows("sources"), 0);
  EXPECT_TRUE(identity_->CompleteVerification("victim", id, notifier_.CodeFor(id), "", attacker)
                  .status()
                  .code() != absl::StatusCode::kResourceExhausted);
}

TEST(SourceOfTest, AddressesFromThePeerOrAProxyHeader) {
  EXPECT_EQ(SourceOf("ipv4:203.0.113.7:51234", ""), "203.0.113.7");
  EXPECT_EQ(SourceOf("ipv6:[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", ""), "2001:db8:1:2::/64");
  EXPECT_EQ(SourceOf("ipv6:%5B2001:db8:1:2::9%5D:443", ""), "2001:db8:1:2::/64");
  EXPECT_EQ(SourceOf("ipv6:[::1]:443", ""), "::/64");
  EXPECT_EQ(SourceOf("ipv4:10.0.0.2:443", " 198.51.100.9, 10.0.0.2"), "198.51.100.9");
  EXPECT_EQ(SourceOf("unix:/tmp/socket", ""), "");
  EXPECT_EQ(SourceOf("ipv4:10.0.0.2:443", "not an address"), "");
  EXPECT_EQ(SourceOf("garbage", ""), "");
}

TEST_F(IdentityTest, CompletingDuringALockoutIsRefusedWithoutUsingAnAttempt) {
  IdentityOptions options;
  options.lockout_failures = 3;
  Rebuild(options);
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  for (int i = 0; i < 3; ++i) {
    (void)identity_->CompleteVerification("cust-1", id, OtherCode(code));
  }
  absl::Status s = identity_->CompleteVerification("cust-1", id, code).status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_EQ(Payload(s, limits::kRetryAfter), 1800);
}

TEST_F(IdentityTest, StartingIsRateLimitedPerCustomer) {
  ASSERT_TRUE(Start("cust-1").ok());
  absl::Status again = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(again)) << again;
  EXPECT_EQ(Payload(again, limits::kRetryAfter), 30);
  EXPECT_TRUE(Start("cust-2").ok());
  for (int i = 1; i < 10; ++i) {
    clock_.Advance(absl::Seconds(30));
    ASSERT_TRUE(Start("cust-1").ok()) << i;
  }
  clock_.Advance(absl::Seconds(30));
  absl::Status hourly = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(hourly)) << hourly;
  // The first start leaves the window an hour after it.
  EXPECT_EQ(Payload(hourly, limits::kRetryAfter), 3600 - 10 * 30);
  clock_.Advance(absl::Seconds(3600 - 10 * 30));
  EXPECT_TRUE(Start("cust-1").ok());
}

TEST_F(IdentityTest, AnswersAlikeWithoutAContact) {
  auto unknown = Start("nobody", VERIFICATION_METHOD_SMS_OTP);
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  EXPECT_TRUE(notifier_.requests().empty());
  EXPECT_EQ(unknown->challenge.max_attempts, 5);
  absl::Status s =
      identity_->CompleteVerification("nobody", unknown->challenge.challenge_id, "000000")
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  // A TOTP challenge without an authenticator never completes either.
  clock_.Advance(absl::Seconds(30));
  auto totp = Start("nobody", VERIFICATION_METHOD_TOTP);
  ASSERT_TRUE(totp.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("", totp->challenge.challenge_id, "123456").status()));
}

TEST_F(IdentityTest, TotpVerifiesStronglyAndAcceptsEachCodeOnce) {
  const std::string secret = Enroll("cust-1");
  // The code that confirmed the enrollment cannot also verify.
  auto first = Start("cust-1", VERIFICATION_METHOD_TOTP);
  ASSERT_TRUE(first.ok());
  const std::string confirming = Hotp(secret, TotpStep(clock_.Now()), 6);
  absl::Status reused =
      identity_->CompleteVerification("cust-1", first->challenge.challenge_id, confirming)
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(reused)) << reused;
  EXPECT_EQ(Events().back().verification_failed().failure(),
            events::v1::VERIFICATION_FAILURE_CODE_REUSED);

  clock_.Advance(absl::Seconds(30));
  const std::string next = Hotp(secret, TotpStep(clock_.Now()), 6);
  auto completed =
      identity_->CompleteVerification("cust-1", first->challenge.challenge_id, next);
  ASSERT_TRUE(completed.ok()) << completed.status();
  EXPECT_EQ(completed->claims.level, auth::kLevelStrong);
  EXPECT_EQ(completed->claims.method, "totp");

  // A step later the used code is still within the skew, and still refused.
  clock_.Advance(absl::Seconds(30));
  auto second = Start("cust-1", VERIFICATION_METHOD_TOTP);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("cust-1", second->challenge.challenge_id, next)
          .status()));
  const std::string current = Hotp(secret, TotpStep(clock_.Now()), 6);
  EXPECT_TRUE(
      identity_->CompleteVerification("cust-1", second->challenge.challenge_id, current).ok());
}

TEST_F(IdentityTest, TotpAllowsOneStepOfSkew) {
  const std::string secret = Enroll("cust-1");
  clock_.Advance(absl::Minutes(5));
  auto started = Start("cust-1", VERIFICATION_METHOD_TOTP);
  ASSERT_TRUE(started.ok());
  const std::string id = started->challenge.challenge_id;
  const int64_t step = TotpStep(clock_.Now());
  EXPECT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("cust-1", id, Hotp(secret, step + 2, 6)).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("cust-1", id, Hotp(secret, step - 2, 6)).status()));
  EXPECT_TRUE(identity_->CompleteVerification("cust-1", id, Hotp(secret, step - 1, 6)).ok());
}

TEST_F(IdentityTest, EnrollmentNeedsAStrongProofToReplaceAnAuthenticator) {
  auto first = identity_->StartTotpEnrollment("cust-1", "", "cust-1", auth::kLevelBasic);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->secret_base32.size(), 32u);
  EXPECT_EQ(first->otpauth_uri,
            "otpauth://totp/Switchboard:cust-1?secret=" + first->secret_base32 +
                "&issuer=Switchboard&algorithm=SHA1&digits=6&period=30");
  EXPECT_EQ(first->enrollment.secret_sealed.find(Base32Decode(first->secret_base32)),
            std::string::npos);
  const std::string secret = Base32Decode(first->secret_base32);
  const std::string id = first->enrollment.enrollment_id;
  EXPECT_TRUE(absl::IsNotFound(
      identity_->ConfirmTotpEnrollment("cust-2", id, "000000").status()));
  absl::Status wrong = identity_->ConfirmTotpEnrollment(
      "cust-1", id, OtherCode(Hotp(secret, TotpStep(clock_.Now()), 6))).status();
  EXPECT_TRUE(absl::IsPermissionDenied(wrong)) << wrong;
  EXPECT_EQ(Payload(wrong, kAttemptsRemaining), 4);
  auto confirmed =
      identity_->ConfirmTotpEnrollment("cust-1", id, Hotp(secret, TotpStep(clock_.Now()), 6));
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  EXPECT_FALSE(confirmed->replaced);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->ConfirmTotpEnrollment("cust-1", id, "000000").status()));
  EXPECT_EQ(CountEvents(events::v1::Event::kTotpEnrolled), 1);

  absl::Status weak =
      identity_->StartTotpEnrollment("cust-1", "", "cust-1", auth::kLevelBasic).status();
  EXPECT_TRUE(absl::IsPermissionDenied(weak)) << weak;
  auto label = identity_->StartTotpEnrollment("cust-1", "Ana Lee/1", "cust-1",
                                              auth::kLevelStrong);
  ASSERT_TRUE(label.ok()) << label.status();
  EXPECT_NE(label->otpauth_uri.find("Switchboard:Ana%20Lee%2F1?"), std::string::npos);
}

TEST_F(IdentityTest, EnrollmentsExpireAndAreRateLimited) {
  auto started = identity_->StartTotpEnrollment("cust-1", "", "svc", std::nullopt);
  ASSERT_TRUE(started.ok());
  clock_.Advance(absl::Minutes(10));
  const std::string secret = Base32Decode(started->secret_base32);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->ConfirmTotpEnrollment("", started->enrollment.enrollment_id,
                                       Hotp(secret, TotpStep(clock_.Now()), 6))
          .status()));
  for (int i = 1; i < 5; ++i) {
    ASSERT_TRUE(identity_->StartTotpEnrollment("cust-1", "", "svc", std::nullopt).ok());
  }
  absl::Status limited =
      identity_->StartTotpEnrollment("cust-1", "", "svc", std::nullopt).status();
  EXPECT_TRUE(absl::IsResourceExhausted(limited)) << limited;
  EXPECT_EQ(Payload(limited, limits::kRetryAfter), 50 * 60);
}

TEST_F(IdentityTest, RejectsBadInputNamingTheField) {
  auto field_of = [](const absl::Status& s) {
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    return std::string(s.message().substr(0, s.message().find(':')));
  };
  EXPECT_EQ(field_of(Start("cust-1", VERIFICATION_METHOD_UNSPECIFIED).status()), "method");
  EXPECT_EQ(field_of(Start("cust-1", static_cast<common::v1::VerificationMethod>(9)).status()),
            "method");
  EXPECT_EQ(field_of(Start("", VERIFICATION_METHOD_EMAIL_OTP).status()), "customer_id");
  EXPECT_EQ(field_of(Start("cust 1", VERIFICATION_METHOD_EMAIL_OTP).status()), "customer_id");
  EXPECT_EQ(field_of(Start("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "bad session").status()),
            "session_id");
  EXPECT_EQ(field_of(identity_->StartVerification(
                         {"cust-1", VERIFICATION_METHOD_EMAIL_OTP, "", "fr"}).status()),
            "language");
  for (const char* code : {"", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12 456"}) {
    EXPECT_EQ(field_of(identity_->CompleteVerification("cust-1", "chl_x", code).status()),
              "code")
        << code;
  }
  EXPECT_EQ(field_of(identity_->CompleteVerification("cust-1", "", "123456").status()),
            "challenge_id");
  EXPECT_EQ(field_of(identity_->CompleteVerification("cust-1", std::string(65, 'a'),
                                                     "123456").status()),
            "challenge_id");
  EXPECT_TRUE(absl::IsNotFound(
      identity_->CompleteVerification("cust-1", "chl_unknown", "123456").status()));
  for (const char* email : {"ana", "ana@", "@example.com", "ana@example", "a b@example.com",
                            "ana@example.com.", "ana@.com"}) {
    EXPECT_EQ(field_of(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                                  email, "svc").status()),
              "address")
        << email;
  }
  EXPECT_EQ(field_of(identity_->RegisterContact(
                         "cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                         std::string(250, 'a') + "@example.com", "svc").status()),
            "address");
  for (const char* phone : {"8613800138000", "+1234567", "+1234567890123456", "+86 138",
                            "+0123456789"}) {
    EXPECT_EQ(field_of(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                                  phone, "svc").status()),
              "address")
        << phone;
  }
  EXPECT_EQ(field_of(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_TOTP,
                                                "ana@example.com", "svc").status()),
            "method");
  EXPECT_EQ(field_of(identity_->StartTotpEnrollment("cust-1", std::string(65, 'x'), "svc",
                                                    std::nullopt).status()),
            "account_label");
  EXPECT_EQ(field_of(identity_->ConfirmTotpEnrollment("", "enr_x", "abc").status()), "code");
}

TEST_F(IdentityTest, ContactsAreReplacedAndRemoved) {
  auto first = identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                          "+8613800138000", "accounts");
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(*first);
  auto retry = identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                          "+8613800138000", "accounts");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(*retry);
  EXPECT_EQ(CountEvents(events::v1::Event::kContactChanged), 1);
  auto removed =
      identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP, "", "sup-1");
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_TRUE(Events().back().contact_changed().removed());
  ASSERT_TRUE(Start("cust-1", VERIFICATION_METHOD_SMS_OTP).ok());
  EXPECT_TRUE(notifier_.requests().empty());
}

// The notices of change `change_id`, in the order they were handed over.
std::vector<v1::CodeDeliveryRequest> Notices(FakeNotifier& notifier,
                                             const std::string& change_id) {
  std::vector<v1::CodeDeliveryRequest> out;
  for (const auto& r : notifier.requests()) {
    if (r.account_change().change_id() == change_id) out.push_back(r);
  }
  return out;
}

TEST_F(IdentityTest, ASupervisorsContactChangeNotifiesWaitsAndAppliesAfterTheCooldown) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                         "+8613800138000", "accounts")
                  .ok());
  auto requested = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                                   "thief@example.com", "sup-7", "zh-CN");
  ASSERT_TRUE(requested.ok()) << requested.status();
  ASSERT_TRUE(requested->pending.has_value());
  EXPECT_TRUE(requested->replaced);
  const AccountChangeRecord change = *requested->pending;
  EXPECT_EQ(change.state, ChangeState::kPending);
  EXPECT_EQ(change.requested_by, "sup-7");
  EXPECT_EQ(change.effective_at, clock_.Now() + absl::Hours(24));

  // Both previous contacts are told, with one confirmation code.
  const std::vector<v1::CodeDeliveryRequest> notices = Notices(notifier_, change.change_id);
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].address(), "ana@example.com");
  EXPECT_EQ(notices[1].address(), "+8613800138000");
  for (const auto& notice : notices) {
    EXPECT_EQ(notice.purpose(), v1::DELIVERY_PURPOSE_ACCOUNT_CHANGE_NOTICE);
    EXPECT_EQ(notice.account_change().changed(), VERIFICATION_METHOD_EMAIL_OTP);
    EXPECT_EQ(notice.language(), "zh-CN");
    EXPECT_EQ(notice.code(), notices[0].code());
    EXPECT_EQ(notice.code().size(), 6u);
  }
  // The event names the supervisor; no address in it.
  ASSERT_EQ(CountEvents(events::v1::Event::kAccountChangeRequested), 1);
  for (const auto& e : Events()) {
    if (!e.has_account_change_requested()) continue;
    EXPECT_EQ(e.account_change_requested().requested_by(), "sup-7");
    EXPECT_EQ(e.account_change_requested().notified_size(), 2);
    EXPECT_EQ(e.DebugString().find("thief"), std::string::npos);
  }
  // Nothing changed yet: codes still go to the customer's own address.
  auto started = Start("cust-1");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(notifier_.requests().back().address(), "ana@example.com");
  EXPECT_EQ(notifier_.requests().back().purpose(), v1::DELIVERY_PURPOSE_VERIFICATION_CODE);
  // A retry returns the same change and tells nobody twice.
  auto retry = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                               "thief@example.com", "sup-7", "");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->pending->change_id, change.change_id);
  EXPECT_EQ(Notices(notifier_, change.change_id).size(), 2u);

  // The cool-down: nothing before it ends (restarts or not), then it applies.
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  EXPECT_EQ(*identity_->ApplyDueChanges(), 0);
  Restart(IdentityOptions());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*identity_->ApplyDueChanges(), 1);
  EXPECT_EQ(*identity_->ApplyDueChanges(), 0);
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(Start("cust-1").ok());
  EXPECT_EQ(notifier_.requests().back().address(), "thief@example.com");
  auto listed = identity_->ListAccountChanges("cust-1");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].state, ChangeState::kApplied);
  EXPECT_EQ((*listed)[0].resolution, v1::ACCOUNT_CHANGE_RESOLUTION_COOLDOWN_PASSED);
  const std::vector<events::v1::Event> all = Events();
  ASSERT_GE(all.size(), 2u);
  const events::v1::Event& applied = all[all.size() - 3];
  ASSERT_TRUE(applied.has_account_change_applied()) << applied.DebugString();
  EXPECT_EQ(applied.account_change_applied().requested_by(), "sup-7");
  EXPECT_FALSE(applied.account_change_applied().confirmed_early());
  const events::v1::Event& contact = all[all.size() - 2];
  ASSERT_TRUE(contact.has_contact_changed()) << contact.DebugString();
  EXPECT_EQ(contact.contact_changed().actor_id(), "sup-7");
  EXPECT_EQ(metrics_.changes_requested->Value(), 1);
  EXPECT_EQ(metrics_.changes_applied->Value(), 1);
  EXPECT_EQ(metrics_.changes_confirmed->Value(), 0);
}

TEST_F(IdentityTest, TheCustomerConfirmsOrCancelsAPendingChange) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP,
                                         "+8613800138000", "accounts")
                  .ok());
  auto change = [&](const std::string& address) {
    auto requested = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                                     address, "sup-1", "");
    EXPECT_TRUE(requested.ok()) << requested.status();
    return requested->pending->change_id;
  };
  // Confirmed with the code: applied at once.
  const std::string first = change("new@example.com");
  const std::string code = Notices(notifier_, first).at(0).code();
  EXPECT_EQ(identity_->ConfirmAccountChange("cust-2", first, code, std::nullopt, "cust-2")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  absl::Status wrong =
      identity_->ConfirmAccountChange("cust-1", first, OtherCode(code), std::nullopt, "cust-1")
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(wrong)) << wrong;
  EXPECT_EQ(Payload(wrong, kAttemptsRemaining), 4);
  EXPECT_TRUE(absl::IsPermissionDenied(
      identity_->ConfirmAccountChange("cust-1", first, "", std::nullopt, "cust-1").status()));
  auto confirmed = identity_->ConfirmAccountChange("cust-1", first, code, std::nullopt, "cust-1");
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  EXPECT_EQ(confirmed->state, ChangeState::kApplied);
  EXPECT_EQ(confirmed->resolution, v1::ACCOUNT_CHANGE_RESOLUTION_CONFIRMED_BY_CUSTOMER);
  EXPECT_EQ(CountEvents(events::v1::Event::kAccountChangeConfirmed), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kAccountChangeApplied), 1);
  // A retry succeeds; a cancel comes too late.
  EXPECT_TRUE(identity_->ConfirmAccountChange("cust-1", first, code, std::nullopt, "cust-1").ok());
  EXPECT_EQ(identity_->CancelAccountChange("cust-1", first, "cust-1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountEvents(events::v1::Event::kAccountChangeApplied), 1);

  // Cancelled: nothing changes, not even after the cool-down.
  const std::string second = change("other@example.com");
  auto cancelled = identity_->CancelAccountChange("cust-1", second, "cust-1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->resolution, v1::ACCOUNT_CHANGE_RESOLUTION_CANCELLED_BY_CUSTOMER);
  EXPECT_TRUE(identity_->CancelAccountChange("cust-1", second, "cust-1").ok());
  clock_.Advance(absl::Hours(25));
  EXPECT_EQ(*identity_->ApplyDueChanges(), 0);
  EXPECT_EQ(identity_
                ->ConfirmAccountChange("cust-1", second, Notices(notifier_, second).at(0).code(),
                                       std::nullopt, "cust-1")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Start("cust-1").ok());
  EXPECT_EQ(notifier_.requests().back().address(), "new@example.com");

  // A verification of the customer's proves it too; staff need the code.
  const std::string third = change("third@example.com");
  EXPECT_EQ(identity_->ConfirmAccountChange("", third, "", std::nullopt, "sup-2").status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(
      identity_->ConfirmAccountChange("cust-1", third, "", auth::kLevelBasic, "cust-1").ok());
  const std::string fourth = change("fourth@example.com");
  auto by_staff = identity_->ConfirmAccountChange(
      "", fourth, Notices(notifier_, fourth).at(0).code(), std::nullopt, "sup-2");
  ASSERT_TRUE(by_staff.ok()) << by_staff.status();
  EXPECT_EQ(by_staff->resolution, v1::ACCOUNT_CHANGE_RESOLUTION_CONFIRMED_WITH_CODE);
  EXPECT_EQ(by_staff->resolved_by, "sup-2");

  // A code has 5 tries.
  const std::string fifth = change("fifth@example.com");
  const std::string fifth_code = Notices(notifier_, fifth).at(0).code();
  for (int i = 0; i < kChangeCodeAttempts; ++i) {
    (void)identity_->ConfirmAccountChange("cust-1", fifth, OtherCode(fifth_code), std::nullopt,
                                          "cust-1");
  }
  EXPECT_EQ(identity_->ConfirmAccountChange("cust-1", fifth, fifth_code, std::nullopt, "cust-1")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(metrics_.changes_requested->Value(), 5);
  EXPECT_EQ(metrics_.changes_confirmed->Value(), 3);
  EXPECT_EQ(metrics_.changes_applied->Value(), 3);
  EXPECT_EQ(metrics_.changes_cancelled->Value(), 1);
}

TEST_F(IdentityTest, ANewerChangeOfTheSameContactSupersedesAPendingOne) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  auto first = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                               "a@example.com", "sup-1", "");
  ASSERT_TRUE(first.ok());
  clock_.Advance(absl::Seconds(1));
  auto second = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                                "b@example.com", "sup-2", "");
  ASSERT_TRUE(second.ok());
  auto listed = *identity_->ListAccountChanges("cust-1");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].change_id, second->pending->change_id);
  EXPECT_EQ(listed[1].resolution, v1::ACCOUNT_CHANGE_RESOLUTION_SUPERSEDED);
  // Back to the address the customer has: the pending change goes, nothing
  // new is asked.
  auto back = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                              "ana@example.com", "sup-3", "");
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->pending.has_value());
  const auto after_back = identity_->ListAccountChanges("cust-1");
  ASSERT_TRUE(after_back.ok()) << after_back.status();
  for (const AccountChangeRecord& c : *after_back) {
    EXPECT_NE(c.state, ChangeState::kPending) << c.change_id;
  }
  // A service's change applies at once and supersedes a supervisor's.
  auto third = identity_->RequestContactChange("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                               "c@example.com", "sup-1", "");
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "d@example.com", "accounts")
                  .ok());
  clock_.Advance(absl::Hours(25));
  EXPECT_EQ(*identity_->ApplyDueChanges(), 0);
  ASSERT_TRUE(Start("cust-1").ok());
  EXPECT_EQ(notifier_.requests().back().address(), "d@example.com");
  EXPECT_EQ(CountEvents(events::v1::Event::kAccountChangeCancelled), 3);
}

TEST_F(IdentityTest, ASupervisorsAuthenticatorWaitsWhileTheOldOneStillWorks) {
  const std::string old_secret = Enroll("cust-1");
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  auto started = identity_->StartTotpEnrollment("cust-1", "", "sup-1", std::nullopt, "",
                                                /*by_supervisor=*/true);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string new_secret = Base32Decode(started->secret_base32);
  auto confirmed = identity_->ConfirmTotpEnrollment(
      "", started->enrollment.enrollment_id, Hotp(new_secret, TotpStep(clock_.Now()), 6), "e-1");
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  ASSERT_TRUE(confirmed->pending.has_value());
  EXPECT_TRUE(confirmed->replaced);
  EXPECT_EQ(confirmed->pending->method, VERIFICATION_METHOD_TOTP);
  EXPECT_EQ(confirmed->pending->requested_by, "sup-1");
  EXPECT_EQ(Notices(notifier_, confirmed->pending->change_id).size(), 1u);
  EXPECT_EQ(CountEvents(events::v1::Event::kTotpEnrolled), 1);  // the first, by Enroll
  // A retry of the confirmation answers with the same pending change.
  auto replay = identity_->ConfirmTotpEnrollment(
      "", started->enrollment.enrollment_id, Hotp(new_secret, TotpStep(clock_.Now()), 6), "e-1");
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->pending->change_id, confirmed->pending->change_id);

  const auto verify_with = [&](const std::string& secret) {
    clock_.Advance(absl::Seconds(31));
    auto totp = Start("cust-1", VERIFICATION_METHOD_TOTP);
    EXPECT_TRUE(totp.ok()) << totp.status();
    return identity_
        ->CompleteVerification("cust-1", totp->challenge.challenge_id,
                               Hotp(secret, TotpStep(clock_.Now()), 6))
        .status();
  };
  EXPECT_TRUE(verify_with(old_secret).ok());
  clock_.Advance(absl::Hours(24));
  EXPECT_EQ(*identity_->ApplyDueChanges(), 1);
  EXPECT_TRUE(absl::IsPermissionDenied(verify_with(old_secret)));
  EXPECT_TRUE(verify_with(new_secret).ok());
  EXPECT_EQ(CountEvents(events::v1::Event::kTotpEnrolled), 2);
}

TEST_F(IdentityTest, AChangeWhoseNoticeCannotBeSentIsNotRecorded) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  notifier_.set_fail(true);
  EXPECT_TRUE(absl::IsUnavailable(identity_
                                      ->RequestContactChange("cust-1",
                                                             VERIFICATION_METHOD_EMAIL_OTP,
                                                             "x@example.com", "sup-1", "")
                                      .status()));
  notifier_.set_fail(false);
  EXPECT_TRUE(identity_->ListAccountChanges("cust-1")->empty());
  EXPECT_EQ(CountEvents(events::v1::Event::kAccountChangeRequested), 0);
  // A customer with nothing to notify, or to prove more with, confirms by
  // their own call alone.
  auto first = identity_->RequestContactChange("cust-new", VERIFICATION_METHOD_EMAIL_OTP,
                                               "first@example.com", "sup-1", "");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->pending->notified.empty());
  EXPECT_FALSE(first->replaced);
  EXPECT_TRUE(identity_
                  ->ConfirmAccountChange("cust-new", first->pending->change_id, "",
                                         std::nullopt, "cust-new")
                  .ok());
}

TEST_F(IdentityTest, ValidateTokenReasons) {
  const std::string id = StartEmail("cust-1");
  clock_.Advance(absl::Seconds(1));
  auto completed = identity_->CompleteVerification("", id, notifier_.CodeFor(id));
  ASSERT_TRUE(completed.ok());
  const std::string token = completed->token;
  const absl::Time now = clock_.Now();
  auto reason = [&](const std::string& t, const std::string& customer,
                    const std::string& session, common::v1::VerificationLevel level,
                    absl::Time at) {
    return CheckVerificationToken(tokens_.verifier(), t, customer, session, level, at).reason;
  };
  const auto kAny = common::v1::VERIFICATION_LEVEL_UNSPECIFIED;
  EXPECT_EQ(reason(token, "cust-1", "", common::v1::VERIFICATION_LEVEL_BASIC, now),
            v1::INVALID_TOKEN_REASON_UNSPECIFIED);
  EXPECT_EQ(reason(token, "", "sess-any", kAny, now),  // Unbound tokens fit any session.
            v1::INVALID_TOKEN_REASON_UNSPECIFIED);
  EXPECT_EQ(reason(token, "", "", common::v1::VERIFICATION_LEVEL_STRONG, now),
            v1::INVALID_TOKEN_REASON_LEVEL_TOO_LOW);
  EXPECT_EQ(reason(token, "cust-2", "", kAny, now), v1::INVALID_TOKEN_REASON_WRONG_CUSTOMER);
  EXPECT_EQ(reason(token, "", "", kAny, now + absl::Minutes(15)),
            v1::INVALID_TOKEN_REASON_EXPIRED);
  std::string tampered = token;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(tampered, "", "", kAny, now), v1::INVALID_TOKEN_REASON_BAD_SIGNATURE);
  // A payload edited to name another customer fails the signature.
  const size_t dot = token.find('.');
  std::string edited = token;
  edited[dot + 5] = edited[dot + 5] == 'x' ? 'y' : 'x';
  EXPECT_NE(reason(edited, "", "", kAny, now), v1::INVALID_TOKEN_REASON_UNSPECIFIED);
  EXPECT_EQ(reason("not a token", "", "", kAny, now), v1::INVALID_TOKEN_REASON_MALFORMED);
  auth::Principal principal{"cust-1", auth::Role::kCustomer, now + absl::Hours(1)};
  // An access token is signed with a key that is not identity's.
  EXPECT_EQ(reason(tokens_.Access(principal, now), "", "", kAny, now),
            v1::INVALID_TOKEN_REASON_BAD_SIGNATURE);
  // Identity's key with another audience.
  auth::Claims access_claims;
  access_claims.audience = std::string(auth::kAccessAudience);
  access_claims.subject = "cust-1";
  access_claims.issued_at = now;
  access_claims.expires_at = now + absl::Minutes(5);
  EXPECT_EQ(reason(*tokens_.verification_signer().Sign(access_claims), "", "", kAny, now),
            v1::INVALID_TOKEN_REASON_WRONG_AUDIENCE);
  // Another deployment's identity key, and a service's key, forge nothing.
  testing::TestTokens other("identity");
  auth::VerificationClaims claims = completed->claims;
  EXPECT_EQ(reason(*auth::SignVerificationToken(other.verification_signer(), claims), "", "",
                   kAny, now),
            v1::INVALID_TOKEN_REASON_BAD_SIGNATURE);
  const auth::TokenSigner sessions_key(tokens_.keys().services.at("sessions"),
                                       std::string(auth::kVerificationIssuer));
  EXPECT_EQ(reason(*auth::SignVerificationToken(sessions_key, claims), "", "", kAny, now),
            v1::INVALID_TOKEN_REASON_BAD_SIGNATURE);
  claims.session_id = "sess-1";
  const std::string bound = *auth::SignVerificationToken(tokens_.verification_signer(), claims);
  EXPECT_EQ(reason(bound, "", "sess-2", kAny, now), v1::INVALID_TOKEN_REASON_WRONG_SESSION);
  EXPECT_EQ(reason(bound, "", "sess-1", kAny, now), v1::INVALID_TOKEN_REASON_UNSPECIFIED);
}

TEST_F(IdentityTest, StateSurvivesARestart) {
  IdentityOptions options;
  options.lockout_failures = 2;
  Rebuild(options);
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  ASSERT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("cust-1", id, OtherCode(code)).status()));
  Restart(options);
  // Attempts, the challenge and the failure count came back.
  absl::Status s = identity_->CompleteVerification("cust-1", id, OtherCode(code)).status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  Restart(options);
  EXPECT_TRUE(absl::IsResourceExhausted(Start("cust-1").status()));
}

TEST_F(IdentityTest, SweepForgetsOldChallenges) {
  const std::string id = StartEmail("cust-1");
  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(*identity_->Sweep(), 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->CompleteVerification("cust-1", id, "123456").status()));
  clock_.Advance(absl::Minutes(36));
  EXPECT_EQ(*identity_->Sweep(), 1);
  EXPECT_EQ(Rows("challenges"), 0);
  EXPECT_TRUE(absl::IsNotFound(
      identity_->CompleteVerification("cust-1", id, "123456").status()));
}

TEST_F(IdentityTest, AFailedDeliveryIsUnavailableCountedAndStartsNothing) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  notifier_.set_fail(true);
  absl::Status s = Start("cust-1").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(metrics_.delivery_failures->Value(), 1);
  EXPECT_EQ(Rows("challenges"), 0);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationStarted), 0);
  // Nothing counted against the rate limit: starting again needs no wait.
  notifier_.set_fail(false);
  EXPECT_TRUE(Start("cust-1").ok());
}

TEST_F(IdentityTest, AFailedCommitLeavesNothingBehindAndLaterCallsDecideFromDisk) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  gate_->Close();
  Background<absl::StatusOr<Identity::Started>> failing([&] { return Start("cust-1"); });
  ASSERT_TRUE(gate_->AwaitHeld(1));
  gate_->FailHeld();
  EXPECT_FALSE(failing.result().ok());
  gate_->Open();
  EXPECT_EQ(Rows("challenges"), 0);
  // No restart needed, and the failed start counted nothing.
  auto started = Start("cust-1");
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string id = started->challenge.challenge_id;
  EXPECT_TRUE(identity_->CompleteVerification("cust-1", id, notifier_.CodeFor(id)).ok());
  EXPECT_TRUE(Start("cust-2").ok());
}

TEST_F(IdentityTest, MetricsCountOutcomesLockoutsAndRefusals) {
  IdentityOptions options;
  options.lockout_failures = 2;
  Rebuild(options);
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  (void)identity_->CompleteVerification("cust-1", id, OtherCode(code));
  (void)identity_->CompleteVerification("cust-1", id, OtherCode(code));
  (void)Start("cust-1");
  EXPECT_EQ(metrics_.outcome(VERIFICATION_METHOD_EMAIL_OTP, Outcome::kWrongCode).Value(), 2);
  EXPECT_EQ(metrics_.lockouts->Value(), 1);
  EXPECT_EQ(metrics_.rate_limited_start->Value(), 1);
  EXPECT_EQ(metrics_.started(VERIFICATION_METHOD_EMAIL_OTP).Value(), 1);
}

// Durable retries: a client calls, its write is held at the gate (queued,
// not yet on disk), and it retries with the same request id. The retry waits
// its turn behind the first call and must not be answered before the first
// write's commit ends; with `fail_first` that commit fails, and the retry
// must not be answered before its own commit either.
class IdentityRetryTest : public IdentityTest {
 protected:
  template <typename T>
  std::pair<T, T> RetryWhileTheFirstIsHeld(const std::string& customer,
                                           std::function<T()> call, bool fail_first) {
    gate_->Close();
    Background<T> first(call);
    EXPECT_TRUE(gate_->AwaitHeld(1));
    Background<T> retry(call);
    EXPECT_TRUE(WaitFor([&] { return identity_->calls_in_progress(customer) == 2; }))
        << "the retry did not wait for the first call";
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

  absl::StatusOr<Identity::Started> StartWithId(const std::string& customer,
                                                const std::string& request_id) {
    return identity_->StartVerification(
        {customer, VERIFICATION_METHOD_EMAIL_OTP, "sess-1", "", request_id});
  }
};

TEST_F(IdentityRetryTest, ARetriedStartGetsTheFirstChallengeOnceItIsDurable) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::Started>>(
      "cust-1", [&] { return StartWithId("cust-1", "start-1"); }, /*fail_first=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->challenge.challenge_id, first->challenge.challenge_id);
  EXPECT_EQ(retry->challenge.expires_at, first->challenge.expires_at);
  EXPECT_EQ(retry->resend_available_at, first->resend_available_at);
  EXPECT_EQ(notifier_.requests().size(), 1u) << "a retry sends no second code";
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationStarted), 1);
  // Neither counted twice: a new start is limited by the first only.
  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(StartWithId("cust-1", "start-2").ok());
  // The key cannot be reused for another verification.
  EXPECT_TRUE(absl::IsInvalidArgument(
      identity_->StartVerification({"cust-1", VERIFICATION_METHOD_SMS_OTP, "sess-1", "", "start-1"})
          .status()));
}

TEST_F(IdentityRetryTest, ARetriedStartWhoseFirstCommitFailedStartsAfresh) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::Started>>(
      "cust-1", [&] { return StartWithId("cust-1", "start-1"); }, /*fail_first=*/true);
  EXPECT_FALSE(first.ok());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(Rows("challenges"), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationStarted), 1);
  const std::string id = retry->challenge.challenge_id;
  auto completed = identity_->CompleteVerification("cust-1", id, notifier_.CodeFor(id));
  EXPECT_TRUE(completed.ok()) << completed.status();
}

TEST_F(IdentityRetryTest, ARetriedCompletionGetsTheSameClaimsOnceItIsDurable) {
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::Completed>>(
      "cust-1", [&] { return identity_->CompleteVerification("cust-1", id, code, "done-1"); },
      /*fail_first=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(ClaimsOf(retry->token), ClaimsOf(first->token));
  EXPECT_TRUE(auth::VerifyVerificationToken(tokens_.verifier(), first->token, clock_.Now()).ok());
  EXPECT_EQ(retry->claims.token_id, first->claims.token_id);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationSucceeded), 1);
  // The same key with another code, or the code without the key, is no replay.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->CompleteVerification("cust-1", id, OtherCode(code), "done-1").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->CompleteVerification("cust-1", id, code, "done-2").status()));
  // And it survives a restart.
  Restart(IdentityOptions());
  auto later = identity_->CompleteVerification("cust-1", id, code, "done-1");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(ClaimsOf(later->token), ClaimsOf(first->token));
}

TEST_F(IdentityRetryTest, ARetriedCompletionWhoseFirstCommitFailedIssuesItsOwnToken) {
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::Completed>>(
      "cust-1", [&] { return identity_->CompleteVerification("cust-1", id, code, "done-1"); },
      /*fail_first=*/true);
  EXPECT_FALSE(first.ok());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationSucceeded), 1);
  auto claims = auth::VerifyVerificationToken(tokens_.verifier(), retry->token, clock_.Now());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->token_id, retry->claims.token_id);
}

TEST_F(IdentityRetryTest, ARetriedContactIsAnsweredOnceItIsDurableOrWrittenByTheRetry) {
  const auto call = [&] {
    return identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                      "ana@example.com", "accounts");
  };
  auto [failed, rewritten] =
      RetryWhileTheFirstIsHeld<absl::StatusOr<bool>>("cust-1", call, /*fail_first=*/true);
  EXPECT_FALSE(failed.ok());
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_FALSE(*rewritten) << "nothing existed before";
  EXPECT_EQ(CountEvents(events::v1::Event::kContactChanged), 1);

  const auto change = [&] {
    return identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                      "ana.lee@example.com", "accounts");
  };
  auto [first, retry] =
      RetryWhileTheFirstIsHeld<absl::StatusOr<bool>>("cust-1", change, /*fail_first=*/false);
  ASSERT_TRUE(first.ok() && retry.ok());
  EXPECT_EQ(CountEvents(events::v1::Event::kContactChanged), 2);
}

TEST_F(IdentityRetryTest, ARetriedEnrollmentGetsTheSameSecretAndItsConfirmationTheSameAnswer) {
  const auto start = [&] {
    return identity_->StartTotpEnrollment("cust-1", "Ana", "support-tool", std::nullopt,
                                          "enroll-1");
  };
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::EnrollmentStarted>>(
      "cust-1", start, /*fail_first=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->enrollment.enrollment_id, first->enrollment.enrollment_id);
  EXPECT_EQ(retry->secret_base32, first->secret_base32);
  EXPECT_EQ(retry->otpauth_uri, first->otpauth_uri);
  EXPECT_EQ(Rows("enrollments"), 1);

  const std::string secret = Base32Decode(first->secret_base32);
  const std::string code = Hotp(secret, TotpStep(clock_.Now()), 6);
  // A lambda cannot capture a structured binding in C++17 (clang refuses).
  const std::string enrollment_id = first->enrollment.enrollment_id;
  const auto confirm = [&] {
    return identity_->ConfirmTotpEnrollment("cust-1", enrollment_id, code, "confirm-1");
  };
  auto [confirmed, again] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::EnrollmentConfirmed>>(
      "cust-1", confirm, /*fail_first=*/false);
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->enrolled_at, confirmed->enrolled_at);
  EXPECT_EQ(CountEvents(events::v1::Event::kTotpEnrolled), 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      identity_->ConfirmTotpEnrollment("cust-1", first->enrollment.enrollment_id, code,
                                       "confirm-2")
          .status()));
}

TEST_F(IdentityRetryTest, ARetriedEnrollmentWhoseFirstCommitFailedGetsANewSecret) {
  const auto start = [&] {
    return identity_->StartTotpEnrollment("cust-1", "", "support-tool", std::nullopt,
                                          "enroll-1");
  };
  auto [first, retry] = RetryWhileTheFirstIsHeld<absl::StatusOr<Identity::EnrollmentStarted>>(
      "cust-1", start, /*fail_first=*/true);
  EXPECT_FALSE(first.ok());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(Rows("enrollments"), 1);
}

TEST_F(IdentityTest, AFullWriteQueueRefusesEveryWriteBeforeAnythingIsDecided) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  gate_->Close();
  for (int i = 0; i <= kMaxQueue; ++i) {
    committer_->Submit([](storage::Database&) { return absl::OkStatus(); }, [](absl::Status) {});
    if (i == 0) ASSERT_TRUE(gate_->AwaitHeld(1));
  }
  const std::vector<absl::Status> refused = {
      Start("cust-1").status(),
      identity_->CompleteVerification("cust-1", "chl_x", "123456").status(),
      identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP, "+8613800138000", "svc")
          .status(),
      identity_->StartTotpEnrollment("cust-1", "", "svc", std::nullopt).status(),
      identity_->ConfirmTotpEnrollment("", "enr_x", "123456").status()};
  for (const absl::Status& s : refused) {
    EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
    EXPECT_EQ(limits::RetryAfterSeconds(s), 1) << s;
  }
  EXPECT_TRUE(notifier_.requests().empty()) << "a refused start sent a code";
  gate_->Open();
  EXPECT_TRUE(WaitFor([&] { return committer_->queued() == 0; }));
  EXPECT_TRUE(Start("cust-1").ok()) << "the refused start counted against the rate limit";
}

TEST_F(IdentityTest, MemoryHoldsOnlyTheCallsInProgress) {
  for (int i = 0; i < 200; ++i) {
    const std::string customer = absl::StrCat("cust-", i);
    ASSERT_TRUE(identity_->RegisterContact(customer, VERIFICATION_METHOD_EMAIL_OTP,
                                           customer + "@example.com", "accounts")
                    .ok());
    ASSERT_TRUE(Start(customer).ok());
  }
  EXPECT_EQ(identity_->customers_in_progress(), 0u);
  EXPECT_EQ(Rows("customers"), 200);
  EXPECT_EQ(Rows("challenges"), 200);
}

TEST_F(IdentityTest, SweepDeletesInBatchesThroughTheExpiryIndex) {
  IdentityOptions options;
  options.sweep_batch = 2;
  options.resend_interval = absl::ZeroDuration();
  Rebuild(options);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Start("cust-1").ok());
  ASSERT_TRUE(identity_->StartTotpEnrollment("cust-1", "", "svc", std::nullopt).ok());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(Start("cust-1").ok());
  EXPECT_EQ(*identity_->Sweep(), 6);
  EXPECT_EQ(Rows("challenges"), 1);
  EXPECT_EQ(Rows("enrollments"), 0);
  auto reader = storage::Database::Open({path_});
  auto plan = (*reader)->Prepare(
      "EXPLAIN QUERY PLAN SELECT challenge_id FROM challenges WHERE expires_at_micros < 1");
  ASSERT_TRUE(*plan->Step());
  EXPECT_NE(plan->ColumnText(3).find("challenges_by_expiry"), std::string::npos)
      << plan->ColumnText(3);
}

TEST_F(IdentityTest, OneCustomersBurstCannotTieUpEveryWorker) {
  IdentityOptions options;
  options.max_calls_per_customer = 2;
  Rebuild(options);
  gate_->Close();
  Background<absl::StatusOr<bool>> first([&] {
    return identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "a@example.com",
                                      "svc");
  });
  ASSERT_TRUE(gate_->AwaitHeld(1));
  Background<absl::StatusOr<bool>> second([&] {
    return identity_->RegisterContact("cust-1", VERIFICATION_METHOD_SMS_OTP, "+8613800138000",
                                      "svc");
  });
  ASSERT_TRUE(WaitFor([&] { return identity_->calls_in_progress("cust-1") == 2; }));
  absl::Status third = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(third)) << third;
  EXPECT_EQ(limits::RetryAfterSeconds(third), 1);
  EXPECT_EQ(metrics_.rate_limited_busy->Value(), 1);
  gate_->Open();
  EXPECT_TRUE(first.result().ok());
  EXPECT_TRUE(second.result().ok());
  EXPECT_TRUE(Start("cust-1").ok());
}

}  // namespace
}  // namespace switchboard::identity
