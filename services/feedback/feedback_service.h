#pragma once

#include <grpcpp/grpcpp.h>

#include <initializer_list>

#include "absl/status/statusor.h"
#include "libs/auth/policy.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/server/blocking_pool.h"
#include "services/feedback/feedback.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"

namespace switchboard::feedback {

// The gRPC adapter of feedback: authenticates each call and checks the
// caller against the RPC's (switchboard.auth.v1.access) option in
// feedback_service.proto on the callback thread, then runs the logic (store
// and peer calls) on the blocking pool and maps its status. Per-record rules
// (whose session, whose complaint) are the logic's.
class FeedbackService final : public v1::FeedbackService::CallbackService {
 public:
  // None owned; all must outlive the service.
  FeedbackService(Feedback* feedback, const auth::TokenVerifier* tokens, Clock* clock,
                  server::BlockingPool* pool);

  grpc::ServerUnaryReactor* SubmitFeedback(grpc::CallbackServerContext* context,
                                           const v1::SubmitFeedbackRequest* request,
                                           v1::SubmitFeedbackResponse* response) override;
  grpc::ServerUnaryReactor* GetFeedback(grpc::CallbackServerContext* context,
                                        const v1::GetFeedbackRequest* request,
                                        v1::GetFeedbackResponse* response) override;
  grpc::ServerUnaryReactor* ListFeedback(grpc::CallbackServerContext* context,
                                         const v1::ListFeedbackRequest* request,
                                         v1::ListFeedbackResponse* response) override;
  grpc::ServerUnaryReactor* FileComplaint(grpc::CallbackServerContext* context,
                                          const v1::FileComplaintRequest* request,
                                          v1::FileComplaintResponse* response) override;
  grpc::ServerUnaryReactor* UpdateComplaint(grpc::CallbackServerContext* context,
                                            const v1::UpdateComplaintRequest* request,
                                            v1::UpdateComplaintResponse* response) override;
  grpc::ServerUnaryReactor* GetComplaint(grpc::CallbackServerContext* context,
                                         const v1::GetComplaintRequest* request,
                                         v1::GetComplaintResponse* response) override;
  grpc::ServerUnaryReactor* ListComplaints(grpc::CallbackServerContext* context,
                                           const v1::ListComplaintsRequest* request,
                                           v1::ListComplaintsResponse* response) override;
  grpc::ServerUnaryReactor* GetSummary(grpc::CallbackServerContext* context,
                                       const v1::GetSummaryRequest* request,
                                       v1::GetSummaryResponse* response) override;

 private:
  absl::StatusOr<Caller> Authenticate(grpc::CallbackServerContext* context,
                                      absl::string_view method);

  Feedback* const feedback_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
};

}  // namespace switchboard::feedback
