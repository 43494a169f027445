#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "services/identity/crypto.h"
#include "services/identity/metrics.h"
#include "services/identity/model.h"
#include "services/identity/notifier.h"
#include "services/identity/store.h"
#include "switchboard/identity/v1/identity_service.pb.h"

namespace switchboard::identity {

struct IdentityOptions {
  // How long a one-time code is accepted (at most kMaxCodeTtl).
  absl::Duration code_ttl = absl::Minutes(5);
  // Attempts per challenge.
  int max_attempts = 5;
  // StartVerification at most once per resend_interval and
  // max_starts_per_hour times per rolling hour, per customer.
  absl::Duration resend_interval = absl::Seconds(30);
  int max_starts_per_hour = 10;
  // lockout_failures failed attempts within failure_window (across
  // challenges) lock the customer out for `lockout`.
  int lockout_failures = 10;
  absl::Duration failure_window = absl::Hours(1);
  absl::Duration lockout = absl::Minutes(30);
  // Lifetime of verification tokens (at most kMaxTokenTtl).
  absl::Duration token_ttl = absl::Minutes(15);
  // StartTotpEnrollment at most this many times per rolling hour.
  int max_enrollments_per_hour = 5;
  // How long used, replaced and expired challenges and enrollments are
  // remembered (so that late attempts get FAILED_PRECONDITION rather than
  // NOT_FOUND) before Sweep deletes them.
  absl::Duration retention = absl::Hours(1);
};

inline constexpr absl::Duration kMaxCodeTtl = absl::Minutes(10);
inline constexpr absl::Duration kMaxTokenTtl = absl::Hours(1);
inline constexpr absl::Duration kEnrollmentTtl = absl::Minutes(10);
inline constexpr int kEnrollmentAttempts = 5;
inline constexpr int kCodeDigits = 6;

// Status payloads the gRPC adapter turns into trailing metadata of the same
// name (whole numbers as decimal text): seconds until a retry can succeed on
// RESOURCE_EXHAUSTED, and tries left on PERMISSION_DENIED for a wrong code.
inline constexpr char kRetryAfter[] = "retry-after";
inline constexpr char kAttemptsRemaining[] = "attempts-remaining";

// The identity logic: challenges, codes, attempt limits, lockouts, contacts,
// authenticators and verification tokens (see identity_service.proto for
// the contract of each call).
//
// State lives in memory and in the store: every decision is made under one
// lock (so attempt caps, rate limits and single use hold exactly under
// concurrent calls), queued to the store in that order, and answered only
// after it is committed, with its events. If a commit fails, the failed
// write may already be visible in memory, so the logic refuses further
// writes with UNAVAILABLE until restarted.
//
// Secrets: a one-time code exists in plaintext only while StartVerification
// hands it to the notifier; memory and store keep its keyed hash. TOTP
// secrets are kept sealed and opened only to check a code. No error message,
// log line or event holds a code, secret, token or contact address.
//
// Thread-safe. Blocking (waits for commits): call from worker threads.
class Identity {
 public:
  // None owned; all must outlive the logic.
  Identity(IdentityStore* store, Clock* clock, IdentityMetrics* metrics,
           const CodeHasher* hasher, const SecretBox* box,
           const auth::TokenCodec* tokens, CodeNotifier* notifier,
           IdentityOptions options);

  // Reads the store. Call once, before anything else.
  absl::Status Load();

  struct StartCommand {
    std::string customer_id;
    common::v1::VerificationMethod method = common::v1::VERIFICATION_METHOD_UNSPECIFIED;
    std::string session_id;
    std::string language;
  };
  struct Started {
    ChallengeRecord challenge;
    absl::Time resend_available_at;
  };
  absl::StatusOr<Started> StartVerification(const StartCommand& command);

  struct Completed {
    std::string token;
    auth::VerificationClaims claims;
    common::v1::VerificationState verification;
  };
  // `caller_customer`: when not empty, the challenge must be theirs (else
  // NotFound, as for an unknown challenge).
  absl::StatusOr<Completed> CompleteVerification(const std::string& caller_customer,
                                                 const std::string& challenge_id,
                                                 const std::string& code);

  // Returns whether a contact existed before.
  absl::StatusOr<bool> RegisterContact(const std::string& customer_id,
                                       common::v1::VerificationMethod method,
                                       const std::string& address,
                                       const std::string& actor_id);

  struct EnrollmentStarted {
    EnrollmentRecord enrollment;
    // Shown once; never stored in plaintext.
    std::string secret_base32;
    std::string otpauth_uri;
  };
  // `proof_level`: the level of the customer's verification token when a
  // customer calls (PermissionDenied if it is below what the customer needs:
  // BASIC for a first authenticator, STRONG to replace one); nullopt for
  // supervisors and services.
  absl::StatusOr<EnrollmentStarted> StartTotpEnrollment(
      const std::string& customer_id, const std::string& account_label,
      const std::string& actor_id, std::optional<int> proof_level);

  struct EnrollmentConfirmed {
    absl::Time enrolled_at;
    bool replaced = false;
  };
  absl::StatusOr<EnrollmentConfirmed> ConfirmTotpEnrollment(
      const std::string& caller_customer, const std::string& enrollment_id,
      const std::string& code);

  // Deletes challenges and enrollments finished or expired longer than
  // `retention` ago. Returns how many were deleted. Called periodically.
  absl::StatusOr<int> Sweep();

 private:
  struct Pending;

  absl::Status CheckWritable() const;
  std::shared_ptr<Pending> Commit(IdentityWrite write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::Status Wait(const std::shared_ptr<Pending>& pending);
  CustomerRecord& CustomerLocked(const std::string& customer_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  events::v1::Event Failed(const ChallengeRecord& challenge,
                           events::v1::VerificationFailure failure, absl::Time now);
  // Counts a failed attempt towards the lockout; returns the lockout event
  // when this failure starts one.
  std::optional<events::v1::Event> CountFailure(CustomerRecord& customer, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  IdentityStore* const store_;
  Clock* const clock_;
  IdentityMetrics* const metrics_;
  const CodeHasher* const hasher_;
  const SecretBox* const box_;
  const auth::TokenCodec* const tokens_;
  CodeNotifier* const notifier_;
  const IdentityOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, CustomerRecord> customers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ChallengeRecord> challenges_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, EnrollmentRecord> enrollments_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> store_failed_{false};
};

// The checks of ValidateToken: signature, expiry and audience, then the
// customer, session and level asked for (each only when set).
struct TokenCheck {
  v1::InvalidTokenReason reason = v1::INVALID_TOKEN_REASON_UNSPECIFIED;
  // Set when the signature was good (even if a later check failed).
  std::optional<auth::VerificationClaims> claims;
};
TokenCheck CheckVerificationToken(const auth::TokenCodec& codec, absl::string_view token,
                                  const std::string& customer_id,
                                  const std::string& session_id,
                                  common::v1::VerificationLevel min_level, absl::Time now);

// Method and level as the API names them.
common::v1::VerificationMethod MethodFromClaim(absl::string_view method);
std::string MethodClaim(common::v1::VerificationMethod method);

// Checks of client input (InvalidArgument naming the field).
absl::Status ValidateCode(absl::string_view code);
absl::Status ValidateEmail(absl::string_view address);
absl::Status ValidatePhone(absl::string_view address);

}  // namespace switchboard::identity
