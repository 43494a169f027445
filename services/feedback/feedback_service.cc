#include "services/feedback/feedback_service.h"

#include "libs/auth/grpc_auth.h"
#include "libs/server/unary.h"

namespace switchboard::feedback {
namespace {

using auth::Role;
using server::FinishNow;
using server::RunUnary;

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

FeedbackService::FeedbackService(Feedback* feedback, const auth::TokenVerifier* tokens,
                                 Clock* clock, server::BlockingPool* pool)
    : feedback_(feedback),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::FeedbackService::service_full_name())),
      clock_(clock),
      pool_(pool) {}

absl::StatusOr<Caller> FeedbackService::Authenticate(grpc::CallbackServerContext* context,
                                                     absl::string_view method) {
  absl::StatusOr<auth::Principal> principal =
      auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
  if (!principal.ok()) return principal.status();
  return Caller{principal->role, principal->subject};
}

grpc::ServerUnaryReactor* FeedbackService::SubmitFeedback(
    grpc::CallbackServerContext* context, const v1::SubmitFeedbackRequest* request,
    v1::SubmitFeedbackResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "SubmitFeedback");
  if (!caller.ok()) return FinishNow(context, caller.status());
  const absl::Time deadline = DeadlineOf(context);
  return RunUnary(context, *pool_, response, [this, request, caller = *caller, deadline] {
    return feedback_->SubmitFeedback(caller, *request, deadline);
  });
}

grpc::ServerUnaryReactor* FeedbackService::GetFeedback(grpc::CallbackServerContext* context,
                                                       const v1::GetFeedbackRequest* request,
                                                       v1::GetFeedbackResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "GetFeedback");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->GetFeedback(caller, *request);
  });
}

grpc::ServerUnaryReactor* FeedbackService::ListFeedback(grpc::CallbackServerContext* context,
                                                        const v1::ListFeedbackRequest* request,
                                                        v1::ListFeedbackResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "ListFeedback");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->ListFeedback(caller, *request);
  });
}

grpc::ServerUnaryReactor* FeedbackService::FileComplaint(grpc::CallbackServerContext* context,
                                                         const v1::FileComplaintRequest* request,
                                                         v1::FileComplaintResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "FileComplaint");
  if (!caller.ok()) return FinishNow(context, caller.status());
  const absl::Time deadline = DeadlineOf(context);
  return RunUnary(context, *pool_, response, [this, request, caller = *caller, deadline] {
    return feedback_->FileComplaint(caller, *request, deadline);
  });
}

grpc::ServerUnaryReactor* FeedbackService::UpdateComplaint(
    grpc::CallbackServerContext* context, const v1::UpdateComplaintRequest* request,
    v1::UpdateComplaintResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "UpdateComplaint");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->UpdateComplaint(caller, *request);
  });
}

grpc::ServerUnaryReactor* FeedbackService::GetComplaint(grpc::CallbackServerContext* context,
                                                        const v1::GetComplaintRequest* request,
                                                        v1::GetComplaintResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "GetComplaint");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->GetComplaint(caller, *request);
  });
}

grpc::ServerUnaryReactor* FeedbackService::ListComplaints(
    grpc::CallbackServerContext* context, const v1::ListComplaintsRequest* request,
    v1::ListComplaintsResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ListComplaints");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->ListComplaints(caller, *request);
  });
}

grpc::ServerUnaryReactor* FeedbackService::GetSummary(grpc::CallbackServerContext* context,
                                                      const v1::GetSummaryRequest* request,
                                                      v1::GetSummaryResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "GetSummary");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunUnary(context, *pool_, response, [this, request, caller = *caller] {
    return feedback_->GetSummary(caller, *request);
  });
}

}  // namespace switchboard::feedback
