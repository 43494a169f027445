#pragma once

// Group commit on PostgreSQL: GroupCommitter's contract (group_commit.h)
// over one PostgresConnection, for stores whose Apply must commit in call
// order and report in that order on a thread of their own (the services
// built on OrderedCommits). One writer thread owns the connection; writes
// queued with Submit run in order, up to max_batch in one transaction, each
// in a SAVEPOINT of its own; then one COMMIT; then each `done`, in order.
//
// Unlike SQLite, PostgreSQL may abort a transaction that deadlocked or
// failed serialization (ABORTED; e.g. two processes appending events of the
// same keys in opposite orders). Then the whole batch is rolled back and run
// again, up to Options::attempts times, so a write may run more than once:
// it must depend only on what it captured and what it reads in its
// transaction. Nothing of a batch is committed before its one COMMIT, so a
// retry never applies a write twice.
//
// A fence (Options::fence) runs first in every transaction, before its
// writes: when it fails, the whole batch fails with its status and nothing
// of it is committed. libs/host fences a leader's writes with it, so that a
// process another one took over from cannot commit any more.
//
// A connection lost inside a transaction fails the writes of that
// transaction (UNAVAILABLE); the next write re-connects. A COMMIT lost with
// its connection has an unknown outcome and is reported as failed: a service
// on OrderedCommits then stops writing until a restart reloads the store.
//
// Threading: Submit, Commit, Admit, Stop and stats are thread-safe. Writes
// and `done` run on the writer thread, one at a time: a write may use the
// connection freely but must not call Commit or Stop, and `done` must not
// block.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "libs/storage/postgres.h"

namespace switchboard::storage {

class PostgresGroupCommitter {
 public:
  // Changes the database through the connection, inside the batch's
  // transaction and a SAVEPOINT of its own: an error rolls back this write
  // only (ABORTED: the whole batch, to run again). Must not BEGIN/COMMIT.
  using Write = std::function<absl::Status(PostgresConnection&)>;
  // The write's outcome once its transaction committed (or failed).
  using Done = std::function<void(absl::Status)>;
  // Checked inside each transaction before its writes (e.g. that the lease
  // row still names this process, locked FOR SHARE until COMMIT); an error
  // fails every write of the batch with that status (ABORTED: the batch
  // runs again, as for a write).
  using Fence = std::function<absl::Status(PostgresConnection&)>;

  struct Options {
    // As GroupCommitter::Options.
    int max_batch = 256;
    int max_queue = 4096;
    // Runs of a batch PostgreSQL keeps aborting before its writes get the
    // ABORTED.
    int attempts = 5;
    // None by default.
    Fence fence;
  };

  struct Stats {
    // Transactions committed.
    int64_t commits = 0;
    // Writes taken from the queue (whatever their outcome).
    int64_t writes = 0;
    // Batches run again after PostgreSQL aborted them.
    int64_t retries = 0;
  };

  // Starts the writer thread, which owns `db` from now on.
  PostgresGroupCommitter(std::unique_ptr<PostgresConnection> db, Options options);
  explicit PostgresGroupCommitter(std::unique_ptr<PostgresConnection> db)
      : PostgresGroupCommitter(std::move(db), Options()) {}
  PostgresGroupCommitter(const PostgresGroupCommitter&) = delete;
  PostgresGroupCommitter& operator=(const PostgresGroupCommitter&) = delete;
  // Stop().
  ~PostgresGroupCommitter();

  // Queues `write`; after Stop, `done` runs at once, on the calling thread,
  // with UNAVAILABLE.
  void Submit(Write write, Done done);
  // OK while fewer than max_queue writes wait, else RESOURCE_EXHAUSTED with
  // a retry-after (see GroupCommitter::Admit).
  absl::Status Admit() const;
  // Submit, then wait for the outcome (never on the writer thread).
  absl::Status Commit(Write write);
  // Runs everything already submitted, then stops the writer thread.
  // Idempotent.
  void Stop();

  Stats stats() const;

 private:
  struct Pending {
    Write write;
    Done done;
  };

  void Run();
  // Runs `batch` until it is not aborted or attempts run out; each write's
  // outcome.
  std::vector<absl::Status> RunBatch(std::vector<Pending>& batch);
  // One run of `batch`; sets `*aborted` when PostgreSQL aborted it (nothing
  // of it committed).
  std::vector<absl::Status> RunOnce(std::vector<Pending>& batch, bool* aborted);

  const std::unique_ptr<PostgresConnection> db_;
  const Options options_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);

  std::thread writer_;
  absl::Mutex stop_mu_;
};

}  // namespace switchboard::storage
