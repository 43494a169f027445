#pragma once

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/identity/model.h"

namespace switchboard::identity {

// Durable identity state. Implementations: SqliteIdentityStore.
class IdentityStore {
 public:
  struct Contents {
    std::vector<CustomerRecord> customers;
    std::vector<ChallengeRecord> challenges;
    std::vector<EnrollmentRecord> enrollments;
  };

  virtual ~IdentityStore() = default;

  // Reads everything (at start).
  virtual absl::StatusOr<Contents> Load() = 0;

  // Commits `write` (state and events in one transaction). Writes commit in
  // the order Apply is called; `done` then runs with the outcome, in the
  // same order, on a thread of the store's. `done` must not block.
  virtual void Apply(IdentityWrite write, std::function<void(absl::Status)> done) = 0;
};

}  // namespace switchboard::identity
