#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/feedback/model.h"

namespace switchboard::feedback {

// What feedback asks of the sessions service. Blocking: call from worker
// threads. Each call ends by `deadline` (the incoming call's, or
// InfiniteFuture for background work; implementations cap it with their own
// timeout). Errors: NotFound for an unknown session; Unavailable when
// sessions cannot answer (down, too slow, or refusing feedback's call), so
// that nothing is ever accepted unverified.
class SessionsPort {
 public:
  virtual ~SessionsPort() = default;
  // sessions.GetSession with the service role.
  virtual absl::StatusOr<SessionInfo> GetSession(const std::string& session_id,
                                                 absl::Time deadline) = 0;
  // sessions.CloseSession with reason RATED.
  virtual absl::Status CloseRated(const std::string& session_id, absl::Time deadline) = 0;
};

// What feedback asks of routing: the supervisors' complaint queue. Same
// threading rules as SessionsPort. Both calls are idempotent in routing.
class RoutingPort {
 public:
  virtual ~RoutingPort() = default;
  // routing.EnqueueComplaint at HIGH priority.
  virtual absl::Status EnqueueComplaint(const v1::Complaint& complaint) = 0;
  // routing.CancelComplaint (reason COMPLAINT_HANDLED).
  virtual absl::Status CancelComplaint(const std::string& complaint_id) = 0;
};

}  // namespace switchboard::feedback
