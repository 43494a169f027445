#include "services/identity/identity.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "prometheus/registry.h"
#include "services/identity/totp.h"

namespace switchboard::identity {
namespace {

using common::v1::VERIFICATION_METHOD_EMAIL_OTP;
using common::v1::VERIFICATION_METHOD_SMS_OTP;
using common::v1::VERIFICATION_METHOD_TOTP;
using common::v1::VERIFICATION_METHOD_UNSPECIFIED;

// Keeps what was committed in memory; can be told to fail commits.
class FakeIdentityStore : public IdentityStore {
 public:
  absl::StatusOr<Contents> Load() override {
    absl::MutexLock lock(&mu_);
    Contents contents;
    for (const auto& [id, c] : customers_) contents.customers.push_back(c);
    for (const auto& [id, c] : challenges_) contents.challenges.push_back(c);
    for (const auto& [id, e] : enrollments_) contents.enrollments.push_back(e);
    return contents;
  }
  void Apply(IdentityWrite write, std::function<void(absl::Status)> done) override {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (fail_) {
        status = absl::InternalError("disk full");
      } else {
        for (const auto& c : write.customers) customers_[c.customer_id] = c;
        for (const auto& c : write.challenges) challenges_[c.challenge_id] = c;
        for (const auto& e : write.enrollments) enrollments_[e.enrollment_id] = e;
        for (const auto& id : write.deleted_challenge_ids) challenges_.erase(id);
        for (const auto& id : write.deleted_enrollment_ids) enrollments_.erase(id);
        for (const auto& e : write.events) events_.push_back(e);
      }
    }
    done(status);
  }
  std::vector<events::v1::Event> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  size_t challenge_count() {
    absl::MutexLock lock(&mu_);
    return challenges_.size();
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, CustomerRecord> customers_;
  std::map<std::string, ChallengeRecord> challenges_;
  std::map<std::string, EnrollmentRecord> enrollments_;
  std::vector<events::v1::Event> events_;
  bool fail_ = false;
};

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

class IdentityTest : public ::testing::Test {
 protected:
  IdentityTest() { Rebuild(IdentityOptions()); }

  void Rebuild(IdentityOptions options) {
    identity_ = std::make_unique<Identity>(&store_, &clock_, &metrics_, &hasher_, &box_,
                                           &tokens_, &notifier_, options);
    ASSERT_TRUE(identity_->Load().ok());
  }

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
    for (const auto& e : store_.events()) n += e.payload_case() == payload;
    return n;
  }

  FakeClock clock_;
  FakeIdentityStore store_;
  FakeNotifier notifier_;
  prometheus::Registry registry_;
  IdentityMetrics metrics_{registry_};
  CodeHasher hasher_{std::string(32, 'h')};
  SecretBox box_{std::string(32, 's')};
  auth::TokenCodec tokens_{std::string(32, 't')};
  std::unique_ptr<Identity> identity_;
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
  auto claims = auth::VerifyVerificationToken(tokens_, completed->token, clock_.Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->method, "email_otp");
  EXPECT_EQ(claims->expires_at, claims->issued_at + absl::Minutes(15));

  TokenCheck check = CheckVerificationToken(tokens_, completed->token, "cust-2", "",
                                            common::v1::VERIFICATION_LEVEL_UNSPECIFIED,
                                            clock_.Now());
  EXPECT_EQ(check.reason, v1::INVALID_TOKEN_REASON_WRONG_CUSTOMER);

  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationStarted), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kVerificationSucceeded), 1);
  EXPECT_EQ(CountEvents(events::v1::Event::kContactChanged), 1);
  // No event carries the code, the address or the token.
  for (const auto& event : store_.events()) {
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
  const auto events = store_.events();
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
  for (const auto& e : store_.events()) {
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
        EXPECT_EQ(Payload(s, kRetryAfter), 1800);
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
  EXPECT_EQ(Payload(start, kRetryAfter), 1800 - 30);
  // Another customer is not affected.
  EXPECT_TRUE(Start("cust-2").ok());

  clock_.Advance(absl::Minutes(29));
  EXPECT_TRUE(absl::IsResourceExhausted(Start("cust-1").status()));
  clock_.Advance(absl::Seconds(31));
  const std::string id = StartEmail("cust-1");
  EXPECT_TRUE(identity_->CompleteVerification("cust-1", id, notifier_.CodeFor(id)).ok());
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
  EXPECT_EQ(Payload(s, kRetryAfter), 1800);
}

TEST_F(IdentityTest, StartingIsRateLimitedPerCustomer) {
  ASSERT_TRUE(Start("cust-1").ok());
  absl::Status again = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(again)) << again;
  EXPECT_EQ(Payload(again, kRetryAfter), 30);
  EXPECT_TRUE(Start("cust-2").ok());
  for (int i = 1; i < 10; ++i) {
    clock_.Advance(absl::Seconds(30));
    ASSERT_TRUE(Start("cust-1").ok()) << i;
  }
  clock_.Advance(absl::Seconds(30));
  absl::Status hourly = Start("cust-1").status();
  EXPECT_TRUE(absl::IsResourceExhausted(hourly)) << hourly;
  // The first start leaves the window an hour after it.
  EXPECT_EQ(Payload(hourly, kRetryAfter), 3600 - 10 * 30);
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
  EXPECT_EQ(store_.events().back().verification_failed().failure(),
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
  EXPECT_EQ(Payload(limited, kRetryAfter), 50 * 60);
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
  EXPECT_TRUE(store_.events().back().contact_changed().removed());
  ASSERT_TRUE(Start("cust-1", VERIFICATION_METHOD_SMS_OTP).ok());
  EXPECT_TRUE(notifier_.requests().empty());
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
    return CheckVerificationToken(tokens_, t, customer, session, level, at).reason;
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
  EXPECT_EQ(reason(*auth::MintAccessToken(tokens_, principal, now), "", "", kAny, now),
            v1::INVALID_TOKEN_REASON_WRONG_AUDIENCE);
  auth::TokenCodec other(std::string(32, 'x'));
  auth::VerificationClaims claims = completed->claims;
  EXPECT_EQ(reason(*auth::SignVerificationToken(other, claims), "", "", kAny, now),
            v1::INVALID_TOKEN_REASON_BAD_SIGNATURE);
  claims.session_id = "sess-1";
  const std::string bound = *auth::SignVerificationToken(tokens_, claims);
  EXPECT_EQ(reason(bound, "", "sess-2", kAny, now), v1::INVALID_TOKEN_REASON_WRONG_SESSION);
  EXPECT_EQ(reason(bound, "", "sess-1", kAny, now), v1::INVALID_TOKEN_REASON_UNSPECIFIED);
}

TEST_F(IdentityTest, StateSurvivesAReload) {
  IdentityOptions options;
  options.lockout_failures = 2;
  Rebuild(options);
  const std::string id = StartEmail("cust-1");
  const std::string code = notifier_.CodeFor(id);
  ASSERT_TRUE(absl::IsPermissionDenied(
      identity_->CompleteVerification("cust-1", id, OtherCode(code)).status()));
  Rebuild(options);
  // Attempts, the challenge and the failure count came back.
  absl::Status s = identity_->CompleteVerification("cust-1", id, OtherCode(code)).status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  Rebuild(options);
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
  EXPECT_EQ(store_.challenge_count(), 0u);
  EXPECT_TRUE(absl::IsNotFound(
      identity_->CompleteVerification("cust-1", id, "123456").status()));
}

TEST_F(IdentityTest, AFailedDeliveryIsUnavailableAndCounted) {
  ASSERT_TRUE(identity_->RegisterContact("cust-1", VERIFICATION_METHOD_EMAIL_OTP,
                                         "ana@example.com", "accounts")
                  .ok());
  notifier_.set_fail(true);
  absl::Status s = Start("cust-1").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(metrics_.delivery_failures->Value(), 1);
  notifier_.set_fail(false);
  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(Start("cust-1").ok());
}

TEST_F(IdentityTest, AFailedCommitStopsWrites) {
  store_.set_fail(true);
  EXPECT_FALSE(Start("cust-1").ok());
  store_.set_fail(false);
  EXPECT_TRUE(absl::IsUnavailable(Start("cust-2").status()));
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

}  // namespace
}  // namespace switchboard::identity
