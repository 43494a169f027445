#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "switchboard/bot/v1/bot_service.pb.h"
#include "switchboard/routing/v1/routing_service.pb.h"

namespace switchboard::sessions {

// The bot service as the sessions logic uses it. Implementations set their
// own deadline on each call and are thread-safe; calls block.
class BotClient {
 public:
  virtual ~BotClient() = default;
  virtual absl::StatusOr<bot::v1::AnswerResponse> Answer(
      const bot::v1::AnswerRequest& request) = 0;
  virtual absl::Status ResetDialogue(const std::string& session_id) = 0;
};

// The routing service as the sessions logic uses it. As BotClient.
class RoutingClient {
 public:
  virtual ~RoutingClient() = default;
  // EnqueueSession; the response tells whether the queue is open.
  virtual absl::StatusOr<routing::v1::EnqueueSessionResponse> Enqueue(
      const routing::v1::EnqueueSessionRequest& request) = 0;
  virtual absl::Status Cancel(const std::string& session_id,
                              routing::v1::CancelReason reason) = 0;
  // GetQueueHours: a queue's hours, and business time counted on them.
  virtual absl::StatusOr<routing::v1::GetQueueHoursResponse> QueueHours(
      const routing::v1::GetQueueHoursRequest& request) = 0;
};

}  // namespace switchboard::sessions
