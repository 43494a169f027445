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
//   wait on one commit, so it is configurable (--worker_threads).
//
// Thread-safe. Tasks run in FIFO order on `threads` threads. The destructor
// runs every task already queued, then joins the threads.
class BlockingPool {
 public:
  explicit BlockingPool(int threads);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `task`. Returns false (and drops the task) once Stop was called.
  bool Run(std::function<void()> task);

  // Refuses new tasks, finishes queued ones, joins the threads. Idempotent.
  void Stop();

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace switchboard::server
