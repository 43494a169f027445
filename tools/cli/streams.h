#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tools/cli/clients.h"

namespace switchboard::cli {

// Follows a session's events on its own thread, resuming after the last
// sequence seen whenever the stream breaks (server restart, falling behind),
// so nothing is missed or repeated. Each response goes to `on_response` on
// the follower's thread; `on_notice` gets reconnect notices. The follow
// ends when the server ends the stream with OK (the session closed, or the
// caller was removed from it), on an error that a retry cannot fix
// (NOT_FOUND, PERMISSION_DENIED, ...), or on Stop().
class SessionFollower {
 public:
  using OnResponse = std::function<void(const sessions::v1::StreamSessionEventsResponse&)>;
  using OnNotice = std::function<void(const std::string&)>;

  SessionFollower(const Clients& clients, std::string token, std::string session_id,
                  int64_t after_sequence, OnResponse on_response, OnNotice on_notice);
  ~SessionFollower();  // Stops.

  void Stop();
  bool ended() const { return ended_; }
  // OK when the server ended the stream; the error otherwise.
  absl::Status status();
  int64_t last_sequence() const { return last_sequence_; }

 private:
  void Run();

  const Clients& clients_;
  const std::string token_;
  const std::string session_id_;
  OnResponse on_response_;
  OnNotice on_notice_;
  std::atomic<int64_t> last_sequence_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ended_{false};
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Whether a stream that ended with `status` is worth reopening.
bool Retriable(const grpc::Status& status);

}  // namespace switchboard::cli
