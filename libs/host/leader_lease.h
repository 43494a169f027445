#pragma once

// The leader lease of a service that runs as a fenced leader with hot
// standbys on PostgreSQL (StoreOptions::one_process): the SQL of the lease
// row and the keeper's decision, apart from the Host so they can be tested
// on their own.
//
// The row lives in the service's schema: table leader_lease, one row, its
// epoch bumped by every process that becomes leader (after it took the
// service's advisory lock). Every batch the leader commits first reads the
// row FOR SHARE and checks the epoch is still its own (LeaseFence): a
// takeover's UPDATE waits for the batches in flight, and the old leader's
// later batches fail.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/storage/postgres.h"
#include "libs/storage/postgres_group_commit.h"

namespace switchboard::host {

// Run-time settings every connection of a leader or standby starts with
// (storage::WithSchema): TCP keepalive probes from the server after 5 s of
// silence, 1 s apart, 3 of them, and at most 8 s for sent data to go
// unacknowledged. PostgreSQL then ends the sessions of a leader whose node
// vanished (a power cut, a partition) within about 8 s, and with them its
// advisory lock and the lease row a batch in flight holds FOR SHARE, so a
// standby takes over; by the kernel's defaults that takes over two hours.
// A connection over a Unix socket ignores them (its peer cannot vanish
// without the server's own kernel).
const std::vector<std::pair<std::string, std::string>>& VanishedLeaderSettings();

// CREATE TABLE IF NOT EXISTS leader_lease in the connection's search path
// (the service's schema).
absl::Status CreateLeaderLease(storage::PostgresConnection& db);

// Bumps the epoch (1 for the first leader) and names `holder`, in one
// statement; returns the new epoch. Waits for the batches of the previous
// leader that hold the row FOR SHARE.
absl::StatusOr<int64_t> TakeLeaderLease(storage::PostgresConnection& db,
                                        absl::string_view holder);

// Where the leader of `epoch` serves gRPC ("host:port"), for its standbys
// to forward calls to (LeaderForwarder); a takeover clears it until the new
// leader serves. A deposed leader's update changes nothing.
absl::Status PublishLeaderAddress(storage::PostgresConnection& db, int64_t epoch,
                                  absl::string_view address);
// The published address ("" while the leader does not serve yet).
absl::StatusOr<std::string> LeaderAddress(storage::PostgresConnection& db);
// The IP address the database sees this connection come from ("" over a
// Unix socket): in Kubernetes the pod's, the default a leader advertises.
absl::StatusOr<std::string> AddressSeenByDatabase(storage::PostgresConnection& db);

// Who holds the lease ("" if nobody has taken it yet), for a standby's log.
absl::StatusOr<std::string> LeaseHolder(storage::PostgresConnection& db);

// The committer's fence of the leader of `service` at `epoch`: inside the
// batch's transaction, the row's epoch, locked FOR SHARE until COMMIT,
// must be `epoch`; else FAILED_PRECONDITION "deposed: another SERVICE
// process took over the PostgreSQL database (epoch N)".
storage::PostgresGroupCommitter::Fence LeaseFence(std::string service, int64_t epoch);

// What the keeper saw on the lock's connection.
struct LeaseLook {
  enum class Lock {
    // This session still holds the advisory lock.
    kHeld,
    // The session was new (the connection had been lost, and the lock
    // with it) and took the lock again.
    kRetaken,
    // The session was new and another session holds the lock.
    kTakenByAnother,
  };
  Lock lock = Lock::kHeld;
  // leader_lease's epoch (0 if the row is gone).
  int64_t epoch = 0;
};

// One look: whether the session holds advisory lock `lock_key` (taking it
// again if not) and the lease's epoch, in one statement. UNAVAILABLE when
// the connection is lost (it is re-established for the next look).
absl::StatusOr<LeaseLook> LookAtLease(storage::PostgresConnection& db, int64_t lock_key);

enum class Leadership {
  // Still the leader: carry on.
  kKept,
  // The connection had been lost (a PostgreSQL restart), the lock is taken
  // again and nobody took over meanwhile: carry on.
  kRetaken,
  // Cannot tell (the database is unreachable): look again; every write is
  // fenced meanwhile.
  kUnknown,
  // Another process took over: stop at once.
  kLost,
};

// The keeper's decision on a look, for the leader of `our_epoch`.
Leadership Judge(const absl::StatusOr<LeaseLook>& look, int64_t our_epoch);

}  // namespace switchboard::host
