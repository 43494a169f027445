#include "libs/storage/group_commit.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "libs/limits/retry_after.h"

namespace switchboard::storage {

namespace {

// The connection's synchronous setting is FULL (2) or EXTRA (3).
bool SynchronousFull(Database& db) {
  absl::StatusOr<Statement> pragma = db.Prepare("PRAGMA synchronous");
  if (!pragma.ok()) return true;
  absl::StatusOr<bool> row = pragma->Step();
  return !row.ok() || !*row || pragma->ColumnInt(0) >= 2;
}

}  // namespace

GroupCommitter::GroupCommitter(Database* db, Options options)
    : db_(db),
      options_(options),
      synchronous_full_(SynchronousFull(*db)),
      next_checkpoint_at_(options.checkpoint_frames) {
  if (options_.checkpoints != nullptr) {
    db_->SetWalHook([this](int frames) { wal_frames_ = frames; });
    checkpointer_ = std::thread([this] { RunCheckpoints(); });
  }
  writer_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Submit(Write write, Done done, Durability durability) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(write), std::move(done), durability});
      return;
    }
  }
  done(absl::UnavailableError("the storage writer has stopped"));
}

absl::Status GroupCommitter::Admit() const {
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(queue_.size()) < options_.max_queue) return absl::OkStatus();
  return limits::Exhausted(
      absl::StrCat("storage busy: ", queue_.size(), " writes waiting; retry shortly"),
      absl::Seconds(1));
}

absl::Status GroupCommitter::Commit(Write write, Durability durability) {
  absl::Notification finished;
  absl::Status result;
  Submit(
      std::move(write),
      [&](absl::Status status) {
        result = std::move(status);
        finished.Notify();
      },
      durability);
  finished.WaitForNotification();
  return result;
}

void GroupCommitter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock lock(&stop_mu_);
  if (writer_.joinable()) writer_.join();
  {
    absl::MutexLock queue_lock(&mu_);
    checkpoints_stopping_ = true;
  }
  if (checkpointer_.joinable()) {
    checkpointer_.join();
    // The connection may outlive this object: SQLite checkpoints it again.
    db_->SetWalHook(nullptr);
  }
}

GroupCommitter::Stats GroupCommitter::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int GroupCommitter::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

void GroupCommitter::Run() {
  const size_t max_batch = static_cast<size_t>(std::max(1, options_.max_batch));
  std::pair<GroupCommitter*, size_t> full{this, max_batch};
  while (true) {
    std::vector<Pending> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping, and everything has run.
      const absl::Time next = last_batch_ + options_.min_commit_interval;
      if (backlog_ && absl::Now() < next) {
        // Returns early only for a full batch or Stop.
        mu_.AwaitWithDeadline(
            absl::Condition(
                +[](std::pair<GroupCommitter*, size_t>* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                    a->first->mu_) {
                  return a->first->stopping_ || a->first->queue_.size() >= a->second;
                },
                &full),
            next);
      }
      const size_t n = std::min(max_batch, queue_.size());
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    const absl::Time taken = absl::Now();
    last_batch_ = taken;
    BatchReport report;
    std::vector<absl::Status> results = RunBatch(batch, report);
    {
      // Writes came while the batch ran (before its callers heard back, so
      // not one caller writing after each answer): the service is under load.
      absl::MutexLock lock(&mu_);
      backlog_ = !queue_.empty();
    }
    if (options_.on_batch) {
      report.took = absl::Now() - taken;
      options_.on_batch(report);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].done(std::move(results[i]));
    }
    if (options_.checkpoints != nullptr) CheckpointIfDue();
  }
}

void GroupCommitter::CheckpointIfDue() {
  const int every = options_.checkpoint_frames;
  const int restart_at = options_.writer_checkpoint_frames;
  if (wal_frames_ >= restart_at) {
    // The WAL starts over only after a checkpoint that copied every frame,
    // which only this thread can run (no write lands during it), while
    // every queued write waits. So the checkpoint thread copies the bulk
    // first, and this one only what was written during that run; unless
    // the thread fell far behind (or a long read holds it back).
    {
      absl::MutexLock lock(&mu_);
      if (restart_after_ < 0) {
        restart_after_ = stats_.background_checkpoints;
        checkpoint_due_ = true;
        return;
      }
      const bool thread_done = !checkpoint_due_ && !checkpoint_running_ &&
                               stats_.background_checkpoints > restart_after_;
      if (!thread_done && wal_frames_ < 2 * restart_at) return;
    }
    RunCheckpoint(*db_, /*by_writer=*/true);
    restart_after_ = -1;
    next_checkpoint_at_ = every;
    return;
  }
  restart_after_ = -1;  // the WAL started over (a quiet spell let it)
  // The WAL started over since the last request.
  if (wal_frames_ < next_checkpoint_at_ - every) next_checkpoint_at_ = every;
  if (wal_frames_ < next_checkpoint_at_) return;
  next_checkpoint_at_ = wal_frames_ + every;
  absl::MutexLock lock(&mu_);
  checkpoint_due_ = true;
}

void GroupCommitter::RunCheckpoints() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->checkpoints_stopping_ || self->checkpoint_due_;
          },
          this));
      if (checkpoints_stopping_) return;
      checkpoint_due_ = false;
      checkpoint_running_ = true;
    }
    RunCheckpoint(*options_.checkpoints, /*by_writer=*/false);
    absl::MutexLock lock(&mu_);
    checkpoint_running_ = false;
  }
}

void GroupCommitter::RunCheckpoint(Database& db, bool by_writer) {
  const absl::Time started = absl::Now();
  absl::StatusOr<Database::CheckpointResult> result = db.Checkpoint();
  CheckpointReport report;
  report.by_writer = by_writer;
  report.took = absl::Now() - started;
  report.status = result.status();
  {
    absl::MutexLock lock(&mu_);
    ++(by_writer ? stats_.writer_checkpoints : stats_.background_checkpoints);
    if (result.ok()) {
      stats_.checkpoint_error = absl::OkStatus();
    } else if (!absl::IsUnavailable(result.status())) {
      // (UNAVAILABLE: the other connection was checkpointing; the next
      // checkpoint copies the rest.)
      stats_.checkpoint_error = result.status();
    }
  }
  if (options_.on_checkpoint) options_.on_checkpoint(report);
}

std::vector<absl::Status> GroupCommitter::RunBatch(std::vector<Pending>& batch,
                                                   BatchReport& report) {
  std::vector<absl::Status> results(batch.size());
  report.writes = static_cast<int>(batch.size());
  if (synchronous_full_) {
    const bool synced = std::any_of(batch.begin(), batch.end(), [](const Pending& p) {
      return p.durability == Durability::kSynced;
    });
    // Failing to relax costs only an fsync; failing to restore must not
    // let a promised write commit without one.
    if (absl::Status set = SetSynced(synced); !set.ok() && synced) {
      for (absl::Status& result : results) result = set;
      return results;
    }
  }
  int64_t commits = 0;
  // Writes [first_in_transaction, i) share the open transaction; they are
  // the ones a lost transaction or a failed COMMIT takes down with it.
  size_t first_in_transaction = 0;
  auto fail_open_writes = [&](size_t end, const absl::Status& cause) {
    for (size_t j = first_in_transaction; j < end; ++j) {
      if (results[j].ok()) {
        results[j] = absl::Status(
            cause.code(),
            absl::StrCat("rolled back with its batch: ", cause.message()));
      }
    }
  };

  for (size_t i = 0; i < batch.size(); ++i) {
    if (!db_->InTransactionNow()) {
      absl::Status begun = db_->Execute("BEGIN IMMEDIATE");
      if (!begun.ok()) {
        results[i] = std::move(begun);
        continue;
      }
      first_in_transaction = i;
    }
    Database& db = *db_;
    Write& write = batch[i].write;
    results[i] = db_->InTransaction([&] { return write(db); });
    if (!db_->InTransactionNow()) {
      fail_open_writes(i, results[i]);
      first_in_transaction = i + 1;
    }
  }
  if (db_->InTransactionNow()) {
    const absl::Time commit_started = absl::Now();
    absl::Status committed = db_->Execute("COMMIT");
    if (committed.ok()) {
      report.commit_took = absl::Now() - commit_started;
      ++commits;
    } else {
      if (db_->InTransactionNow()) db_->Execute("ROLLBACK").IgnoreError();
      fail_open_writes(batch.size(), committed);
    }
  }

  report.commits = static_cast<int>(commits);
  report.fsynced = synced_now_;
  absl::MutexLock lock(&mu_);
  stats_.commits += commits;
  stats_.writes += static_cast<int64_t>(batch.size());
  return results;
}

absl::Status GroupCommitter::SetSynced(bool synced) {
  if (synced == synced_now_) return absl::OkStatus();
  absl::Status set =
      db_->Execute(synced ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (set.ok()) synced_now_ = synced;
  return set;
}

}  // namespace switchboard::storage
