#include "services/identity/sqlite_store.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "libs/events/outbox.h"
#include "libs/storage/time_column.h"
#include "services/identity/store_sql.h"

namespace switchboard::identity {
namespace {

using storage::FromMicros;
using storage::ToMicros;

// Every row `sql` selects with `keys` bound, converted by `from_row`.
template <typename Record, typename FromRow>
absl::StatusOr<std::vector<Record>> SelectAll(storage::Database& db, const std::string& sql,
                                              const std::vector<int64_t>& numbers,
                                              const std::vector<std::string>& keys,
                                              FromRow from_row) {
  auto select = db.Prepare(sql);
  if (!select.ok()) return select.status();
  int i = 1;
  for (const std::string& key : keys) select->Bind(i++, key);
  for (int64_t number : numbers) select->Bind(i++, number);
  std::vector<Record> out;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::StatusOr<Record> record = from_row(storage::SqliteRow(*select));
    if (!record.ok()) return record.status();
    out.push_back(*std::move(record));
  }
  return out;
}

// The one row `sql` selects with `keys` bound, converted by `from_row`.
template <typename Record, typename FromRow>
absl::StatusOr<std::optional<Record>> SelectOne(storage::Database& db, const std::string& sql,
                                                const std::vector<std::string>& keys,
                                                FromRow from_row) {
  auto select = db.Prepare(sql);
  if (!select.ok()) return select.status();
  for (size_t i = 0; i < keys.size(); ++i) select->Bind(static_cast<int>(i + 1), keys[i]);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  absl::StatusOr<Record> record = from_row(storage::SqliteRow(*select));
  select->Reset();
  if (!record.ok()) return record.status();
  return *std::move(record);
}

absl::Status WriteAll(storage::Database& db, const IdentityWrite& write,
                      const std::string& topic) {
  for (const CustomerRecord& c : write.customers) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO customers(", kCustomerColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, c.customer_id)
                         .Bind(2, c.email)
                         .Bind(3, c.phone)
                         .BindBlob(4, c.totp_secret_sealed)
                         .Bind(5, ToMicros(c.totp_enrolled_at))
                         .Bind(6, c.last_totp_step)
                         .Bind(7, c.current_challenge_id)
                         .Bind(8, ToMicros(c.locked_until))
                         .Bind(9, JoinTimes(c.recent_starts))
                         .Bind(10, JoinTimes(c.recent_failures))
                         .Bind(11, JoinTimes(c.recent_enrollments))
                         .Bind(12, c.lockouts)
                         .Run();
    if (!s.ok()) return s;
  }
  for (const SourceRecord& source : write.sources) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO sources(", kSourceColumns,
                                          ") VALUES (?, ?, ?, ?, ?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, source.source_key)
                         .Bind(2, JoinTimes(source.recent_failures))
                         .Bind(3, ToMicros(source.locked_until))
                         .Bind(4, source.lockouts)
                         .Bind(5, ToMicros(source.forget_after))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const ChallengeRecord& c : write.challenges) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO challenges(", kChallengeColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                          "?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, c.challenge_id)
                         .Bind(2, c.customer_id)
                         .Bind(3, static_cast<int64_t>(c.method))
                         .Bind(4, c.session_id)
                         .BindBlob(5, c.code_hash)
                         .Bind(6, ToMicros(c.created_at))
                         .Bind(7, ToMicros(c.expires_at))
                         .Bind(8, c.attempts_used)
                         .Bind(9, c.max_attempts)
                         .Bind(10, static_cast<int64_t>(c.state))
                         .Bind(11, c.start_request_id)
                         .Bind(12, c.complete_request_id)
                         .BindBlob(13, c.completed_code_hash)
                         .Bind(14, c.token_id)
                         .Bind(15, ToMicros(c.token_issued_at))
                         .Bind(16, ToMicros(c.token_expires_at))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const EnrollmentRecord& e : write.enrollments) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO enrollments(",
                                          kEnrollmentColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                          "?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, e.enrollment_id)
                         .Bind(2, e.customer_id)
                         .BindBlob(3, e.secret_sealed)
                         .Bind(4, e.actor_id)
                         .Bind(5, ToMicros(e.created_at))
                         .Bind(6, ToMicros(e.expires_at))
                         .Bind(7, e.attempts_used)
                         .Bind(8, static_cast<int64_t>(e.used))
                         .Bind(9, e.start_request_id)
                         .Bind(10, e.account_label)
                         .Bind(11, e.confirm_request_id)
                         .Bind(12, ToMicros(e.confirmed_at))
                         .Bind(13, static_cast<int64_t>(e.replaced))
                         .Bind(14, static_cast<int64_t>(e.by_supervisor))
                         .Bind(15, e.change_id)
                         .Run();
    if (!s.ok()) return s;
  }
  for (const AccountChangeRecord& c : write.changes) {
    auto upsert = db.Prepare(absl::StrCat("INSERT OR REPLACE INTO account_changes(",
                                          kChangeColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                          "?, ?, ?)"));
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, c.change_id)
                         .Bind(2, c.customer_id)
                         .Bind(3, static_cast<int64_t>(c.method))
                         .Bind(4, c.new_address)
                         .BindBlob(5, c.new_secret_sealed)
                         .Bind(6, c.totp_step)
                         .Bind(7, c.requested_by)
                         .Bind(8, ToMicros(c.requested_at))
                         .Bind(9, ToMicros(c.effective_at))
                         .Bind(10, static_cast<int64_t>(c.state))
                         .Bind(11, c.resolution)
                         .Bind(12, c.resolved_by)
                         .Bind(13, ToMicros(c.resolved_at))
                         .BindBlob(14, c.code_hash)
                         .Bind(15, c.code_attempts)
                         .Bind(16, JoinMethods(c.notified))
                         .Bind(17, ToMicros(c.forget_after))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& IdentityMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: customers, challenges and TOTP enrollments. No column ever holds a
      // one-time code or a TOTP secret in plaintext.
      "CREATE TABLE customers("
      "  customer_id TEXT PRIMARY KEY,"
      "  email TEXT NOT NULL,"
      "  phone TEXT NOT NULL,"
      "  totp_secret_sealed BLOB NOT NULL,"  // AES-256-GCM; empty: no authenticator
      "  totp_enrolled_at_micros INTEGER NOT NULL,"
      "  last_totp_step INTEGER NOT NULL,"
      "  current_challenge_id TEXT NOT NULL,"
      "  locked_until_micros INTEGER NOT NULL,"
      "  recent_starts TEXT NOT NULL,"  // comma-separated Unix microseconds
      "  recent_failures TEXT NOT NULL,"
      "  recent_enrollments TEXT NOT NULL);"
      "CREATE TABLE challenges("
      "  challenge_id TEXT PRIMARY KEY,"
      "  customer_id TEXT NOT NULL,"
      "  method INTEGER NOT NULL,"
      "  session_id TEXT NOT NULL,"
      "  code_hash BLOB NOT NULL,"  // HMAC-SHA256; empty for TOTP
      "  created_at_micros INTEGER NOT NULL,"
      "  expires_at_micros INTEGER NOT NULL,"
      "  attempts_used INTEGER NOT NULL,"
      "  max_attempts INTEGER NOT NULL,"
      "  state INTEGER NOT NULL);"  // 0 open, 1 used, 2 replaced
      "CREATE TABLE enrollments("
      "  enrollment_id TEXT PRIMARY KEY,"
      "  customer_id TEXT NOT NULL,"
      "  secret_sealed BLOB NOT NULL,"
      "  actor_id TEXT NOT NULL,"
      "  created_at_micros INTEGER NOT NULL,"
      "  expires_at_micros INTEGER NOT NULL,"
      "  attempts_used INTEGER NOT NULL,"
      "  used INTEGER NOT NULL);",
      // 2: the event outbox.
      events::kOutboxMigration,
      // 3: request ids, so that retries get the first answer, and the
      // indexes that replace keeping everything in memory: request ids per
      // customer, and expiry for the sweep.
      "ALTER TABLE challenges ADD COLUMN start_request_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE challenges ADD COLUMN complete_request_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE challenges ADD COLUMN completed_code_hash BLOB NOT NULL DEFAULT x'';"
      "ALTER TABLE challenges ADD COLUMN token_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE challenges ADD COLUMN token_issued_at_micros INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE challenges ADD COLUMN token_expires_at_micros INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE enrollments ADD COLUMN start_request_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE enrollments ADD COLUMN account_label TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE enrollments ADD COLUMN confirm_request_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE enrollments ADD COLUMN confirmed_at_micros INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE enrollments ADD COLUMN replaced INTEGER NOT NULL DEFAULT 0;"
      "CREATE UNIQUE INDEX challenges_by_request ON challenges(customer_id, start_request_id) "
      "  WHERE start_request_id != '';"
      "CREATE INDEX challenges_by_expiry ON challenges(expires_at_micros);"
      "CREATE UNIQUE INDEX enrollments_by_request ON enrollments(customer_id, start_request_id) "
      "  WHERE start_request_id != '';"
      "CREATE INDEX enrollments_by_expiry ON enrollments(expires_at_micros);",
      // 4: lockouts that escalate, per customer and per source (a keyed hash
      // of the caller's address), kept across restarts.
      "ALTER TABLE customers ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;"
      "CREATE TABLE sources("
      "  source_key TEXT PRIMARY KEY,"  // HMAC-SHA256 of the address, hex
      "  recent_failures TEXT NOT NULL,"
      "  locked_until_micros INTEGER NOT NULL,"
      "  lockouts INTEGER NOT NULL,"
      "  forget_after_micros INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE INDEX sources_by_forget_after ON sources(forget_after_micros);",
      // 5: changes of contacts and authenticators by the support desk, which
      // wait for a cool-down or the customer's confirmation; enrollments
      // know whether a supervisor started them.
      "ALTER TABLE enrollments ADD COLUMN by_supervisor INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE enrollments ADD COLUMN change_id TEXT NOT NULL DEFAULT '';"
      "CREATE TABLE account_changes("
      "  change_id TEXT PRIMARY KEY,"
      "  customer_id TEXT NOT NULL,"
      "  method INTEGER NOT NULL,"
      "  new_address TEXT NOT NULL,"
      "  new_secret_sealed BLOB NOT NULL,"  // AES-256-GCM; empty for contacts
      "  totp_step INTEGER NOT NULL,"
      "  requested_by TEXT NOT NULL,"
      "  requested_at_micros INTEGER NOT NULL,"
      "  effective_at_micros INTEGER NOT NULL,"
      "  state INTEGER NOT NULL,"  // 1 pending, 2 applied, 3 cancelled
      "  resolution INTEGER NOT NULL,"
      "  resolved_by TEXT NOT NULL,"
      "  resolved_at_micros INTEGER NOT NULL,"
      "  code_hash BLOB NOT NULL,"  // HMAC-SHA256 of the confirmation code
      "  code_attempts INTEGER NOT NULL,"
      "  notified TEXT NOT NULL,"  // comma-separated VerificationMethod numbers
      "  forget_after_micros INTEGER NOT NULL);"
      "CREATE INDEX account_changes_by_customer "
      "  ON account_changes(customer_id, requested_at_micros);"
      "CREATE INDEX account_changes_pending ON account_changes(customer_id) WHERE state = 1;"
      "CREATE INDEX account_changes_due ON account_changes(effective_at_micros) "
      "  WHERE state = 1;"
      "CREATE INDEX account_changes_by_forget_after ON account_changes(forget_after_micros);",
  };
  return *migrations;
}

SqliteIdentityStore::SqliteIdentityStore(storage::GroupCommitter* committer, std::string path,
                                         std::string topic,
                                         std::function<void()> after_commit)
    : committer_(committer),
      path_(std::move(path)),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)) {}

absl::Status SqliteIdentityStore::Admit() { return committer_->Admit(); }

absl::Status SqliteIdentityStore::Read(
    const std::function<absl::Status(storage::Database&)>& read) {
  std::unique_ptr<storage::Database> db;
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
  }
  if (db == nullptr) {
    absl::StatusOr<std::unique_ptr<storage::Database>> opened = storage::Database::Open({path_});
    if (!opened.ok()) return opened.status();
    db = *std::move(opened);
  }
  absl::Status status = read(*db);
  absl::MutexLock lock(&readers_mu_);
  idle_readers_.push_back(std::move(db));
  return status;
}

absl::StatusOr<std::optional<CustomerRecord>> SqliteIdentityStore::GetCustomer(
    const std::string& customer_id) {
  absl::StatusOr<std::optional<CustomerRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<CustomerRecord>(
        db, absl::StrCat("SELECT ", kCustomerColumns, " FROM customers WHERE customer_id = ?"),
        {customer_id}, CustomerFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ChallengeRecord>> SqliteIdentityStore::GetChallenge(
    const std::string& challenge_id) {
  absl::StatusOr<std::optional<ChallengeRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<ChallengeRecord>(
        db, absl::StrCat("SELECT ", kChallengeColumns, " FROM challenges WHERE challenge_id = ?"),
        {challenge_id},
        ChallengeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<EnrollmentRecord>> SqliteIdentityStore::GetEnrollment(
    const std::string& enrollment_id) {
  absl::StatusOr<std::optional<EnrollmentRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<EnrollmentRecord>(
        db,
        absl::StrCat("SELECT ", kEnrollmentColumns, " FROM enrollments WHERE enrollment_id = ?"),
        {enrollment_id},
        EnrollmentFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<SourceRecord>> SqliteIdentityStore::GetSource(
    const std::string& source_key) {
  absl::StatusOr<std::optional<SourceRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<SourceRecord>(
        db, absl::StrCat("SELECT ", kSourceColumns, " FROM sources WHERE source_key = ?"),
        {source_key}, SourceFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<AccountChangeRecord>> SqliteIdentityStore::GetChange(
    const std::string& change_id) {
  absl::StatusOr<std::optional<AccountChangeRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<AccountChangeRecord>(
        db, absl::StrCat("SELECT ", kChangeColumns, " FROM account_changes WHERE change_id = ?"),
        {change_id}, ChangeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<AccountChangeRecord>> SqliteIdentityStore::ListChanges(
    const std::string& customer_id, int limit) {
  absl::StatusOr<std::vector<AccountChangeRecord>> result;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectAll<AccountChangeRecord>(
        db,
        absl::StrCat("SELECT ", kChangeColumns,
                     " FROM account_changes INDEXED BY account_changes_by_customer "
                     "WHERE customer_id = ? ORDER BY requested_at_micros DESC, change_id DESC "
                     "LIMIT ?"),
        {limit}, {customer_id}, ChangeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<AccountChangeRecord>> SqliteIdentityStore::PendingChanges(
    const std::string& customer_id) {
  absl::StatusOr<std::vector<AccountChangeRecord>> result;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectAll<AccountChangeRecord>(
        db,
        absl::StrCat("SELECT ", kChangeColumns,
                     " FROM account_changes INDEXED BY account_changes_pending "
                     "WHERE customer_id = ? AND state = 1"),
        {}, {customer_id}, ChangeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<AccountChangeRecord>> SqliteIdentityStore::DueChanges(absl::Time now,
                                                                                 int limit) {
  absl::StatusOr<std::vector<AccountChangeRecord>> result;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectAll<AccountChangeRecord>(
        db,
        absl::StrCat("SELECT ", kChangeColumns,
                     " FROM account_changes INDEXED BY account_changes_due "
                     "WHERE state = 1 AND effective_at_micros <= ? "
                     "ORDER BY effective_at_micros LIMIT ?"),
        {ToMicros(now), limit}, {}, ChangeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ChallengeRecord>> SqliteIdentityStore::FindChallengeByRequest(
    const std::string& customer_id, const std::string& request_id) {
  absl::StatusOr<std::optional<ChallengeRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<ChallengeRecord>(
        db,
        absl::StrCat("SELECT ", kChallengeColumns,
                     " FROM challenges WHERE customer_id = ? AND start_request_id = ? AND "
                     "start_request_id != ''"),
        {customer_id, request_id},
        ChallengeFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<EnrollmentRecord>> SqliteIdentityStore::FindEnrollmentByRequest(
    const std::string& customer_id, const std::string& request_id) {
  absl::StatusOr<std::optional<EnrollmentRecord>> result = std::nullopt;
  absl::Status status = Read([&](storage::Database& db) {
    result = SelectOne<EnrollmentRecord>(
        db,
        absl::StrCat("SELECT ", kEnrollmentColumns,
                     " FROM enrollments WHERE customer_id = ? AND start_request_id = ? AND "
                     "start_request_id != ''"),
        {customer_id, request_id},
        EnrollmentFromRow);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

void SqliteIdentityStore::Apply(IdentityWrite write, std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

absl::StatusOr<int> SqliteIdentityStore::DeleteExpired(absl::Time cutoff, int limit) {
  int deleted = 0;
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    deleted = 0;
    for (const auto& [table, id, expiry] :
         {std::tuple{"challenges", "challenge_id", "expires_at_micros"},
          std::tuple{"enrollments", "enrollment_id", "expires_at_micros"},
          std::tuple{"sources", "source_key", "forget_after_micros"},
          std::tuple{"account_changes", "change_id", "forget_after_micros"}}) {
      auto remove = db.Prepare(absl::StrCat("DELETE FROM ", table, " WHERE ", id, " IN (SELECT ",
                                            id, " FROM ", table, " WHERE ", expiry,
                                            " < ? LIMIT ?)"));
      if (!remove.ok()) return remove.status();
      if (absl::Status s = remove->Bind(1, ToMicros(cutoff)).Bind(2, limit).Run(); !s.ok()) {
        return s;
      }
      deleted += db.Changes();
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return deleted;
}

}  // namespace switchboard::identity
