#pragma once

#include <grpcpp/grpcpp.h>

#include <initializer_list>

#include "absl/status/statusor.h"
#include "libs/auth/token.h"
#include "libs/clock/clock.h"
#include "libs/server/blocking_pool.h"
#include "services/feedback/feedback.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"

namespace switchboard::feedback {

// The gRPC adapter of feedback: authenticates each call and checks the
// caller's role on the callback thread, then runs the logic (store and peer
// calls) on the blocking pool and maps its status. Per-record rules (whose
// session, whose complaint) are the logic's. Who may call what is stated in
// feedback_service.proto.
class FeedbackService final : public v1::FeedbackService::CallbackService {
 public:
  // None owned; all must outlive the service.
  FeedbackService(Feedback* feedback, const auth::TokenCodec* tokens, Clock* clock,
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
                                      std::initializer_list<auth::Role> allowed,
                                      absl::string_view method);

  Feedback* const feedback_;
  const auth::TokenCodec* const tokens_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
};

}  // namespace switchboard::feedback
