#pragma once

#include <grpcpp/grpcpp.h>

#include "libs/auth/policy.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/server/blocking_pool.h"
#include "services/bot/bot.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"

namespace switchboard::bot {

// The gRPC adapter of the bot: authenticates and authorizes each call,
// converts messages and maps statuses. Who may call what is each RPC's
// (switchboard.auth.v1.access) option in bot_service.proto.
//
// Threads: ListIntents runs on gRPC's callback thread. So do Answer and
// ResetDialogue when the bot keeps its dialogues in memory and its event
// log does not block (SQLite), because it then answers in microseconds and
// takes no lock held across I/O (see Bot); Answer's call finishes when the
// turn's event is committed, from the group committer's thread, without any
// thread waiting for it. With `answer_on_pool` (PostgreSQL, where both wait
// for the database) they run on the blocking pool. ReloadKnowledgeBase
// reads a file and waits for a commit, so it runs on the blocking pool.
class BotService final : public v1::BotService::CallbackService {
 public:
  // None owned; all must outlive the service.
  BotService(Bot* bot, const auth::TokenVerifier* tokens, Clock* clock,
             server::BlockingPool* pool, bool answer_on_pool = false);

  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const v1::AnswerRequest* request,
                                   v1::AnswerResponse* response) override;
  grpc::ServerUnaryReactor* ListIntents(grpc::CallbackServerContext* context,
                                        const v1::ListIntentsRequest* request,
                                        v1::ListIntentsResponse* response) override;
  grpc::ServerUnaryReactor* ReloadKnowledgeBase(
      grpc::CallbackServerContext* context, const v1::ReloadKnowledgeBaseRequest* request,
      v1::ReloadKnowledgeBaseResponse* response) override;
  grpc::ServerUnaryReactor* ResetDialogue(grpc::CallbackServerContext* context,
                                          const v1::ResetDialogueRequest* request,
                                          v1::ResetDialogueResponse* response) override;

 private:
  absl::StatusOr<auth::Principal> Authenticate(grpc::CallbackServerContext* context,
                                               absl::string_view method);

  Bot* const bot_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
  const bool answer_on_pool_;
};

}  // namespace switchboard::bot
