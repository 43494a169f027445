#pragma once

// Group commit: batches the writes of many callers into one transaction and
// one fsync, so that a service acknowledges each write only once it is on
// disk (synchronous=FULL) without paying an fsync per write.
//
// How services run blocking storage work (decided once, here in libs/):
// every write of a service goes through its one
// GroupCommitter, which owns the writing connection and runs writes on its
// own writer thread. A gRPC callback handler never blocks on SQLite: it
// Submits a write with a `done` that finishes the RPC (e.g. calls
// reactor->Finish). Code on plain worker threads may use the blocking
// Commit instead. Reads use other connections (WAL lets them run while the
// writer commits).
//
// Example (a callback handler):
//   committer->Submit(
//       [=](Database& db) { return store.SetStatus(db, agent, status); },
//       [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
//
// Threading: Submit, Commit, Stop and stats are thread-safe. Writes and
// `done` callbacks run on the writer thread, one at a time, so a write may
// use the Database freely but must not call Commit or Stop (deadlock), and
// `done` must not block (it delays every later caller). Submit from a `done`
// is allowed (it runs in a later batch).

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/storage/database.h"

namespace switchboard::storage {

class GroupCommitter {
 public:
  // Changes the database through the given connection. Runs inside a
  // transaction and a SAVEPOINT of its own: returning an error (or failing
  // a statement) rolls back this write only. Must not BEGIN/COMMIT itself.
  using Write = std::function<absl::Status(Database&)>;
  // Receives the outcome of a write once its transaction has committed (or
  // failed). Runs on the writer thread.
  using Done = std::function<void(absl::Status)>;

  // What a write's commit promises before its `done` runs.
  enum class Durability {
    // On disk: the commit is fsynced (with synchronous=FULL, the default).
    kSynced,
    // Written to the WAL but not fsynced, when every write of its batch
    // allows it; the next synced commit's fsync covers it. A process crash
    // loses nothing, an OS crash or power loss may undo it: only for writes
    // whose undoing repeats harmless work (deleting outbox rows already
    // published: the relay publishes them again, a duplicate, never a loss).
    // Spares the fsync that would otherwise double the commits of a lightly
    // loaded service (one for its clients' writes, one for the relay's).
    kDeferred,
  };

  // What one batch did, for metrics.
  struct BatchReport {
    // Writes run (whatever their outcome) and transactions committed.
    int writes = 0;
    int commits = 0;
    // Whether its commits were fsynced (false: a kDeferred batch).
    bool fsynced = true;
    // From taking the batch to its last COMMIT returning, fsync included.
    absl::Duration took;
    // Of `took`, the COMMIT alone: writing the batch's pages to the WAL and,
    // if fsynced, the sync (the disk's share; the rest is the writes' work).
    // Zero if nothing committed.
    absl::Duration commit_took;
  };

  // What one checkpoint did, for metrics.
  struct CheckpointReport {
    // Run by the writer itself (so that the WAL starts over), not by the
    // checkpoint thread.
    bool by_writer = false;
    // OK, UNAVAILABLE (the other connection was checkpointing; the next one
    // copies the rest) or the error.
    absl::Status status;
    absl::Duration took;
  };

  struct Options {
    // At most this many writes share a transaction; bounds the latency a
    // batch adds to its first write.
    int max_batch = 256;
    // Writes waiting beyond which Admit refuses new client writes (see
    // Admit); bounds the memory and the wait a burst can build up.
    int max_queue = 4096;
    // Under load (writes came while the last batch ran), a batch starts at
    // least this long after the previous one started, so that more writes
    // share it: fewer, larger commits, and so fewer fsyncs, whose rate is
    // what makes a shared disk stall. Otherwise (a quiet spell, or one
    // caller writing after each answer) a write commits at once.
    absl::Duration min_commit_interval = absl::ZeroDuration();
    // If set, called on the writer thread after each batch, before its
    // writes' `done`; must not block.
    std::function<void(const BatchReport&)> on_batch;
    // If set, a second connection to the same file, for checkpoints on a
    // thread of their own. Without it SQLite checkpoints inside the COMMIT
    // that takes the WAL past 1000 pages: it copies them into the file and
    // syncs it while every queued write waits (on a busy service, the
    // slowest commits by far). With it the writer only asks, every
    // checkpoint_frames. The WAL starts over (instead of growing) only
    // after a checkpoint that copied every frame, which under continuous
    // writes only the writer can run: once the WAL reaches
    // writer_checkpoint_frames the writer asks the thread for one more
    // checkpoint and, when it is done, copies the frames written meanwhile
    // itself (at twice that size it does not wait for the thread any
    // more), so the WAL stays bounded and writes wait only for a small
    // copy. Must outlive this object; nobody else may use it.
    Database* checkpoints = nullptr;
    // With `checkpoints`: the WAL's growth, in frames (pages), between two
    // checkpoints on the checkpoint thread (SQLite's own automatic
    // interval), and its size at which the writer starts it over (about
    // 40 MB of 4 KiB pages; at most twice that).
    int checkpoint_frames = 1000;
    int writer_checkpoint_frames = 10'000;
    // If set, called after each checkpoint on the thread that ran it; must
    // not block.
    std::function<void(const CheckpointReport&)> on_checkpoint;
  };

  // Counters for metrics. writes / commits is the mean batch size.
  struct Stats {
    // Transactions committed successfully.
    int64_t commits = 0;
    // Writes run (whatever their outcome).
    int64_t writes = 0;
    // With Options::checkpoints: checkpoints run by the checkpoint thread
    // and by the writer, and the last one's error (OK if none).
    int64_t background_checkpoints = 0;
    int64_t writer_checkpoints = 0;
    absl::Status checkpoint_error;
  };

  // Starts the writer thread. `db` must outlive this object and must not be
  // used by anyone else while it runs.
  GroupCommitter(Database* db, Options options);
  explicit GroupCommitter(Database* db) : GroupCommitter(db, Options()) {}
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;
  // Stop().
  ~GroupCommitter();

  // Queues `write`. On the writer thread, consecutive queued writes (up to
  // max_batch) run in submission order inside one transaction, each in its
  // own SAVEPOINT; then one COMMIT; then each `done` runs, in submission
  // order, with OK, or the write's own error, or the commit's error (which
  // then also applies to the writes that had succeeded). If a write's error
  // made SQLite roll back the whole transaction (disk full, I/O error), the
  // writes before it in the batch get that error too. After Stop, `done`
  // runs at once, on the calling thread, with UNAVAILABLE.
  void Submit(Write write, Done done, Durability durability = Durability::kSynced);

  // The admission check for a write a client asked for: OK while fewer than
  // max_queue writes wait, else RESOURCE_EXHAUSTED with a retry-after. Call
  // it before deciding the write (before any in-memory change), then Submit.
  // Submit itself never refuses for backlog: the service's own writes
  // (timers, retries) must not be lost, and the queue can pass max_queue
  // only by the writes admitted concurrently, which the worker pool bounds.
  absl::Status Admit() const;

  // Submit, then wait for the outcome. For threads that may block (never
  // the writer thread or a gRPC callback thread).
  absl::Status Commit(Write write, Durability durability = Durability::kSynced);

  // Runs everything already submitted, then stops the writer thread.
  // Idempotent; later Submits fail with UNAVAILABLE.
  void Stop();

  Stats stats() const;

  // Writes submitted and not yet taken into a batch.
  int queued() const;

 private:
  struct Pending {
    Write write;
    Done done;
    Durability durability;
  };

  void Run();
  // The checkpoint thread: a checkpoint each time the writer asks.
  void RunCheckpoints();
  // After a batch, on the writer thread: asks for a checkpoint, or runs one.
  void CheckpointIfDue();
  // Runs a checkpoint on `db`, counts it and reports it.
  void RunCheckpoint(Database& db, bool by_writer);
  // Runs one batch in one transaction; returns each write's outcome.
  std::vector<absl::Status> RunBatch(std::vector<Pending>& batch, BatchReport& report);
  // Sets the connection's synchronous pragma for the next batch: NORMAL for
  // a batch of kDeferred writes, back to FULL otherwise. Writer thread only.
  absl::Status SetSynced(bool synced);

  Database* const db_;
  const Options options_;
  // Whether the connection commits with an fsync (synchronous=FULL); when it
  // does not, kDeferred changes nothing. Read once, before the writer starts.
  const bool synchronous_full_;
  // The pragma as the writer thread last set it.
  bool synced_now_ = true;

  // Frames in the WAL after the writer's last commit (its WAL hook), and
  // the size at which it next asks for a checkpoint. Writer thread only.
  int wal_frames_ = 0;
  int next_checkpoint_at_;
  // Once the WAL reached writer_checkpoint_frames: the checkpoint thread's
  // count (Stats::background_checkpoints) when the writer asked it for the
  // checkpoint before its own; -1 before. Writer thread only.
  int64_t restart_after_ = -1;
  // When the last batch started, and whether writes were queued when it
  // committed. Writer thread only.
  absl::Time last_batch_ = absl::InfinitePast();
  bool backlog_ = false;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // The checkpoint thread's work: asked for, or told to stop.
  bool checkpoint_due_ ABSL_GUARDED_BY(mu_) = false;
  bool checkpoint_running_ ABSL_GUARDED_BY(mu_) = false;
  bool checkpoints_stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread writer_;
  std::thread checkpointer_;
  // Serializes Stop's joins (Stop may be called from several threads).
  absl::Mutex stop_mu_;
};

}  // namespace switchboard::storage
