#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "libs/client/peer.h"
#include "services/sessions/peers.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"

namespace switchboard::sessions {

// BotClient over gRPC: each call carries the service token and `timeout`.
class GrpcBotClient : public BotClient {
 public:
  // Dials `address` as `security` says (--peer_tls_*). `token` must
  // outlive this object.
  GrpcBotClient(const std::string& address, const client::ChannelSecurity& security,
                client::ServiceToken* token, absl::Duration timeout);
  absl::StatusOr<bot::v1::AnswerResponse> Answer(
      const bot::v1::AnswerRequest& request) override;
  absl::Status ResetDialogue(const std::string& session_id) override;

 private:
  std::unique_ptr<bot::v1::BotService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

// RoutingClient over gRPC, as GrpcBotClient.
class GrpcRoutingClient : public RoutingClient {
 public:
  GrpcRoutingClient(const std::string& address, const client::ChannelSecurity& security,
                    client::ServiceToken* token, absl::Duration timeout);
  absl::StatusOr<routing::v1::EnqueueSessionResponse> Enqueue(
      const routing::v1::EnqueueSessionRequest& request) override;
  absl::Status Cancel(const std::string& session_id,
                      routing::v1::CancelReason reason) override;
  absl::StatusOr<routing::v1::GetQueueHoursResponse> QueueHours(
      const routing::v1::GetQueueHoursRequest& request) override;

 private:
  std::unique_ptr<routing::v1::RoutingService::Stub> stub_;
  client::ServiceToken* const token_;
  const absl::Duration timeout_;
};

}  // namespace switchboard::sessions
