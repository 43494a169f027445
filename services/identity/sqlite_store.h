#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "services/identity/store.h"

namespace switchboard::identity {

// The schema migrations of identity.db, oldest first (includes the outbox).
const std::vector<std::string>& IdentityMigrations();

// IdentityStore on SQLite: customers, challenges, enrollments and the event
// outbox in one file. Every write goes through the service's
// GroupCommitter; reads use a small pool of reader connections of their own
// (WAL lets them run while the writer commits) and see committed data only.
// Codes are stored only as keyed hashes and TOTP secrets only sealed (the
// logic hands them over that way). Thread-safe.
class SqliteIdentityStore : public IdentityStore {
 public:
  // `committer` writes to the database at `path`, migrated with
  // IdentityMigrations(); events go to `topic`. `after_commit` (may be
  // empty) runs after each successful commit (the outbox relay's Notify).
  SqliteIdentityStore(storage::GroupCommitter* committer, std::string path, std::string topic,
                      std::function<void()> after_commit);

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
  // Runs `read` on an idle reader connection (opening one if none is idle).
  absl::Status Read(const std::function<absl::Status(storage::Database&)>& read);

  storage::GroupCommitter* const committer_;
  const std::string path_;
  const std::string topic_;
  const std::function<void()> after_commit_;

  absl::Mutex readers_mu_;
  // At most as many as reads ran at once (the worker threads).
  std::vector<std::unique_ptr<storage::Database>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace switchboard::identity
