#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::server {

// A server-streaming callback reactor that writes messages one at a time
// from a bounded queue: the shape of every Switchboard watch stream (a
// snapshot, then live changes). No thread per stream; any thread may Send
// or End.
//
// Writing starts only after Release(), so that a subclass can subscribe to
// live changes first, then put its snapshot in front of whatever arrived
// meanwhile (EditQueue), and lose nothing. A subscriber that falls more than
// `max_backlog` messages behind is ended with RESOURCE_EXHAUSTED and should
// subscribe again; a client that cancels or breaks the stream ends it with
// CANCELLED. Once ended, Send does nothing. The reactor deletes itself after
// gRPC is done with it, first calling OnStreamDone (unsubscribe there).
//
// Thread-safe.
template <typename Response>
class QueuedWriter : public grpc::ServerWriteReactor<Response> {
 public:
  explicit QueuedWriter(size_t max_backlog) : max_backlog_(max_backlog) {}

  // Queues `message` to be written after everything queued before it.
  void Send(Response message) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (queue_.size() >= max_backlog_) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                "subscriber fell too far behind; subscribe again"));
      return;
    }
    queue_.push_back(std::move(message));
    WriteNextLocked();
  }

  // Ends the stream with `status`; the first End (or failure) wins.
  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

 protected:
  // Lets writing begin (see the class comment). Idempotent.
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
    WriteNextLocked();
  }

  // Runs `edit` on the queue of messages not yet being written, under the
  // lock. Before Release() that is everything sent so far.
  void EditQueue(absl::FunctionRef<void(std::deque<Response>&)> edit) {
    absl::MutexLock lock(&mu_);
    if (!writing_) {
      edit(queue_);
      return;
    }
    // The front is being written: keep it out of the edit.
    Response front = std::move(queue_.front());
    queue_.pop_front();
    edit(queue_);
    queue_.push_front(std::move(front));
  }

  // Called once, from OnDone, just before the reactor deletes itself.
  virtual void OnStreamDone() {}

 private:
  void OnWriteDone(bool ok) final {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return;
    }
    queue_.pop_front();
    WriteNextLocked();
  }

  void OnCancel() final { End(grpc::Status::CANCELLED); }

  void OnDone() final {
    OnStreamDone();
    delete this;
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!released_ || writing_ || finished_ || queue_.empty()) return;
    writing_ = true;
    this->StartWrite(&queue_.front());
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }

  const size_t max_backlog_;
  absl::Mutex mu_;
  // The front is being written while writing_.
  std::deque<Response> queue_ ABSL_GUARDED_BY(mu_);
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace switchboard::server
