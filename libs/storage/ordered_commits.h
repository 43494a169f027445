#pragma once

// The ordered-commit kernel of a stateful service: how its in-memory state,
// decided under the service's own lock, meets the store that makes it
// durable.
//
// A service decides a change in memory under its lock and, still under it,
// queues the matching write to its store (whose Apply commits writes in the
// order it is called: GroupCommitter, or a PostgreSQL store doing the same).
// It answers the client only once that write is durable, outside the lock.
// An answer given from memory (a read, or a retry of a write already decided)
// waits first for the write that made what it shows. When a commit fails the
// memory is ahead of the disk: the service refuses every later write until a
// restart reloads the store (fail-stop), rather than answer from state that
// is not saved.
//
//   OrderedCommits commits("presence", OrderedCommits::FailedWrite::kStoreError);
//   std::shared_ptr<PendingWrite> pending;
//   {
//     absl::MutexLock lock(&mu_);
//     if (absl::Status s = commits.CheckWritable(); !s.ok()) return s;
//     ... decide, fill `write` ...
//     pending = commits.Commit(*store_, std::move(write),
//                              {[this, changes] { Publish(changes); }});
//   }
//   return commits.AwaitInOrder(pending);
//
// A caller that must not park a thread until then (a gRPC handler finishing
// its call from the commit) passes a callback to Then instead of Await.
//
// Thread-safe. Hooks and Then's callbacks run on the thread that reports the
// commit (a store's writer thread) and must not block.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace switchboard::storage {

// The outcome of one write queued to a store: unknown until its commit ends,
// then OK or the commit's error. Shared by every caller whose answer depends
// on that write.
class PendingWrite {
 public:
  // Whether the outcome is known; never blocks.
  bool settled() const { return done_.HasBeenNotified(); }

 private:
  friend class OrderedCommits;

  // Records the outcome, wakes the waiters, then runs the callbacks Then
  // queued.
  void Settle(absl::Status status);

  absl::Mutex mu_;
  // Then's callbacks queued before the outcome was known.
  std::vector<std::function<void(const absl::Status&)>> then_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
  // Written once, before done_ is notified.
  absl::Status status_;
};

class OrderedCommits {
 public:
  // What a caller waiting on a failed write is told.
  enum class FailedWrite {
    // The store's own error (the adapter hides its detail from clients).
    kStoreError,
    // UNAVAILABLE "<service> storage failed; retry later".
    kUnavailable,
  };

  // Callbacks of one write, run once its commit ends and before anyone
  // waiting on it wakes, in commit order with the other writes' hooks.
  struct Hooks {
    // When the write is durable: e.g. publish its changes to watchers, who
    // must never see what is not on disk.
    std::function<void()> on_durable;
    // Whatever the outcome, after on_durable: e.g. drop the write's
    // idempotency keys from the maps of writes not durable yet, so that
    // look-ups go to the store from then on.
    std::function<void()> on_settled;
  };

  // `service` ("sessions") names the errors and the log event
  // "<service>_commit_failed".
  OrderedCommits(std::string service, FailedWrite failed_write);
  OrderedCommits(const OrderedCommits&) = delete;
  OrderedCommits& operator=(const OrderedCommits&) = delete;

  // OK until a commit failed, then UNAVAILABLE "<service> storage failed;
  // the service must be restarted". Call under the service's lock before
  // deciding a write.
  absl::Status CheckWritable() const;
  // Whether a commit failed (CheckWritable's condition), for background
  // work that stops quietly rather than report an error.
  bool failed() const { return failed_; }

  // A handle for a write about to be decided, for idempotency maps that
  // must point at it before it is queued; pass it to Commit.
  static std::shared_ptr<PendingWrite> NewWrite();
  // A handle whose write is durable already: for a decision with nothing to
  // write.
  static std::shared_ptr<PendingWrite> Nothing();

  // Queues `write` with `store.Apply(write, done)` and returns the handle of
  // its outcome (`pending`, when given, else a new one), which becomes
  // Newest(). Call it under the lock that ordered the decision, so that the
  // store's order is the decisions' order. When the commit ends: a failure
  // is logged and makes CheckWritable fail from then on; the hooks run; then
  // waiters wake. `Store::Apply(Write, std::function<void(absl::Status)>)`
  // must call `done` once, in the order Apply was called.
  template <typename Store, typename Write>
  std::shared_ptr<PendingWrite> Commit(Store& store, Write write, Hooks hooks = {},
                                       std::shared_ptr<PendingWrite> pending = nullptr) {
    return Submit(
        [&store, &write](std::function<void(absl::Status)> done) {
          store.Apply(std::move(write), std::move(done));
        },
        std::move(hooks), std::move(pending));
  }

  // The newest write queued through Commit (null before the first): an
  // answer from memory waits on it so that it reflects nothing that is not
  // durable.
  std::shared_ptr<PendingWrite> Newest() const;

  // Blocks until `write` (null: none) has committed. OK when it is durable;
  // its failure (see FailedWrite) otherwise. Never call it on the thread
  // that reports commits.
  absl::Status Await(const std::shared_ptr<PendingWrite>& write) const;
  // Await, then also fails (CheckWritable) when any commit failed, so the
  // answer reflects only durable state even if it was read from memory that
  // an earlier failed write changed.
  absl::Status AwaitInOrder(const std::shared_ptr<PendingWrite>& write) const;

  // Await without blocking: runs `done` with what Await would return, at
  // once on the calling thread if `write` (null: none) has settled, else on
  // the thread that reports its commit, after its hooks. Call it without any
  // lock that `done` takes.
  void Then(const std::shared_ptr<PendingWrite>& write,
            std::function<void(absl::Status)> done) const;

 private:
  // What a caller waiting on a write with outcome `status` is told.
  absl::Status Answer(const absl::Status& status) const;

  std::shared_ptr<PendingWrite> Submit(
      const std::function<void(std::function<void(absl::Status)>)>& apply, Hooks hooks,
      std::shared_ptr<PendingWrite> pending);

  const std::string service_;
  const FailedWrite failed_write_;
  // Set from commit reports, which may run while the service's lock is held.
  std::atomic<bool> failed_{false};
  mutable absl::Mutex mu_;
  std::shared_ptr<PendingWrite> newest_ ABSL_GUARDED_BY(mu_);
};

// Settle stamps: lets a look-up that reads the store outside the service's
// lock notice a key that settled meanwhile. A service keeps the idempotency
// keys of writes not durable yet in a map; once a write settles, its keys
// leave the map and are in the store. A look-up takes the key's stamp, reads
// the store, then, under the lock, finds the key in the map or compares the
// stamp: a changed stamp means the key settled after the read (read again).
//
// Keys share 4096 counters by hash, so a collision only costs a second read.
// Memory stays fixed whatever the number of keys. Not thread-safe: guard it
// with the lock of the map it goes with.
class SettleStamps {
 public:
  uint64_t Stamp(absl::string_view key) const;
  // Changes the stamp of `key`: call when it leaves the map.
  void Settle(absl::string_view key);

 private:
  static constexpr size_t kBuckets = 4096;
  static size_t Bucket(absl::string_view key);

  std::array<uint64_t, kBuckets> stamps_{};
};

}  // namespace switchboard::storage
