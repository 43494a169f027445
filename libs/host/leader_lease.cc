#include "libs/host/leader_lease.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace switchboard::host {

const std::vector<std::pair<std::string, std::string>>& VanishedLeaderSettings() {
  static const auto* settings = new std::vector<std::pair<std::string, std::string>>{
      {"tcp_keepalives_idle", "5"},
      {"tcp_keepalives_interval", "1"},
      {"tcp_keepalives_count", "3"},
      {"tcp_user_timeout", "8000"},  // milliseconds
  };
  return *settings;
}

absl::Status CreateLeaderLease(storage::PostgresConnection& db) {
  // The address came later: a lease of an older version gains it here.
  return db.Execute(
      "CREATE TABLE IF NOT EXISTS leader_lease("
      "singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), "
      "epoch BIGINT NOT NULL, holder TEXT NOT NULL, taken_at TIMESTAMPTZ NOT NULL); "
      "ALTER TABLE leader_lease ADD COLUMN IF NOT EXISTS address TEXT NOT NULL DEFAULT ''");
}

absl::StatusOr<int64_t> TakeLeaderLease(storage::PostgresConnection& db,
                                        absl::string_view holder) {
  absl::StatusOr<storage::PostgresRows> rows = db.Query(
      "INSERT INTO leader_lease(singleton, epoch, holder, taken_at) VALUES (TRUE, 1, $1, now()) "
      "ON CONFLICT (singleton) DO UPDATE SET epoch = leader_lease.epoch + 1, "
      "holder = EXCLUDED.holder, taken_at = EXCLUDED.taken_at, address = '' RETURNING epoch",
      {holder});
  if (!rows.ok()) return rows.status();
  return rows->Int(0, 0);
}

absl::StatusOr<std::string> LeaseHolder(storage::PostgresConnection& db) {
  absl::StatusOr<storage::PostgresRows> rows =
      db.Query("SELECT holder || ' (epoch ' || epoch || ')' FROM leader_lease");
  if (!rows.ok()) return rows.status();
  return rows->empty() ? "" : rows->Text(0, 0);
}

absl::Status PublishLeaderAddress(storage::PostgresConnection& db, int64_t epoch,
                                  absl::string_view address) {
  return db.Query("UPDATE leader_lease SET address = $2 WHERE epoch = $1", {epoch, address})
      .status();
}

absl::StatusOr<std::string> LeaderAddress(storage::PostgresConnection& db) {
  absl::StatusOr<storage::PostgresRows> rows = db.Query("SELECT address FROM leader_lease");
  if (!rows.ok()) return rows.status();
  return rows->empty() ? "" : rows->Text(0, 0);
}

absl::StatusOr<std::string> AddressSeenByDatabase(storage::PostgresConnection& db) {
  absl::StatusOr<storage::PostgresRows> rows =
      db.Query("SELECT COALESCE(host(inet_client_addr()), '')");
  if (!rows.ok()) return rows.status();
  return rows->Text(0, 0);
}

storage::PostgresGroupCommitter::Fence LeaseFence(std::string service, int64_t epoch) {
  return [service = std::move(service), epoch](storage::PostgresConnection& db) -> absl::Status {
    absl::StatusOr<storage::PostgresRows> rows =
        db.Query("SELECT epoch FROM leader_lease FOR SHARE");
    if (!rows.ok()) return rows.status();
    const int64_t now = rows->empty() ? 0 : rows->Int(0, 0);
    if (now == epoch) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("deposed: another ", service,
                     " process took over the PostgreSQL database (epoch ", now, ")"));
  };
}

absl::StatusOr<LeaseLook> LookAtLease(storage::PostgresConnection& db, int64_t lock_key) {
  // A bigint advisory lock shows in pg_locks as its high and low 32 bits
  // (classid, objid) with objsubid 1. The CASE takes the lock again only
  // when this session does not hold it: a session lock taken twice would
  // need two unlocks.
  const uint64_t key = static_cast<uint64_t>(lock_key);
  absl::StatusOr<storage::PostgresRows> rows = db.Query(
      "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
      "AND pid = pg_backend_pid() AND classid = $2::oid AND objid = $3::oid AND objsubid = 1) "
      "THEN 'held' WHEN pg_try_advisory_lock($1) THEN 'retaken' ELSE 'taken' END, "
      "(SELECT epoch FROM leader_lease)",
      {lock_key, static_cast<int64_t>(key >> 32), static_cast<int64_t>(key & 0xffffffffu)});
  if (!rows.ok()) return rows.status();
  LeaseLook look;
  const std::string lock = rows->Text(0, 0);
  look.lock = lock == "held"      ? LeaseLook::Lock::kHeld
              : lock == "retaken" ? LeaseLook::Lock::kRetaken
                                  : LeaseLook::Lock::kTakenByAnother;
  look.epoch = rows->Int(0, 1);
  return look;
}

Leadership Judge(const absl::StatusOr<LeaseLook>& look, int64_t our_epoch) {
  if (!look.ok()) return Leadership::kUnknown;
  if (look->lock == LeaseLook::Lock::kTakenByAnother) return Leadership::kLost;
  // Our lock, but a leader came and went while we had lost it.
  if (look->epoch != our_epoch) return Leadership::kLost;
  return look->lock == LeaseLook::Lock::kRetaken ? Leadership::kRetaken : Leadership::kKept;
}

}  // namespace switchboard::host
