#include "libs/storage/postgres_group_commit.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/limits/retry_after.h"

namespace switchboard::storage {

PostgresGroupCommitter::PostgresGroupCommitter(std::unique_ptr<PostgresConnection> db,
                                               Options options)
    : db_(std::move(db)), options_(options) {
  writer_ = std::thread([this] { Run(); });
}

PostgresGroupCommitter::~PostgresGroupCommitter() { Stop(); }

void PostgresGroupCommitter::Submit(Write write, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(write), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("the storage writer has stopped"));
}

absl::Status PostgresGroupCommitter::Admit() const {
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(queue_.size()) < options_.max_queue) return absl::OkStatus();
  return limits::Exhausted(
      absl::StrCat("storage busy: ", queue_.size(), " writes waiting; retry shortly"),
      absl::Seconds(1));
}

absl::Status PostgresGroupCommitter::Commit(Write write) {
  absl::Notification finished;
  absl::Status result;
  Submit(std::move(write), [&](absl::Status status) {
    result = std::move(status);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

void PostgresGroupCommitter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock lock(&stop_mu_);
  if (writer_.joinable()) writer_.join();
}

PostgresGroupCommitter::Stats PostgresGroupCommitter::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void PostgresGroupCommitter::Run() {
  const size_t max_batch = static_cast<size_t>(std::max(1, options_.max_batch));
  while (true) {
    std::vector<Pending> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](PostgresGroupCommitter* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping, and everything has run.
      const size_t n = std::min(max_batch, queue_.size());
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<absl::Status> results = RunBatch(batch);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
  }
}

std::vector<absl::Status> PostgresGroupCommitter::RunBatch(std::vector<Pending>& batch) {
  for (int attempt = 1;; ++attempt) {
    bool aborted = false;
    std::vector<absl::Status> results = RunOnce(batch, &aborted);
    absl::MutexLock lock(&mu_);
    if (!aborted || attempt >= options_.attempts) {
      stats_.writes += static_cast<int64_t>(batch.size());
      return results;
    }
    ++stats_.retries;
  }
}

std::vector<absl::Status> PostgresGroupCommitter::RunOnce(std::vector<Pending>& batch,
                                                          bool* aborted) {
  std::vector<absl::Status> results(batch.size());
  // Writes [first_in_transaction, i) share the open transaction; a lost
  // transaction or a failed COMMIT takes them down with it.
  size_t first_in_transaction = 0;
  auto fail_writes = [&](size_t from, size_t end, const absl::Status& cause) {
    for (size_t j = from; j < end; ++j) {
      if (results[j].ok()) {
        results[j] = absl::Status(
            cause.code(), absl::StrCat("rolled back with its batch: ", cause.message()));
      }
    }
  };
  // PostgreSQL aborted the transaction: nothing of the batch is committed
  // (only the last COMMIT commits), and every write gets the cause unless
  // the batch runs again.
  auto abort_batch = [&](const absl::Status& cause) {
    db_->Rollback();
    *aborted = true;
    fail_writes(0, batch.size(), cause);
    return results;
  };

  for (size_t i = 0; i < batch.size(); ++i) {
    if (!db_->InTransactionNow()) {
      absl::Status begun = db_->Begin();
      if (!begun.ok()) {
        results[i] = std::move(begun);
        continue;
      }
      first_in_transaction = i;
      if (options_.fence) {
        absl::Status fenced = options_.fence(*db_);
        if (absl::IsAborted(fenced)) return abort_batch(fenced);
        if (!fenced.ok()) {
          // Nothing of this transaction is written yet; the writes left
          // all get the fence's own status.
          db_->Rollback();
          for (size_t j = i; j < batch.size(); ++j) results[j] = fenced;
          return results;
        }
      }
    }
    PostgresConnection& db = *db_;
    Write& write = batch[i].write;
    results[i] = db_->InTransaction([&] { return write(db); });
    if (absl::IsAborted(results[i])) return abort_batch(results[i]);
    if (!db_->InTransactionNow()) {
      // The connection went with the transaction; the next Begin re-connects.
      db_->Rollback();
      fail_writes(first_in_transaction, i, results[i]);
      first_in_transaction = i + 1;
    }
  }
  if (!db_->InTransactionNow()) return results;
  absl::Status committed = db_->Commit();
  if (absl::IsAborted(committed)) return abort_batch(committed);
  if (!committed.ok()) {
    fail_writes(first_in_transaction, batch.size(), committed);
    return results;
  }
  absl::MutexLock lock(&mu_);
  ++stats_.commits;
  return results;
}

}  // namespace switchboard::storage
