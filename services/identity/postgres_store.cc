#include "services/identity/postgres_store.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/events/postgres_outbox.h"
#include "libs/storage/time_column.h"
#include "services/identity/store_sql.h"

namespace switchboard::identity {
namespace {

using storage::FromMicros;
using storage::PostgresConnection;
using storage::PostgresParam;
using storage::PostgresRows;
using storage::ToMicros;

// Every row `sql` (made by Select) selects, converted by `from_row`, with
// its revision.
template <typename Record, typename FromRow>
absl::StatusOr<std::vector<Record>> SelectAll(PostgresConnection& db, const std::string& sql,
                                              const std::vector<PostgresParam>& params,
                                              FromRow from_row) {
  absl::StatusOr<PostgresRows> rows = db.Query(sql, params);
  if (!rows.ok()) return rows.status();
  std::vector<Record> out;
  for (int r = 0; r < rows->size(); ++r) {
    absl::StatusOr<Record> record = from_row(storage::PostgresRow(*rows, r));
    if (!record.ok()) return record.status();
    // Select puts the revision after the shared columns.
    record->revision = rows->Int(r, rows->columns() - 1);
    out.push_back(*std::move(record));
  }
  return out;
}

// The SELECT of `columns` and the revision from `table`, then `rest`.
std::string Select(absl::string_view columns, absl::string_view table, absl::string_view rest) {
  return absl::StrCat("SELECT ", columns, ", revision FROM ", table, " ", rest);
}

// What Apply reports when a record changed after the logic read it.
absl::Status Conflict(absl::string_view table) {
  return absl::AbortedError(absl::StrCat(
      "identity: a record in ", table,
      " was written by another call (another replica) since it was read; decide again"));
}

// Writes one record of `table` (`columns`, the first its key, `params` in
// their order) over the revision it was read at: an INSERT when it was
// read as absent, else an UPDATE of that revision only. Conflict() when
// another writer came first.
absl::Status Put(PostgresConnection& db, absl::string_view table, absl::string_view columns,
                 std::vector<PostgresParam> params, int64_t revision) {
  const std::vector<std::string> names = absl::StrSplit(columns, ", ");
  if (revision == 0) {
    std::string values;
    for (size_t i = 1; i <= names.size(); ++i) absl::StrAppend(&values, "$", i, ", ");
    absl::StatusOr<PostgresRows> inserted = db.Query(
        absl::StrCat("INSERT INTO ", table, "(", columns, ", revision) VALUES (", values, "1)"),
        params);
    // A unique key taken: the same record, or the one request id or
    // pending change the index allows, written by another call.
    if (absl::IsAlreadyExists(inserted.status())) return Conflict(table);
    return inserted.status();
  }
  std::string sets;
  for (size_t i = 1; i < names.size(); ++i) absl::StrAppend(&sets, names[i], " = $", i + 1, ", ");
  params.emplace_back(revision);
  absl::StatusOr<PostgresRows> updated = db.Query(
      absl::StrCat("UPDATE ", table, " SET ", sets, "revision = revision + 1 WHERE ", names[0],
                   " = $1 AND revision = $", params.size()),
      params);
  if (!updated.ok()) return updated.status();
  if (updated->changed() != 1) return Conflict(table);
  return absl::OkStatus();
}

absl::Status WriteAll(PostgresConnection& db, const IdentityWrite& write,
                      const std::string& topic) {
  for (const CustomerRecord& c : write.customers) {
    absl::Status s =
        Put(db, "customers", kCustomerColumns,
            {c.customer_id, c.email, c.phone, PostgresParam::Bytes(c.totp_secret_sealed),
             ToMicros(c.totp_enrolled_at), c.last_totp_step, c.current_challenge_id,
             ToMicros(c.locked_until), JoinTimes(c.recent_starts), JoinTimes(c.recent_failures),
             JoinTimes(c.recent_enrollments), c.lockouts},
            c.revision);
    if (!s.ok()) return s;
  }
  for (const SourceRecord& source : write.sources) {
    absl::Status s = Put(db, "sources", kSourceColumns,
                         {source.source_key, JoinTimes(source.recent_failures),
                          ToMicros(source.locked_until), source.lockouts,
                          ToMicros(source.forget_after)},
                         source.revision);
    if (!s.ok()) return s;
  }
  for (const ChallengeRecord& c : write.challenges) {
    absl::Status s =
        Put(db, "challenges", kChallengeColumns,
            {c.challenge_id, c.customer_id, static_cast<int64_t>(c.method), c.session_id,
             PostgresParam::Bytes(c.code_hash), ToMicros(c.created_at), ToMicros(c.expires_at),
             c.attempts_used, c.max_attempts, static_cast<int64_t>(c.state), c.start_request_id,
             c.complete_request_id, PostgresParam::Bytes(c.completed_code_hash), c.token_id,
             ToMicros(c.token_issued_at), ToMicros(c.token_expires_at)},
            c.revision);
    if (!s.ok()) return s;
  }
  for (const EnrollmentRecord& e : write.enrollments) {
    absl::Status s =
        Put(db, "enrollments", kEnrollmentColumns,
            {e.enrollment_id, e.customer_id, PostgresParam::Bytes(e.secret_sealed), e.actor_id,
             ToMicros(e.created_at), ToMicros(e.expires_at), e.attempts_used,
             static_cast<int64_t>(e.used), e.start_request_id, e.account_label,
             e.confirm_request_id, ToMicros(e.confirmed_at), static_cast<int64_t>(e.replaced),
             static_cast<int64_t>(e.by_supervisor), e.change_id},
            e.revision);
    if (!s.ok()) return s;
  }
  // Changes read before new ones: a superseded change leaves the pending
  // state before its successor takes the one pending slot.
  for (bool stored : {true, false}) {
    for (const AccountChangeRecord& c : write.changes) {
      if ((c.revision != 0) != stored) continue;
      absl::Status s =
          Put(db, "account_changes", kChangeColumns,
              {c.change_id, c.customer_id, static_cast<int64_t>(c.method), c.new_address,
               PostgresParam::Bytes(c.new_secret_sealed), c.totp_step, c.requested_by,
               ToMicros(c.requested_at), ToMicros(c.effective_at), static_cast<int64_t>(c.state),
               c.resolution, c.resolved_by, ToMicros(c.resolved_at),
               PostgresParam::Bytes(c.code_hash), c.code_attempts, JoinMethods(c.notified),
               ToMicros(c.forget_after)},
              c.revision);
      if (!s.ok()) return s;
    }
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& PostgresIdentityMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the tables and indexes of SQLite's IdentityMigrations, in
      // PostgreSQL's types, each row with the revision replicas write over;
      // one pending change per customer and method, enforced. No column
      // holds a one-time code or a TOTP secret in plaintext.
      R"sql(
CREATE TABLE customers (
  customer_id TEXT PRIMARY KEY,
  email TEXT NOT NULL,
  phone TEXT NOT NULL,
  totp_secret_sealed BYTEA NOT NULL,  -- AES-256-GCM; empty: no authenticator
  totp_enrolled_at_micros BIGINT NOT NULL,
  last_totp_step BIGINT NOT NULL,
  current_challenge_id TEXT NOT NULL,
  locked_until_micros BIGINT NOT NULL,
  recent_starts TEXT NOT NULL,  -- comma-separated Unix microseconds
  recent_failures TEXT NOT NULL,
  recent_enrollments TEXT NOT NULL,
  lockouts INTEGER NOT NULL,
  revision BIGINT NOT NULL
);
CREATE TABLE sources (
  source_key TEXT PRIMARY KEY,  -- HMAC-SHA256 of the address, hex
  recent_failures TEXT NOT NULL,
  locked_until_micros BIGINT NOT NULL,
  lockouts INTEGER NOT NULL,
  forget_after_micros BIGINT NOT NULL,
  revision BIGINT NOT NULL
);
CREATE INDEX sources_by_forget_after ON sources (forget_after_micros);
CREATE TABLE challenges (
  challenge_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  method INTEGER NOT NULL,
  session_id TEXT NOT NULL,
  code_hash BYTEA NOT NULL,  -- HMAC-SHA256; empty for TOTP
  created_at_micros BIGINT NOT NULL,
  expires_at_micros BIGINT NOT NULL,
  attempts_used INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  state INTEGER NOT NULL,  -- 0 open, 1 used, 2 replaced
  start_request_id TEXT NOT NULL,
  complete_request_id TEXT NOT NULL,
  completed_code_hash BYTEA NOT NULL,
  token_id TEXT NOT NULL,
  token_issued_at_micros BIGINT NOT NULL,
  token_expires_at_micros BIGINT NOT NULL,
  revision BIGINT NOT NULL
);
CREATE UNIQUE INDEX challenges_by_request ON challenges (customer_id, start_request_id)
  WHERE start_request_id <> '';
CREATE INDEX challenges_by_expiry ON challenges (expires_at_micros);
CREATE TABLE enrollments (
  enrollment_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  secret_sealed BYTEA NOT NULL,
  actor_id TEXT NOT NULL,
  created_at_micros BIGINT NOT NULL,
  expires_at_micros BIGINT NOT NULL,
  attempts_used INTEGER NOT NULL,
  used INTEGER NOT NULL,
  start_request_id TEXT NOT NULL,
  account_label TEXT NOT NULL,
  confirm_request_id TEXT NOT NULL,
  confirmed_at_micros BIGINT NOT NULL,
  replaced INTEGER NOT NULL,
  by_supervisor INTEGER NOT NULL,
  change_id TEXT NOT NULL,
  revision BIGINT NOT NULL
);
CREATE UNIQUE INDEX enrollments_by_request ON enrollments (customer_id, start_request_id)
  WHERE start_request_id <> '';
CREATE INDEX enrollments_by_expiry ON enrollments (expires_at_micros);
CREATE TABLE account_changes (
  change_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  method INTEGER NOT NULL,
  new_address TEXT NOT NULL,
  new_secret_sealed BYTEA NOT NULL,  -- AES-256-GCM; empty for contacts
  totp_step BIGINT NOT NULL,
  requested_by TEXT NOT NULL,
  requested_at_micros BIGINT NOT NULL,
  effective_at_micros BIGINT NOT NULL,
  state INTEGER NOT NULL,  -- 1 pending, 2 applied, 3 cancelled
  resolution INTEGER NOT NULL,
  resolved_by TEXT NOT NULL,
  resolved_at_micros BIGINT NOT NULL,
  code_hash BYTEA NOT NULL,  -- HMAC-SHA256 of the confirmation code
  code_attempts INTEGER NOT NULL,
  notified TEXT NOT NULL,  -- comma-separated VerificationMethod numbers
  forget_after_micros BIGINT NOT NULL,
  revision BIGINT NOT NULL
);
CREATE INDEX account_changes_by_customer ON account_changes (customer_id, requested_at_micros);
CREATE UNIQUE INDEX account_changes_one_pending ON account_changes (customer_id, method)
  WHERE state = 1;
CREATE INDEX account_changes_due ON account_changes (effective_at_micros) WHERE state = 1;
CREATE INDEX account_changes_by_forget_after ON account_changes (forget_after_micros);
)sql",
      events::kPostgresOutboxMigration,
  };
  return *migrations;
}

PostgresIdentityStore::PostgresIdentityStore(std::string uri, std::string topic,
                                             std::function<void()> after_commit)
    : topic_(std::move(topic)), after_commit_(std::move(after_commit)), pool_(std::move(uri)) {}

absl::Status PostgresIdentityStore::Admit() { return absl::OkStatus(); }

namespace {

// The one record (or none) `sql` selects with `params`.
template <typename Record, typename FromRow>
absl::StatusOr<std::optional<Record>> SelectOne(storage::PostgresPool& pool,
                                                const std::string& sql,
                                                const std::vector<PostgresParam>& params,
                                                FromRow from_row) {
  std::vector<Record> found;
  absl::Status status = pool.Run([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<std::vector<Record>> rows = SelectAll<Record>(db, sql, params, from_row);
    if (!rows.ok()) return rows.status();
    found = *std::move(rows);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

template <typename Record, typename FromRow>
absl::StatusOr<std::vector<Record>> SelectMany(storage::PostgresPool& pool,
                                               const std::string& sql,
                                               const std::vector<PostgresParam>& params,
                                               FromRow from_row) {
  std::vector<Record> found;
  absl::Status status = pool.Run([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<std::vector<Record>> rows = SelectAll<Record>(db, sql, params, from_row);
    if (!rows.ok()) return rows.status();
    found = *std::move(rows);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return found;
}

}  // namespace

absl::StatusOr<std::optional<CustomerRecord>> PostgresIdentityStore::GetCustomer(
    const std::string& customer_id) {
  return SelectOne<CustomerRecord>(
      pool_, Select(kCustomerColumns, "customers", "WHERE customer_id = $1"), {customer_id},
      CustomerFromRow);
}

absl::StatusOr<std::optional<ChallengeRecord>> PostgresIdentityStore::GetChallenge(
    const std::string& challenge_id) {
  return SelectOne<ChallengeRecord>(
      pool_, Select(kChallengeColumns, "challenges", "WHERE challenge_id = $1"), {challenge_id},
      ChallengeFromRow);
}

absl::StatusOr<std::optional<EnrollmentRecord>> PostgresIdentityStore::GetEnrollment(
    const std::string& enrollment_id) {
  return SelectOne<EnrollmentRecord>(
      pool_, Select(kEnrollmentColumns, "enrollments", "WHERE enrollment_id = $1"),
      {enrollment_id}, EnrollmentFromRow);
}

absl::StatusOr<std::optional<SourceRecord>> PostgresIdentityStore::GetSource(
    const std::string& source_key) {
  return SelectOne<SourceRecord>(pool_,
                                 Select(kSourceColumns, "sources", "WHERE source_key = $1"),
                                 {source_key}, SourceFromRow);
}

absl::StatusOr<std::optional<AccountChangeRecord>> PostgresIdentityStore::GetChange(
    const std::string& change_id) {
  return SelectOne<AccountChangeRecord>(
      pool_, Select(kChangeColumns, "account_changes", "WHERE change_id = $1"), {change_id},
      ChangeFromRow);
}

absl::StatusOr<std::vector<AccountChangeRecord>> PostgresIdentityStore::ListChanges(
    const std::string& customer_id, int limit) {
  return SelectMany<AccountChangeRecord>(
      pool_,
      Select(kChangeColumns, "account_changes",
             "WHERE customer_id = $1 ORDER BY requested_at_micros DESC, change_id DESC "
             "LIMIT $2"),
      {customer_id, limit}, ChangeFromRow);
}

absl::StatusOr<std::vector<AccountChangeRecord>> PostgresIdentityStore::PendingChanges(
    const std::string& customer_id) {
  return SelectMany<AccountChangeRecord>(
      pool_, Select(kChangeColumns, "account_changes", "WHERE customer_id = $1 AND state = 1"),
      {customer_id}, ChangeFromRow);
}

absl::StatusOr<std::vector<AccountChangeRecord>> PostgresIdentityStore::DueChanges(
    absl::Time now, int limit) {
  return SelectMany<AccountChangeRecord>(
      pool_,
      Select(kChangeColumns, "account_changes",
             "WHERE state = 1 AND effective_at_micros <= $1 "
             "ORDER BY effective_at_micros, change_id LIMIT $2"),
      {ToMicros(now), limit}, ChangeFromRow);
}

absl::StatusOr<std::optional<ChallengeRecord>> PostgresIdentityStore::FindChallengeByRequest(
    const std::string& customer_id, const std::string& request_id) {
  return SelectOne<ChallengeRecord>(
      pool_,
      Select(kChallengeColumns, "challenges",
             "WHERE customer_id = $1 AND start_request_id = $2 AND start_request_id <> ''"),
      {customer_id, request_id}, ChallengeFromRow);
}

absl::StatusOr<std::optional<EnrollmentRecord>> PostgresIdentityStore::FindEnrollmentByRequest(
    const std::string& customer_id, const std::string& request_id) {
  return SelectOne<EnrollmentRecord>(
      pool_,
      Select(kEnrollmentColumns, "enrollments",
             "WHERE customer_id = $1 AND start_request_id = $2 AND start_request_id <> ''"),
      {customer_id, request_id}, EnrollmentFromRow);
}

void PostgresIdentityStore::Apply(IdentityWrite write, std::function<void(absl::Status)> done) {
  absl::Status status =
      pool_.InTransaction([&](PostgresConnection& db) { return WriteAll(db, write, topic_); });
  if (status.ok() && !write.events.empty() && after_commit_) after_commit_();
  done(status);
}

absl::StatusOr<int> PostgresIdentityStore::DeleteExpired(absl::Time cutoff, int limit) {
  int deleted = 0;
  absl::Status status = pool_.InTransaction([&](PostgresConnection& db) -> absl::Status {
    deleted = 0;
    for (const auto& [table, id, expiry] :
         {std::tuple{"challenges", "challenge_id", "expires_at_micros"},
          std::tuple{"enrollments", "enrollment_id", "expires_at_micros"},
          std::tuple{"sources", "source_key", "forget_after_micros"},
          std::tuple{"account_changes", "change_id", "forget_after_micros"}}) {
      absl::StatusOr<PostgresRows> removed =
          db.Query(absl::StrCat("DELETE FROM ", table, " WHERE ", id, " IN (SELECT ", id,
                                " FROM ", table, " WHERE ", expiry, " < $1 LIMIT $2)"),
                   {ToMicros(cutoff), limit});
      if (!removed.ok()) return removed.status();
      deleted += static_cast<int>(removed->changed());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return deleted;
}

}  // namespace switchboard::identity
