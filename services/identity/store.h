#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/identity/model.h"

namespace switchboard::identity {

// Durable identity state. Nothing of it is cached: the logic reads what it
// needs per call, through primary keys and indexes, so memory does not grow
// with customers or history. Implementations: SqliteIdentityStore,
// PostgresIdentityStore (shared by replicas).
// Thread-safe; reads and DeleteExpired block (call them from worker threads).
class IdentityStore {
 public:
  virtual ~IdentityStore() = default;

  // The admission check of a write a client asked for: OK, or
  // RESOURCE_EXHAUSTED with a retry-after while the write queue is full.
  // Call it before deciding anything.
  virtual absl::Status Admit() = 0;

  // Committed state (nullopt when there is no such record).
  virtual absl::StatusOr<std::optional<CustomerRecord>> GetCustomer(
      const std::string& customer_id) = 0;
  virtual absl::StatusOr<std::optional<ChallengeRecord>> GetChallenge(
      const std::string& challenge_id) = 0;
  virtual absl::StatusOr<std::optional<EnrollmentRecord>> GetEnrollment(
      const std::string& enrollment_id) = 0;
  virtual absl::StatusOr<std::optional<SourceRecord>> GetSource(
      const std::string& source_key) = 0;
  virtual absl::StatusOr<std::optional<AccountChangeRecord>> GetChange(
      const std::string& change_id) = 0;
  // A customer's changes, newest first, at most `limit`.
  virtual absl::StatusOr<std::vector<AccountChangeRecord>> ListChanges(
      const std::string& customer_id, int limit) = 0;
  // A customer's pending changes (at most one per contact and one for the
  // authenticator).
  virtual absl::StatusOr<std::vector<AccountChangeRecord>> PendingChanges(
      const std::string& customer_id) = 0;
  // Pending changes whose cool-down ended at or before `now`, oldest first,
  // at most `limit`.
  virtual absl::StatusOr<std::vector<AccountChangeRecord>> DueChanges(absl::Time now,
                                                                      int limit) = 0;
  // The challenge (enrollment) `customer_id` started with the non-empty
  // `request_id`.
  virtual absl::StatusOr<std::optional<ChallengeRecord>> FindChallengeByRequest(
      const std::string& customer_id, const std::string& request_id) = 0;
  virtual absl::StatusOr<std::optional<EnrollmentRecord>> FindEnrollmentByRequest(
      const std::string& customer_id, const std::string& request_id) = 0;

  // Commits `write` (state and events in one transaction). Writes commit in
  // the order Apply is called; `done` then runs with the outcome, in the
  // same order, on a thread of the store's (PostgreSQL: on the caller's,
  // where calls of one customer are ordered by the logic's lock). `done`
  // must not block. A failed write leaves nothing behind. ABORTED: a store
  // shared by replicas found a record of `write` written by another since
  // its `revision` was read (see model.h); read and decide again.
  virtual void Apply(IdentityWrite write, std::function<void(absl::Status)> done) = 0;

  // Deletes up to `limit` challenges and up to `limit` enrollments that
  // expired before `cutoff`, and up to `limit` sources and `limit` account
  // changes to forget before it; returns how many rows went.
  virtual absl::StatusOr<int> DeleteExpired(absl::Time cutoff, int limit) = 0;
};

}  // namespace switchboard::identity
