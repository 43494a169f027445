#include "services/identity/sqlite_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/events/outbox.h"
#include "libs/storage/time_column.h"

namespace switchboard::identity {
namespace {

using storage::FromMicros;
using storage::ToMicros;

std::string JoinTimes(const std::vector<absl::Time>& times) {
  return absl::StrJoin(times, ",", [](std::string* out, absl::Time t) {
    absl::StrAppend(out, ToMicros(t));
  });
}

absl::StatusOr<std::vector<absl::Time>> SplitTimes(const std::string& text) {
  std::vector<absl::Time> times;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t micros = 0;
    if (!absl::SimpleAtoi(part, &micros)) {
      return absl::DataLossError("identity.db: unreadable time list");
    }
    times.push_back(FromMicros(micros));
  }
  return times;
}

absl::Status WriteAll(storage::Database& db, const IdentityWrite& write,
                      const std::string& topic) {
  for (const CustomerRecord& c : write.customers) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO customers(customer_id, email, phone, totp_secret_sealed, "
        "totp_enrolled_at_micros, last_totp_step, current_challenge_id, "
        "locked_until_micros, recent_starts, recent_failures, recent_enrollments) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
                         .Run();
    if (!s.ok()) return s;
  }
  for (const ChallengeRecord& c : write.challenges) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO challenges(challenge_id, customer_id, method, session_id, "
        "code_hash, created_at_micros, expires_at_micros, attempts_used, max_attempts, "
        "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
                         .Run();
    if (!s.ok()) return s;
  }
  for (const EnrollmentRecord& e : write.enrollments) {
    auto upsert = db.Prepare(
        "INSERT OR REPLACE INTO enrollments(enrollment_id, customer_id, secret_sealed, "
        "actor_id, created_at_micros, expires_at_micros, attempts_used, used) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!upsert.ok()) return upsert.status();
    absl::Status s = upsert->Bind(1, e.enrollment_id)
                         .Bind(2, e.customer_id)
                         .BindBlob(3, e.secret_sealed)
                         .Bind(4, e.actor_id)
                         .Bind(5, ToMicros(e.created_at))
                         .Bind(6, ToMicros(e.expires_at))
                         .Bind(7, e.attempts_used)
                         .Bind(8, static_cast<int64_t>(e.used))
                         .Run();
    if (!s.ok()) return s;
  }
  for (const std::string& id : write.deleted_challenge_ids) {
    auto del = db.Prepare("DELETE FROM challenges WHERE challenge_id = ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, id).Run(); !s.ok()) return s;
  }
  for (const std::string& id : write.deleted_enrollment_ids) {
    auto del = db.Prepare("DELETE FROM enrollments WHERE enrollment_id = ?");
    if (!del.ok()) return del.status();
    if (absl::Status s = del->Bind(1, id).Run(); !s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LoadAll(storage::Database& db, IdentityStore::Contents& contents) {
  auto customers = db.Prepare(
      "SELECT customer_id, email, phone, totp_secret_sealed, totp_enrolled_at_micros, "
      "last_totp_step, current_challenge_id, locked_until_micros, recent_starts, "
      "recent_failures, recent_enrollments FROM customers");
  if (!customers.ok()) return customers.status();
  while (true) {
    absl::StatusOr<bool> row = customers->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    CustomerRecord c;
    c.customer_id = customers->ColumnText(0);
    c.email = customers->ColumnText(1);
    c.phone = customers->ColumnText(2);
    c.totp_secret_sealed = customers->ColumnBlob(3);
    c.totp_enrolled_at = FromMicros(customers->ColumnInt(4));
    c.last_totp_step = customers->ColumnInt(5);
    c.current_challenge_id = customers->ColumnText(6);
    c.locked_until = FromMicros(customers->ColumnInt(7));
    for (auto [column, out] : {std::pair{8, &c.recent_starts},
                               std::pair{9, &c.recent_failures},
                               std::pair{10, &c.recent_enrollments}}) {
      absl::StatusOr<std::vector<absl::Time>> times = SplitTimes(customers->ColumnText(column));
      if (!times.ok()) return times.status();
      *out = std::move(*times);
    }
    contents.customers.push_back(std::move(c));
  }
  auto challenges = db.Prepare(
      "SELECT challenge_id, customer_id, method, session_id, code_hash, created_at_micros, "
      "expires_at_micros, attempts_used, max_attempts, state FROM challenges");
  if (!challenges.ok()) return challenges.status();
  while (true) {
    absl::StatusOr<bool> row = challenges->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ChallengeRecord c;
    c.challenge_id = challenges->ColumnText(0);
    c.customer_id = challenges->ColumnText(1);
    c.method = static_cast<common::v1::VerificationMethod>(challenges->ColumnInt(2));
    c.session_id = challenges->ColumnText(3);
    c.code_hash = challenges->ColumnBlob(4);
    c.created_at = FromMicros(challenges->ColumnInt(5));
    c.expires_at = FromMicros(challenges->ColumnInt(6));
    c.attempts_used = static_cast<int>(challenges->ColumnInt(7));
    c.max_attempts = static_cast<int>(challenges->ColumnInt(8));
    c.state = static_cast<ChallengeState>(challenges->ColumnInt(9));
    contents.challenges.push_back(std::move(c));
  }
  auto enrollments = db.Prepare(
      "SELECT enrollment_id, customer_id, secret_sealed, actor_id, created_at_micros, "
      "expires_at_micros, attempts_used, used FROM enrollments");
  if (!enrollments.ok()) return enrollments.status();
  while (true) {
    absl::StatusOr<bool> row = enrollments->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    EnrollmentRecord e;
    e.enrollment_id = enrollments->ColumnText(0);
    e.customer_id = enrollments->ColumnText(1);
    e.secret_sealed = enrollments->ColumnBlob(2);
    e.actor_id = enrollments->ColumnText(3);
    e.created_at = FromMicros(enrollments->ColumnInt(4));
    e.expires_at = FromMicros(enrollments->ColumnInt(5));
    e.attempts_used = static_cast<int>(enrollments->ColumnInt(6));
    e.used = enrollments->ColumnInt(7) != 0;
    contents.enrollments.push_back(std::move(e));
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
  };
  return *migrations;
}

SqliteIdentityStore::SqliteIdentityStore(storage::GroupCommitter* committer,
                                         std::string topic,
                                         std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)) {}

absl::StatusOr<IdentityStore::Contents> SqliteIdentityStore::Load() {
  Contents contents;
  // Through the committer: its thread owns the connection.
  absl::Status status = committer_->Commit(
      [&contents](storage::Database& db) { return LoadAll(db, contents); });
  if (!status.ok()) return status;
  return contents;
}

void SqliteIdentityStore::Apply(IdentityWrite write,
                                std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

}  // namespace switchboard::identity
