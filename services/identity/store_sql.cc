#include "services/identity/store_sql.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/storage/time_column.h"

namespace switchboard::identity {

std::string JoinTimes(const std::vector<absl::Time>& times) {
  return absl::StrJoin(times, ",", [](std::string* out, absl::Time t) {
    absl::StrAppend(out, storage::ToMicros(t));
  });
}

absl::StatusOr<std::vector<absl::Time>> SplitTimes(absl::string_view text) {
  std::vector<absl::Time> times;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t micros = 0;
    if (!absl::SimpleAtoi(part, &micros)) {
      return absl::DataLossError("identity store: unreadable time list");
    }
    times.push_back(storage::FromMicros(micros));
  }
  return times;
}

std::string JoinMethods(const std::vector<common::v1::VerificationMethod>& methods) {
  return absl::StrJoin(methods, ",", [](std::string* out, common::v1::VerificationMethod m) {
    absl::StrAppend(out, static_cast<int>(m));
  });
}

absl::StatusOr<std::vector<common::v1::VerificationMethod>> SplitMethods(absl::string_view text) {
  std::vector<common::v1::VerificationMethod> methods;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int method = 0;
    if (!absl::SimpleAtoi(part, &method)) {
      return absl::DataLossError("identity store: unreadable notified list");
    }
    methods.push_back(static_cast<common::v1::VerificationMethod>(method));
  }
  return methods;
}

absl::StatusOr<CustomerRecord> CustomerFromRow(const storage::SqlRow& row) {
  CustomerRecord c;
  c.customer_id = row.Text(0);
  c.email = row.Text(1);
  c.phone = row.Text(2);
  c.totp_secret_sealed = row.Bytes(3);
  c.totp_enrolled_at = storage::FromMicros(row.Int(4));
  c.last_totp_step = row.Int(5);
  c.current_challenge_id = row.Text(6);
  c.locked_until = storage::FromMicros(row.Int(7));
  for (auto [column, out] : {std::pair{8, &c.recent_starts}, std::pair{9, &c.recent_failures},
                             std::pair{10, &c.recent_enrollments}}) {
    absl::StatusOr<std::vector<absl::Time>> times = SplitTimes(row.Text(column));
    if (!times.ok()) return times.status();
    *out = std::move(*times);
  }
  c.lockouts = static_cast<int>(row.Int(11));
  return c;
}

absl::StatusOr<SourceRecord> SourceFromRow(const storage::SqlRow& row) {
  SourceRecord s;
  s.source_key = row.Text(0);
  absl::StatusOr<std::vector<absl::Time>> failures = SplitTimes(row.Text(1));
  if (!failures.ok()) return failures.status();
  s.recent_failures = std::move(*failures);
  s.locked_until = storage::FromMicros(row.Int(2));
  s.lockouts = static_cast<int>(row.Int(3));
  s.forget_after = storage::FromMicros(row.Int(4));
  return s;
}

absl::StatusOr<ChallengeRecord> ChallengeFromRow(const storage::SqlRow& row) {
  ChallengeRecord c;
  c.challenge_id = row.Text(0);
  c.customer_id = row.Text(1);
  c.method = static_cast<common::v1::VerificationMethod>(row.Int(2));
  c.session_id = row.Text(3);
  c.code_hash = row.Bytes(4);
  c.created_at = storage::FromMicros(row.Int(5));
  c.expires_at = storage::FromMicros(row.Int(6));
  c.attempts_used = static_cast<int>(row.Int(7));
  c.max_attempts = static_cast<int>(row.Int(8));
  c.state = static_cast<ChallengeState>(row.Int(9));
  c.start_request_id = row.Text(10);
  c.complete_request_id = row.Text(11);
  c.completed_code_hash = row.Bytes(12);
  c.token_id = row.Text(13);
  c.token_issued_at = storage::FromMicros(row.Int(14));
  c.token_expires_at = storage::FromMicros(row.Int(15));
  return c;
}

absl::StatusOr<EnrollmentRecord> EnrollmentFromRow(const storage::SqlRow& row) {
  EnrollmentRecord e;
  e.enrollment_id = row.Text(0);
  e.customer_id = row.Text(1);
  e.secret_sealed = row.Bytes(2);
  e.actor_id = row.Text(3);
  e.created_at = storage::FromMicros(row.Int(4));
  e.expires_at = storage::FromMicros(row.Int(5));
  e.attempts_used = static_cast<int>(row.Int(6));
  e.used = row.Int(7) != 0;
  e.start_request_id = row.Text(8);
  e.account_label = row.Text(9);
  e.confirm_request_id = row.Text(10);
  e.confirmed_at = storage::FromMicros(row.Int(11));
  e.replaced = row.Int(12) != 0;
  e.by_supervisor = row.Int(13) != 0;
  e.change_id = row.Text(14);
  return e;
}

absl::StatusOr<AccountChangeRecord> ChangeFromRow(const storage::SqlRow& row) {
  AccountChangeRecord c;
  c.change_id = row.Text(0);
  c.customer_id = row.Text(1);
  c.method = static_cast<common::v1::VerificationMethod>(row.Int(2));
  c.new_address = row.Text(3);
  c.new_secret_sealed = row.Bytes(4);
  c.totp_step = row.Int(5);
  c.requested_by = row.Text(6);
  c.requested_at = storage::FromMicros(row.Int(7));
  c.effective_at = storage::FromMicros(row.Int(8));
  c.state = static_cast<ChangeState>(row.Int(9));
  c.resolution = static_cast<int>(row.Int(10));
  c.resolved_by = row.Text(11);
  c.resolved_at = storage::FromMicros(row.Int(12));
  c.code_hash = row.Bytes(13);
  c.code_attempts = static_cast<int>(row.Int(14));
  absl::StatusOr<std::vector<common::v1::VerificationMethod>> notified =
      SplitMethods(row.Text(15));
  if (!notified.ok()) return notified.status();
  c.notified = std::move(*notified);
  c.forget_after = storage::FromMicros(row.Int(16));
  return c;
}

}  // namespace switchboard::identity
