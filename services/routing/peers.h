#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::routing {

// Capacity routing holds at an agent: an open offer's reservation or an
// assignment (see ReconcileReservations in presence_service.proto).
struct HeldCapacity {
  std::string agent_id;
  std::string session_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  int64_t holder_id = 0;
  bool assigned = false;
};

// What presence's ReconcileReservations did.
struct ReconcileReply {
  int released = 0;
  int restored = 0;
  // Live open offers whose reservation presence no longer holds.
  std::vector<HeldCapacity> missing;
};

// What routing asks of presence. Blocking; never called with the router's
// lock held nor on a gRPC callback thread. Each call gives up at `deadline`
// (the caller's, for calls made on a client's behalf; InfiniteFuture for
// background work) or after the implementation's own timeout, whichever
// comes first. Errors are presence's codes (see presence_service.proto):
// RESOURCE_EXHAUSTED means the agent is at capacity; presence overloaded,
// unreachable or too slow is UNAVAILABLE or DEADLINE_EXCEEDED.
class PresencePort {
 public:
  virtual ~PresencePort() = default;
  // presence.ReserveCapacity: one unit of `agent_id`'s capacity on `channel`
  // for `session_id`, held `hold` unless confirmed, for holder `holder_id`.
  virtual absl::Status Reserve(const std::string& agent_id, const std::string& session_id,
                               common::v1::Channel channel, absl::Duration hold,
                               int64_t holder_id, absl::Time deadline) = 0;
  // presence.ConfirmReservation: the agent accepted. Idempotent.
  virtual absl::Status Confirm(const std::string& agent_id, const std::string& session_id,
                               absl::Time deadline) = 0;
  // presence.ReleaseCapacity of what `holder_id` (or an older holder) holds.
  // Idempotent.
  virtual absl::Status Release(const std::string& agent_id, const std::string& session_id,
                               int64_t holder_id, absl::Time deadline) = 0;
  // presence.ReconcileReservations for agents in [from, to) (empty bounds
  // are open).
  virtual absl::StatusOr<ReconcileReply> Reconcile(int64_t fence, const std::string& from,
                                                   const std::string& to,
                                                   const std::vector<HeldCapacity>& live,
                                                   absl::Time deadline) = 0;
};

// A session as routing needs to see it when in doubt.
struct SessionView {
  enum class State {
    // Waiting for an agent.
    kQueued,
    // Assigned to `assigned_agent_id`.
    kAssigned,
    // Anything else (with the bot, resolved, closed): needs no agent.
    kOther,
  };
  State state = State::kOther;
  std::string assigned_agent_id;
};

// What routing asks of sessions. Same rules as PresencePort.
class SessionsPort {
 public:
  virtual ~SessionsPort() = default;
  // sessions.RecordOffer, before the offer goes out.
  virtual absl::Status RecordOffer(const std::string& session_id, const std::string& agent_id,
                                   const std::string& offer_id, absl::Time expires_at,
                                   absl::Time deadline) = 0;
  // sessions.AssignAgent, on accept. Idempotent for the same agent.
  virtual absl::Status AssignAgent(const std::string& session_id, const std::string& agent_id,
                                   const std::string& agent_display_name,
                                   const std::string& offer_id, absl::Time deadline) = 0;
  // sessions.RequeueSession, after the agent's presence lapsed.
  virtual absl::Status RequeueSession(const std::string& session_id,
                                      const std::string& agent_id, absl::Time deadline) = 0;
  // sessions.GetSession: where the session stands. NOT_FOUND if sessions
  // has no such session.
  virtual absl::StatusOr<SessionView> GetSession(const std::string& session_id,
                                                 absl::Time deadline) = 0;
};

}  // namespace switchboard::routing
