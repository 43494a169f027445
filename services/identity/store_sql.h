#pragma once

// What SQLite's and PostgreSQL's identity stores share: the columns of each
// table, in the order both read them, how a row of them becomes a record,
// and how lists are kept in a column.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/storage/shared_sql.h"
#include "services/identity/model.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::identity {

inline constexpr char kCustomerColumns[] =
    "customer_id, email, phone, totp_secret_sealed, totp_enrolled_at_micros, last_totp_step, "
    "current_challenge_id, locked_until_micros, recent_starts, recent_failures, "
    "recent_enrollments, lockouts";
inline constexpr char kSourceColumns[] =
    "source_key, recent_failures, locked_until_micros, lockouts, forget_after_micros";
inline constexpr char kChallengeColumns[] =
    "challenge_id, customer_id, method, session_id, code_hash, created_at_micros, "
    "expires_at_micros, attempts_used, max_attempts, state, start_request_id, "
    "complete_request_id, completed_code_hash, token_id, token_issued_at_micros, "
    "token_expires_at_micros";
inline constexpr char kEnrollmentColumns[] =
    "enrollment_id, customer_id, secret_sealed, actor_id, created_at_micros, "
    "expires_at_micros, attempts_used, used, start_request_id, account_label, "
    "confirm_request_id, confirmed_at_micros, replaced, by_supervisor, change_id";
inline constexpr char kChangeColumns[] =
    "change_id, customer_id, method, new_address, new_secret_sealed, totp_step, "
    "requested_by, requested_at_micros, effective_at_micros, state, resolution, resolved_by, "
    "resolved_at_micros, code_hash, code_attempts, notified, forget_after_micros";

// Times as comma-separated Unix microseconds; DATA_LOSS if unreadable.
std::string JoinTimes(const std::vector<absl::Time>& times);
absl::StatusOr<std::vector<absl::Time>> SplitTimes(absl::string_view text);

// Verification methods as comma-separated numbers; DATA_LOSS if unreadable.
std::string JoinMethods(const std::vector<common::v1::VerificationMethod>& methods);
absl::StatusOr<std::vector<common::v1::VerificationMethod>> SplitMethods(absl::string_view text);

// A record from a row of the matching columns above, whichever backend read
// it; DATA_LOSS if a list column is unreadable. The revision is not among
// those columns (PostgreSQL's store reads it after them).
absl::StatusOr<CustomerRecord> CustomerFromRow(const storage::SqlRow& row);
absl::StatusOr<SourceRecord> SourceFromRow(const storage::SqlRow& row);
absl::StatusOr<ChallengeRecord> ChallengeFromRow(const storage::SqlRow& row);
absl::StatusOr<EnrollmentRecord> EnrollmentFromRow(const storage::SqlRow& row);
absl::StatusOr<AccountChangeRecord> ChangeFromRow(const storage::SqlRow& row);

}  // namespace switchboard::identity
