#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::routing {

// What routing asks of presence. Blocking; never called with the router's
// lock held nor on a gRPC callback thread. Errors are presence's codes (see
// presence_service.proto); UNAVAILABLE / DEADLINE_EXCEEDED when unreachable.
class PresencePort {
 public:
  virtual ~PresencePort() = default;
  // presence.ReserveCapacity: one unit of `agent_id`'s capacity on `channel`
  // for `session_id`, held `hold` unless confirmed.
  virtual absl::Status Reserve(const std::string& agent_id, const std::string& session_id,
                               common::v1::Channel channel, absl::Duration hold) = 0;
  // presence.ConfirmReservation: the agent accepted.
  virtual absl::Status Confirm(const std::string& agent_id,
                               const std::string& session_id) = 0;
  // presence.ReleaseCapacity: idempotent.
  virtual absl::Status Release(const std::string& agent_id,
                               const std::string& session_id) = 0;
};

// What routing asks of sessions. Same threading rules as PresencePort.
class SessionsPort {
 public:
  virtual ~SessionsPort() = default;
  // sessions.RecordOffer, before the offer goes out.
  virtual absl::Status RecordOffer(const std::string& session_id, const std::string& agent_id,
                                   const std::string& offer_id, absl::Time expires_at) = 0;
  // sessions.AssignAgent, on accept.
  virtual absl::Status AssignAgent(const std::string& session_id, const std::string& agent_id,
                                   const std::string& agent_display_name,
                                   const std::string& offer_id) = 0;
  // sessions.RequeueSession, after the agent's presence lapsed.
  virtual absl::Status RequeueSession(const std::string& session_id,
                                      const std::string& agent_id) = 0;
};

}  // namespace switchboard::routing
