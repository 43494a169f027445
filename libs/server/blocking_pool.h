#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace switchboard::server {

// Where gRPC handlers run blocking work.
//
// Switchboard's threading model, decided once for every service:
// - All services use gRPC's callback API. A stream costs a reactor object,
//   never a thread, so a server holds many idle streams.
// - gRPC's callback threads must never block. A handler validates and
//   authenticates on the callback thread (cheap, no I/O), then hands the rest
//   (domain logic that commits to SQLite, calls to other services) to a
//   BlockingPool, whose worker finishes the call (see RunUnary in unary.h).
// - Durability does not cap throughput at the disk's fsync rate: workers
//   submit their writes to the service's storage::GroupCommitter, whose one
//   writer thread commits everything queued in one transaction and one fsync,
//   then wakes each waiting worker. The pool size bounds how many writes can
//   wait on one commit, so it is configurable (--worker_threads). A hot
//   write path need not park a worker at all: with RunUnaryAsync the worker
//   decides and queues the write, and the commit's callback ends the call.
// - Overload is refused at the door, never queued without bound: a call
//   that finds `max_queued` tasks already waiting is answered
//   RESOURCE_EXHAUSTED at once with a retry-after (TryRun), so a burst costs
//   the server a bounded amount of memory and every admitted call a bounded
//   wait.
//
// Thread-safe. Tasks run in FIFO order on `threads` threads. The destructor
// runs every task already queued, then joins the threads.
class BlockingPool {
 public:
  // `max_queued` bounds the tasks TryRun admits while waiting for a thread.
  explicit BlockingPool(int threads, int max_queued = 1024);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `task` whatever the backlog: for the service's own background
  // work, whose amount its callers bound (one task per admitted call or per
  // timer tick). Returns false (and drops the task) once Stop was called.
  bool Run(std::function<void()> task);

  // Queues `task` only if fewer than `max_queued` tasks wait (the admission
  // check for client calls). Returns false, dropping the task, when the
  // backlog is full or Stop was called; `stopping` (if given) tells which.
  bool TryRun(std::function<void()> task, bool* stopping = nullptr);

  // Tasks waiting for a thread.
  int queued() const;

  // Refuses new tasks, finishes queued ones, joins the threads. Idempotent.
  void Stop();

 private:
  void Work();

  const int max_queued_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace switchboard::server
