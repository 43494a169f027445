#pragma once

// Holds and fails the commits of one SQLite connection on demand: the real
// store, with a gate in front of its COMMIT. For tests of what a service
// answers while a write is queued but not yet durable, and once its commit
// has failed (e.g. that a retry is not acknowledged before the first write
// is on disk).
//
//   auto db = Database::OpenMigrated({path}, migrations);
//   CommitGate gate(db->get());          // before the committer starts
//   GroupCommitter committer(db->get());
//   gate.Close();
//   ... start a write on another thread ...
//   ASSERT_TRUE(gate.AwaitHeld(1));      // its COMMIT now waits at the gate
//   ... the retry must not be answered OK yet ...
//   gate.FailHeld();                     // that COMMIT rolls back and fails
//   gate.Open();                         // later commits pass again
//
// Thread-safe. The gate runs on the committing thread (a GroupCommitter's
// writer), which it blocks while closed.

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/storage/database.h"

namespace switchboard::storage {

class CommitGate {
 public:
  // Installs the gate (open) on `db` with Database::SetCommitHook: create it
  // before another thread uses `db`. `db` must outlive the gate.
  explicit CommitGate(Database* db);
  // Opens the gate, then removes it. Destroy it only once nothing commits on
  // `db` any more (e.g. after stopping the GroupCommitter).
  ~CommitGate();
  CommitGate(const CommitGate&) = delete;
  CommitGate& operator=(const CommitGate&) = delete;

  // From now on each COMMIT waits at the gate until Open or FailHeld.
  void Close();
  // Lets the waiting commits and all later ones through.
  void Open();
  // The commits waiting now roll back and fail; later ones still wait while
  // the gate is closed.
  void FailHeld();
  // Waits until at least `count` commits wait at the gate; false if that
  // does not happen within `timeout`.
  bool AwaitHeld(int count = 1, absl::Duration timeout = absl::Seconds(30));
  // Commits that went through, and that were failed, since the gate was made.
  int committed() const;
  int failed() const;

 private:
  bool OnCommit();

  Database* const db_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int to_fail_ ABSL_GUARDED_BY(mu_) = 0;
  int committed_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::storage
