#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/postgres_pool.h"
#include "services/identity/store.h"

namespace switchboard::identity {

// The schema migrations of identity on PostgreSQL, oldest first (includes
// the outbox of libs/events/postgres_outbox.h).
const std::vector<std::string>& PostgresIdentityMigrations();

// IdentityStore on a PostgreSQL database that several identity replicas
// share: customers, sources, challenges, enrollments, account changes and
// the event outbox, each write and its events in one transaction.
//
// The logic decides from records it read before writing, and its per-key
// locks (KeyLocks) hold in one process only. So every row carries a
// revision, and Apply writes a record only over the revision it was read
// at (an UPDATE ... WHERE revision = read one; a record read as absent is
// INSERTed and must still be absent). When another replica wrote one of
// them meanwhile, nothing of the write is kept and Apply reports ABORTED:
// the logic reads again and decides again. Unique indexes catch what no
// single row guards: one challenge or enrollment per request id and
// customer, one pending change per customer and method.
//
// Apply commits on the calling thread and then runs `done` there: writes
// of one customer are ordered by the logic's lock, those of different
// customers need no order. Connections: a storage::PostgresPool on `uri`.
//
// Thread-safe; blocking.
class PostgresIdentityStore : public IdentityStore {
 public:
  // `uri` is a database migrated with PostgresIdentityMigrations(); events
  // go to `topic`. `after_commit` (may be empty) runs after each commit that
  // appended events (this process's relay's Notify).
  PostgresIdentityStore(std::string uri, std::string topic, std::function<void()> after_commit);

  // OK: callers are bounded by the RPC workers and wait on PostgreSQL's own
  // locks; there is no write queue to overflow.
  absl::Status Admit() override;
  absl::StatusOr<std::optional<CustomerRecord>> GetCustomer(
      const std::string& customer_id) override;
  absl::StatusOr<std::optional<ChallengeRecord>> GetChallenge(
      const std::string& challenge_id) override;
  absl::StatusOr<std::optional<EnrollmentRecord>> GetEnrollment(
      const std::string& enrollment_id) override;
  absl::StatusOr<std::optional<SourceRecord>> GetSource(const std::string& source_key) override;
  absl::StatusOr<std::optional<AccountChangeRecord>> GetChange(
      const std::string& change_id) override;
  absl::StatusOr<std::vector<AccountChangeRecord>> ListChanges(const std::string& customer_id,
                                                              int limit) override;
  absl::StatusOr<std::vector<AccountChangeRecord>> PendingChanges(
      const std::string& customer_id) override;
  absl::StatusOr<std::vector<AccountChangeRecord>> DueChanges(absl::Time now,
                                                             int limit) override;
  absl::StatusOr<std::optional<ChallengeRecord>> FindChallengeByRequest(
      const std::string& customer_id, const std::string& request_id) override;
  absl::StatusOr<std::optional<EnrollmentRecord>> FindEnrollmentByRequest(
      const std::string& customer_id, const std::string& request_id) override;
  void Apply(IdentityWrite write, std::function<void(absl::Status)> done) override;
  absl::StatusOr<int> DeleteExpired(absl::Time cutoff, int limit) override;

 private:
  const std::string topic_;
  const std::function<void()> after_commit_;
  storage::PostgresPool pool_;
};

}  // namespace switchboard::identity
