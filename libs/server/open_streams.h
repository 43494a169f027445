#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::server {

// The open server streams of one RPC, so that draining ends each with a
// clear status and refuses new ones. `Reactor` has `End(grpc::Status)`.
//
//   if (!streams_.Add(reactor, [&] { reactor->Begin(); })) {
//     reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
//   }
//   ...  // in the reactor's OnDone: streams_.Remove(this);
//   ...  // on drain: streams_.EndAll("reconnect to another instance");
//
// Thread-safe.
template <typename Reactor>
class OpenStreams {
 public:
  // Registers `reactor` and runs `begin` under the lock, so that a
  // concurrent EndAll cannot finish the stream (and its OnDone delete it)
  // in the middle of `begin`. Returns false, without running `begin`, once
  // EndAll was called.
  bool Add(Reactor* reactor, absl::FunctionRef<void()> begin) {
    absl::MutexLock lock(&mu_);
    if (draining_) return false;
    streams_.insert(reactor);
    begin();
    return true;
  }

  // Call from the reactor's OnDone.
  void Remove(Reactor* reactor) {
    absl::MutexLock lock(&mu_);
    streams_.erase(reactor);
  }

  // Ends every open stream with UNAVAILABLE ("server shutting down; " +
  // `advice`) and refuses new ones.
  void EndAll(const std::string& advice) {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    const grpc::Status status(grpc::StatusCode::UNAVAILABLE,
                              "server shutting down; " + advice);
    for (Reactor* reactor : streams_) reactor->End(status);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<Reactor*> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace switchboard::server
