#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::identity {

// What identity keeps per customer: contacts, the authenticator, and the
// counters behind rate limits and lockouts.
struct CustomerRecord {
  std::string customer_id;
  // Where codes go; empty when none is registered.
  std::string email;
  std::string phone;
  // The TOTP secret sealed with SecretBox (associated data: customer id);
  // empty when no authenticator is enrolled.
  std::string totp_secret_sealed;
  absl::Time totp_enrolled_at = absl::InfinitePast();
  // The last TOTP step accepted (each code is accepted once); -1 for none.
  int64_t last_totp_step = -1;
  // The newest challenge; the only one that can still succeed.
  std::string current_challenge_id;
  // Verification is refused until then.
  absl::Time locked_until = absl::InfinitePast();
  // Lockouts so far in the current run (each lasts twice the one before, up
  // to a cap); the run ends once a quiet period passes after the last one.
  int lockouts = 0;
  // Recent StartVerification calls, failed attempts and enrollment starts,
  // oldest first, pruned to their counting windows.
  std::vector<absl::Time> recent_starts;
  std::vector<absl::Time> recent_failures;
  std::vector<absl::Time> recent_enrollments;
  // The revision this copy was read at (0: not stored yet). A store that
  // replicas share (PostgreSQL) writes it only over that same revision and
  // refuses the write (ABORTED) if another replica wrote the record since;
  // SQLite's single process does not keep revisions.
  int64_t revision = 0;
};

// Failed verifications from one source (a client address) across
// customers, so that one address guessing codes for many customers is
// locked out as one customer would be.
struct SourceRecord {
  // A keyed hash of the address (hex): addresses are not stored.
  std::string source_key;
  std::vector<absl::Time> recent_failures;
  absl::Time locked_until = absl::InfinitePast();
  // As CustomerRecord::lockouts.
  int lockouts = 0;
  // After this the record holds nothing that matters (no failure in the
  // window, no lockout, the run of lockouts over): the sweep deletes it.
  absl::Time forget_after = absl::InfinitePast();
  // As CustomerRecord::revision.
  int64_t revision = 0;
};

enum class ChallengeState { kOpen = 0, kUsed = 1, kReplaced = 2 };

// A verification challenge. For EMAIL_OTP and SMS_OTP only the keyed hash of
// the code is kept (CodeHasher); TOTP challenges have none.
struct ChallengeRecord {
  std::string challenge_id;
  std::string customer_id;
  common::v1::VerificationMethod method = common::v1::VERIFICATION_METHOD_UNSPECIFIED;
  std::string session_id;
  std::string code_hash;
  absl::Time created_at = absl::UnixEpoch();
  absl::Time expires_at = absl::UnixEpoch();
  int attempts_used = 0;
  int max_attempts = 0;
  ChallengeState state = ChallengeState::kOpen;
  // The StartVerification request id that created it ("" if none).
  std::string start_request_id;
  // Once used: the CompleteVerification request id ("" if none), the keyed
  // hash of the code that completed it, and the token it issued, so that a
  // retry with the same request id and code gets that token's claims again.
  std::string complete_request_id;
  std::string completed_code_hash;
  std::string token_id;
  absl::Time token_issued_at = absl::UnixEpoch();
  absl::Time token_expires_at = absl::UnixEpoch();
  // As CustomerRecord::revision.
  int64_t revision = 0;
};

// A TOTP enrollment waiting for its confirming code.
struct EnrollmentRecord {
  std::string enrollment_id;
  std::string customer_id;
  // The new secret, sealed like CustomerRecord::totp_secret_sealed.
  std::string secret_sealed;
  std::string actor_id;
  absl::Time created_at = absl::UnixEpoch();
  absl::Time expires_at = absl::UnixEpoch();
  int attempts_used = 0;
  bool used = false;
  // The StartTotpEnrollment request id ("" if none) and the account label
  // it asked for, so that a retry gets the same answer.
  std::string start_request_id;
  std::string account_label;
  // Once used: the ConfirmTotpEnrollment request id ("" if none), when it
  // was confirmed and whether it replaced an authenticator.
  std::string confirm_request_id;
  absl::Time confirmed_at = absl::UnixEpoch();
  bool replaced = false;
  // A supervisor started it: its confirmation makes a pending change
  // (`change_id`) rather than replacing the authenticator.
  bool by_supervisor = false;
  std::string change_id;
  // As CustomerRecord::revision.
  int64_t revision = 0;
};

enum class ChangeState { kPending = 1, kApplied = 2, kCancelled = 3 };

// A supervisor's change of a customer's contact or authenticator, waiting
// for its cool-down or the customer's confirmation (see identity_service.proto).
// State and resolution use the API's numbers.
struct AccountChangeRecord {
  std::string change_id;
  std::string customer_id;
  // EMAIL_OTP or SMS_OTP (that contact), TOTP (the authenticator).
  common::v1::VerificationMethod method = common::v1::VERIFICATION_METHOD_UNSPECIFIED;
  // The new contact ("" removes it).
  std::string new_address;
  // The new TOTP secret, sealed like CustomerRecord::totp_secret_sealed, and
  // the step of the code that confirmed its enrollment (not to verify too).
  std::string new_secret_sealed;
  int64_t totp_step = -1;
  std::string requested_by;
  absl::Time requested_at = absl::UnixEpoch();
  absl::Time effective_at = absl::UnixEpoch();
  ChangeState state = ChangeState::kPending;
  // v1::AccountChangeResolution.
  int resolution = 0;
  std::string resolved_by;
  absl::Time resolved_at = absl::InfinitePast();
  // The keyed hash of the confirmation code sent in the notices, and the
  // wrong codes tried so far.
  std::string code_hash;
  int code_attempts = 0;
  // Where the notices went.
  std::vector<common::v1::VerificationMethod> notified;
  // After this the sweep deletes it (resolved changes are kept a while).
  absl::Time forget_after = absl::InfiniteFuture();
  // As CustomerRecord::revision.
  int64_t revision = 0;
};

// Everything one operation changes, committed atomically with its events.
struct IdentityWrite {
  std::vector<CustomerRecord> customers;
  std::vector<SourceRecord> sources;
  std::vector<ChallengeRecord> challenges;
  std::vector<EnrollmentRecord> enrollments;
  std::vector<AccountChangeRecord> changes;
  std::vector<events::v1::Event> events;
};

}  // namespace switchboard::identity
