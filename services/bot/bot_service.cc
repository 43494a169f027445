#include "services/bot/bot_service.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/grpc_auth.h"
#include "libs/protoutil/time.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"
#include "libs/validation/validation.h"

namespace switchboard::bot {
namespace {

using server::FinishNow;
using server::FinishUnary;
using server::RunUnary;
using server::RunUnaryAsync;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 500;
constexpr char kPageTokenPrefix[] = "intents:";

std::string EncodePageToken(const std::string& last_intent_id) {
  if (last_intent_id.empty()) return "";
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, last_intent_id));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  if (token.empty()) return std::string();
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix)) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous ListIntents response");
  }
  return decoded.substr(sizeof(kPageTokenPrefix) - 1);
}

}  // namespace

BotService::BotService(Bot* bot, const auth::TokenVerifier* tokens, Clock* clock,
                       server::BlockingPool* pool, bool answer_on_pool)
    : bot_(bot),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::BotService::service_full_name())),
      clock_(clock),
      pool_(pool),
      answer_on_pool_(answer_on_pool) {}

absl::StatusOr<auth::Principal> BotService::Authenticate(grpc::CallbackServerContext* context,
                                                         absl::string_view method) {
  return auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
}

grpc::ServerUnaryReactor* BotService::Answer(grpc::CallbackServerContext* context,
                                             const v1::AnswerRequest* request,
                                             v1::AnswerResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "Answer");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (answer_on_pool_) {
    return RunUnaryAsync(context, *pool_, [this, request, response](FinishUnary finish) {
      bot_->Answer(*request, response, std::move(finish));
    });
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bot_->Answer(*request, response, [reactor](absl::Status status) {
    reactor->Finish(server::ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* BotService::ListIntents(grpc::CallbackServerContext* context,
                                                  const v1::ListIntentsRequest* request,
                                                  v1::ListIntentsResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "ListIntents");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (!common::v1::Category_IsValid(request->category())) {
    return FinishNow(context, absl::InvalidArgumentError("category: unknown category"));
  }
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    return FinishNow(context, absl::InvalidArgumentError(
                                  absl::StrCat("page_size: must be 0 to ", kMaxPageSize)));
  }
  absl::StatusOr<std::string> after = DecodePageToken(request->page_token());
  if (!after.ok()) return FinishNow(context, after.status());
  const int page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  absl::StatusOr<Bot::IntentPage> page = bot_->ListIntents(
      request->category(), request->query(), request->language(), page_size, *after);
  if (!page.ok()) return FinishNow(context, page.status());
  for (v1::Intent& intent : page->intents) *response->add_intents() = std::move(intent);
  response->set_next_page_token(EncodePageToken(page->last_intent_id));
  response->set_knowledge_base_version(page->version);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* BotService::ReloadKnowledgeBase(
    grpc::CallbackServerContext* context, const v1::ReloadKnowledgeBaseRequest* request,
    v1::ReloadKnowledgeBaseResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ReloadKnowledgeBase");
  if (!principal.ok()) return FinishNow(context, principal.status());
  return RunUnary(context, *pool_, [this, response, actor = principal->subject] {
    absl::StatusOr<Bot::ReloadResult> result = bot_->Reload(actor);
    if (!result.ok()) return result.status();
    response->set_version(result->version);
    response->set_previous_version(result->previous_version);
    response->set_intent_count(result->intent_count);
    response->set_example_count(result->example_count);
    protoutil::ToTimestamp(result->loaded_at, response->mutable_loaded_at());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* BotService::ResetDialogue(grpc::CallbackServerContext* context,
                                                    const v1::ResetDialogueRequest* request,
                                                    v1::ResetDialogueResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ResetDialogue");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (absl::Status s = validation::ValidateId("session_id", request->session_id(), 128); !s.ok()) {
    return FinishNow(context, s);
  }
  if (!answer_on_pool_) {
    absl::StatusOr<bool> existed = bot_->ResetDialogue(request->session_id());
    if (existed.ok()) response->set_existed(*existed);
    return FinishNow(context, existed.status());
  }
  return RunUnary(context, *pool_, [this, request, response] {
    absl::StatusOr<bool> existed = bot_->ResetDialogue(request->session_id());
    if (existed.ok()) response->set_existed(*existed);
    return existed.status();
  });
}

}  // namespace switchboard::bot
