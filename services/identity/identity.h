#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "libs/storage/ordered_commits.h"
#include "services/identity/crypto.h"
#include "services/identity/key_locks.h"
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
  // lockout_failures failed attempts of a customer within failure_window
  // (across challenges) lock the customer out; source_lockout_failures from
  // one source (client address, across customers) lock that source out.
  // The first lockout lasts `lockout`, each next one twice the one before,
  // at most `max_lockout`; once `lockout_reset` passes after a lockout
  // ended without a new one, the next starts from `lockout` again.
  int lockout_failures = 10;
  int source_lockout_failures = 30;
  absl::Duration failure_window = absl::Hours(1);
  absl::Duration lockout = absl::Minutes(30);
  absl::Duration max_lockout = absl::Hours(24);
  absl::Duration lockout_reset = absl::Hours(24);
  // Lifetime of verification tokens (at most kMaxTokenTtl).
  absl::Duration token_ttl = absl::Minutes(15);
  // StartTotpEnrollment at most this many times per rolling hour.
  int max_enrollments_per_hour = 5;
  // How long used, replaced and expired challenges and enrollments are
  // remembered (so that late attempts get FAILED_PRECONDITION rather than
  // NOT_FOUND, and retries with their request id the first answer) before
  // Sweep deletes them.
  absl::Duration retention = absl::Hours(1);
  // Rows Sweep deletes per transaction.
  int sweep_batch = 1000;
  // Calls of one customer running or waiting their turn at once; more are
  // refused with RESOURCE_EXHAUSTED (one customer's calls run one at a time,
  // and must not tie up every worker thread).
  int max_calls_per_customer = 4;
  // How long a supervisor's change of a contact or authenticator waits for
  // the customer before it applies by itself.
  absl::Duration account_change_cooldown = absl::Hours(24);
};

inline constexpr absl::Duration kMaxCodeTtl = absl::Minutes(10);
inline constexpr absl::Duration kMaxTokenTtl = absl::Hours(1);
inline constexpr absl::Duration kEnrollmentTtl = absl::Minutes(10);
inline constexpr int kEnrollmentAttempts = 5;
inline constexpr int kCodeDigits = 6;
// Wrong confirmation codes a pending account change allows.
inline constexpr int kChangeCodeAttempts = 5;
// How long resolved account changes are listed before the sweep deletes them.
inline constexpr absl::Duration kChangeHistory = absl::Hours(24 * 30);
// The most account changes ListAccountChanges returns.
inline constexpr int kMaxListedChanges = 50;

// A status payload the gRPC adapter turns into trailing metadata of the same
// name (a whole number as decimal text): tries left on PERMISSION_DENIED for
// a wrong code. RESOURCE_EXHAUSTED carries libs/limits' retry-after.
inline constexpr char kAttemptsRemaining[] = "attempts-remaining";

// The identity logic: challenges, codes, attempt limits, escalating
// lockouts per customer and per source, contacts, authenticators,
// supervisors' pending account changes and verification tokens (see
// identity_service.proto for the contract of each call).
//
// State lives in the store only, read per call through keys and indexes;
// memory holds nothing per customer beyond the calls in progress. Every call
// that changes a customer's state holds that customer's lock (KeyLocks) from
// its read to the end of its commit, so attempt caps, rate limits and single
// use hold exactly under concurrent calls, and each decision is made on
// durable state. That lock holds within one process; across replicas on one
// PostgreSQL database, the store refuses a write over records another
// replica wrote since they were read, and the call reads and decides again
// (see Decided), so the same limits hold there too. A call is answered only once its write is committed, with
// its events. A failed commit leaves nothing behind, so the next call simply
// decides again from what is on disk.
//
// Retries: calls with a request id find the first call's record first and
// answer as it did (`replayed`); since they wait for the customer's lock,
// that answer is given only once the first call's write is durable, and if
// it failed, the retry runs afresh. A client write is admitted
// (IdentityStore::Admit) before anything is decided.
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
           const auth::TokenSigner* tokens, CodeNotifier* notifier,
           IdentityOptions options);

  struct StartCommand {
    std::string customer_id;
    common::v1::VerificationMethod method = common::v1::VERIFICATION_METHOD_UNSPECIFIED;
    std::string session_id;
    std::string language;
    // Idempotency key; "" for none.
    std::string request_id;
    // The caller's address (see SourceOf); "" when unknown.
    std::string source;
  };
  struct Started {
    ChallengeRecord challenge;
    absl::Time resend_available_at;
    bool replayed = false;
  };
  // For EMAIL_OTP and SMS_OTP with a contact, the code goes to the notifier
  // before the challenge is committed: a challenge exists only once its code
  // was handed over (UNAVAILABLE, and nothing stored or counted, if not).
  absl::StatusOr<Started> StartVerification(const StartCommand& command);

  struct Completed {
    std::string token;
    auth::VerificationClaims claims;
    common::v1::VerificationState verification;
    bool replayed = false;
  };
  // `caller_customer`: when not empty, the challenge must be theirs (else
  // NotFound, as for an unknown challenge). A retry with the request id and
  // the code of the call that used the challenge gets a token with the same
  // claims (ECDSA signatures differ, so its text may too).
  // `source`: the caller's address ("" when unknown); a wrong code counts
  // against it as against the customer.
  absl::StatusOr<Completed> CompleteVerification(const std::string& caller_customer,
                                                 const std::string& challenge_id,
                                                 const std::string& code,
                                                 const std::string& request_id = "",
                                                 const std::string& source = "");

  // A service's change of a contact, applied at once (and replacing any
  // pending change of that contact). Returns whether a contact existed
  // before. Setting the address the customer already has writes nothing.
  absl::StatusOr<bool> RegisterContact(const std::string& customer_id,
                                       common::v1::VerificationMethod method,
                                       const std::string& address,
                                       const std::string& actor_id);

  struct ContactChange {
    // A contact exists that the change replaces (or removes).
    bool replaced = false;
    // The change waiting for its cool-down or the customer; nullopt when
    // the address asked for is the customer's already.
    std::optional<AccountChangeRecord> pending;
    // The same change was already pending (a retry).
    bool replayed = false;
  };
  // A supervisor's change of a contact: a pending change, notified to the
  // customer's contacts (UNAVAILABLE, and nothing recorded, when a notice
  // cannot be handed over). `language` is the notices' ("" means "en").
  absl::StatusOr<ContactChange> RequestContactChange(const std::string& customer_id,
                                                     common::v1::VerificationMethod method,
                                                     const std::string& address,
                                                     const std::string& supervisor_id,
                                                     const std::string& language);

  struct EnrollmentStarted {
    EnrollmentRecord enrollment;
    // Shown once (and again to a retry); never stored in plaintext.
    std::string secret_base32;
    std::string otpauth_uri;
    bool replayed = false;
  };
  // `proof_level`: the level of the customer's verification token when a
  // customer calls (PermissionDenied if it is below what the customer needs:
  // BASIC for a first authenticator, STRONG to replace one); nullopt for
  // supervisors and services. `by_supervisor`: a supervisor starts it, so
  // its confirmation makes a pending change.
  absl::StatusOr<EnrollmentStarted> StartTotpEnrollment(
      const std::string& customer_id, const std::string& account_label,
      const std::string& actor_id, std::optional<int> proof_level,
      const std::string& request_id = "", bool by_supervisor = false);

  struct EnrollmentConfirmed {
    // When the authenticator became active (InfinitePast while pending).
    absl::Time enrolled_at = absl::InfinitePast();
    bool replaced = false;
    bool replayed = false;
    // For an enrollment a supervisor started: the change now pending.
    std::optional<AccountChangeRecord> pending;
  };
  // `language`: of the notices of a pending change ("" means "en").
  absl::StatusOr<EnrollmentConfirmed> ConfirmTotpEnrollment(
      const std::string& caller_customer, const std::string& enrollment_id,
      const std::string& code, const std::string& request_id = "",
      const std::string& language = "");

  // A customer's account changes, newest first (see ListAccountChanges).
  absl::StatusOr<std::vector<AccountChangeRecord>> ListAccountChanges(
      const std::string& customer_id);
  // Applies a pending change early. `caller_customer`: when not empty, the
  // change must be theirs (else NotFound) and they prove it with `code` or
  // `verification_level` (the level of a verification token of theirs),
  // or with neither when they have no contact and no authenticator; staff
  // (empty `caller_customer`) must give `code`. `actor_id` is recorded.
  absl::StatusOr<AccountChangeRecord> ConfirmAccountChange(
      const std::string& caller_customer, const std::string& change_id,
      const std::string& code, std::optional<int> verification_level,
      const std::string& actor_id);
  // Cancels a pending change (see ConfirmAccountChange for `caller_customer`).
  absl::StatusOr<AccountChangeRecord> CancelAccountChange(const std::string& caller_customer,
                                                          const std::string& change_id,
                                                          const std::string& actor_id);
  // Applies pending changes whose cool-down ended, as of the clock's Now,
  // in batches of `sweep_batch`. Returns how many applied. Called
  // periodically.
  absl::StatusOr<int> ApplyDueChanges();

  // Deletes challenges and enrollments expired longer than `retention` ago,
  // in batches of `sweep_batch`. Returns how many were deleted. Called
  // periodically.
  absl::StatusOr<int> Sweep();

  // Customers with a call in progress, and the calls in progress (running or
  // waiting their turn) of one customer: what memory holds, for tests.
  size_t customers_in_progress() const { return locks_.size(); }
  int calls_in_progress(const std::string& customer_id) const {
    return locks_.users(customer_id);
  }

 private:
  // How often one call reads, decides and writes before a conflict goes to
  // the caller as ABORTED.
  static constexpr int kDecideAttempts = 5;
  // Runs `call` (one whole read-decide-write) and runs it again while the
  // store refuses its write as decided from stale state: ABORTED, when
  // another replica wrote a record the call read (PostgresIdentityStore);
  // the next run reads what that replica wrote and decides anew. A code or
  // notice handed over by a refused run is merely useless, as after any
  // failed commit. Up to kDecideAttempts runs.
  template <typename Call>
  static auto Decided(Call call) -> decltype(call()) {
    auto result = call();
    for (int run = 1; run < kDecideAttempts && absl::IsAborted(result.status()); ++run) {
      result = call();
    }
    return result;
  }
  // The calls of the same names, run once (see Decided).
  absl::StatusOr<Started> StartVerificationOnce(const StartCommand& command);
  absl::StatusOr<Completed> CompleteVerificationOnce(const std::string& caller_customer,
                                                     const std::string& challenge_id,
                                                     const std::string& code,
                                                     const std::string& request_id,
                                                     const std::string& source);
  absl::StatusOr<bool> RegisterContactOnce(const std::string& customer_id,
                                           common::v1::VerificationMethod method,
                                           const std::string& address,
                                           const std::string& actor_id);
  absl::StatusOr<ContactChange> RequestContactChangeOnce(const std::string& customer_id,
                                                         common::v1::VerificationMethod method,
                                                         const std::string& address,
                                                         const std::string& supervisor_id,
                                                         const std::string& language);
  absl::StatusOr<EnrollmentStarted> StartTotpEnrollmentOnce(
      const std::string& customer_id, const std::string& account_label,
      const std::string& actor_id, std::optional<int> proof_level,
      const std::string& request_id, bool by_supervisor);
  absl::StatusOr<EnrollmentConfirmed> ConfirmTotpEnrollmentOnce(
      const std::string& caller_customer, const std::string& enrollment_id,
      const std::string& code, const std::string& request_id, const std::string& language);
  absl::StatusOr<AccountChangeRecord> ConfirmAccountChangeOnce(
      const std::string& caller_customer, const std::string& change_id, const std::string& code,
      std::optional<int> verification_level, const std::string& actor_id);
  absl::StatusOr<AccountChangeRecord> CancelAccountChangeOnce(const std::string& caller_customer,
                                                              const std::string& change_id,
                                                              const std::string& actor_id);

  // Holds `customer_id`'s turn, or RESOURCE_EXHAUSTED when it already has
  // max_calls_per_customer calls in progress.
  absl::StatusOr<KeyLocks::Hold> Turn(const std::string& customer_id);
  // Commits `write` and waits until it is durable (or failed).
  absl::Status Commit(IdentityWrite write);
  // The customer's committed record, or a new one.
  absl::StatusOr<CustomerRecord> ReadCustomer(const std::string& customer_id);
  // The answer of a used challenge: its token, signed again from its record.
  absl::StatusOr<Completed> CompletedFrom(const ChallengeRecord& challenge) const;
  // The answer of an enrollment start: the secret and its otpauth URI.
  absl::StatusOr<EnrollmentStarted> EnrollmentStartedFrom(
      const EnrollmentRecord& enrollment) const;
  events::v1::Event Failed(const ChallengeRecord& challenge,
                           events::v1::VerificationFailure failure, absl::Time now);
  // Counts a failed attempt towards the lockout; returns the lockout event
  // when this failure starts one.
  std::optional<events::v1::Event> CountFailure(CustomerRecord& customer, absl::Time now);
  std::optional<events::v1::Event> CountSourceFailure(SourceRecord& source,
                                                      const std::string& customer_id,
                                                      absl::Time now);
  // How long the lockout after `previous` ones in a run lasts.
  absl::Duration LockoutAfter(int previous) const;

  // What a pending change writes. NewChange: the change of `method` to
  // `address` (contacts) or `secret_sealed` (TOTP), replacing any pending
  // one of the same `method`, with its requested event and the notices to
  // hand over before committing. Apply and Cancel resolve `change`.
  struct NewChangeWrite {
    AccountChangeRecord change;
    std::vector<v1::CodeDeliveryRequest> notices;
  };
  absl::StatusOr<NewChangeWrite> NewChange(const CustomerRecord& customer,
                                           common::v1::VerificationMethod method,
                                           const std::string& address,
                                           const std::string& secret_sealed, int64_t totp_step,
                                           const std::string& supervisor_id,
                                           const std::string& language, absl::Time now,
                                           IdentityWrite& write);
  // Cancels `customer_id`'s pending change of `method`, if any, as
  // SUPERSEDED; returns its id ("" if none).
  absl::StatusOr<std::string> SupersedePending(const std::string& customer_id,
                                               common::v1::VerificationMethod method,
                                               absl::Time now, IdentityWrite& write);
  void ApplyChange(CustomerRecord& customer, AccountChangeRecord& change,
                   v1::AccountChangeResolution resolution, const std::string& resolved_by,
                   absl::Time now, IdentityWrite& write);
  void CancelChange(AccountChangeRecord& change, v1::AccountChangeResolution resolution,
                    const std::string& resolved_by, absl::Time now, IdentityWrite& write);
  // Hands every notice over; UNAVAILABLE at the first that fails.
  absl::Status DeliverAll(const std::vector<v1::CodeDeliveryRequest>& notices);
  // The change `change_id` if `caller_customer` (when not empty) may see it.
  absl::StatusOr<AccountChangeRecord> FindChange(const std::string& caller_customer,
                                                 const std::string& change_id);
  // A change as it is once its customer's turn is held.
  struct LockedChange {
    KeyLocks::Hold turn;
    AccountChangeRecord change;
  };
  // Finds the change `change_id` (as FindChange), takes its customer's turn
  // (RESOURCE_EXHAUSTED when busy, see Turn), and reads it again under it.
  absl::StatusOr<LockedChange> LockChange(const std::string& caller_customer,
                                          const std::string& change_id);
  // The stored key of a source address.
  std::string SourceKey(const std::string& source) const;
  // RESOURCE_EXHAUSTED while the source `key` ("" for none) is locked out.
  absl::Status CheckSource(const std::string& key, absl::Time now);

  IdentityStore* const store_;
  Clock* const clock_;
  IdentityMetrics* const metrics_;
  const CodeHasher* const hasher_;
  const SecretBox* const box_;
  // Signs verification tokens with identity's own key.
  const auth::TokenSigner* const tokens_;
  CodeNotifier* const notifier_;
  const IdentityOptions options_;
  storage::OrderedCommits commits_;

  // Per customer: one call at a time from read to commit.
  KeyLocks locks_;
  // Per source: one failure counted at a time (taken after the customer's).
  KeyLocks source_locks_;
};

// The source a verification call is counted against: `forwarded` (the first
// address of a header a trusted proxy sets, when configured and present),
// else the address in gRPC's `peer` ("ipv4:1.2.3.4:5678" -> "1.2.3.4").
// IPv6 addresses count per /64, the block one subscriber usually holds.
// "" when neither names an address.
std::string SourceOf(absl::string_view peer, absl::string_view forwarded);

// The checks of ValidateToken: signature, expiry and audience, then the
// customer, session and level asked for (each only when set).
struct TokenCheck {
  v1::InvalidTokenReason reason = v1::INVALID_TOKEN_REASON_UNSPECIFIED;
  // Set when the signature was good (even if a later check failed).
  std::optional<auth::VerificationClaims> claims;
};
TokenCheck CheckVerificationToken(const auth::TokenVerifier& verifier, absl::string_view token,
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
