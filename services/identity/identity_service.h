#pragma once

#include <grpcpp/grpcpp.h>

#include "libs/auth/policy.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/server/blocking_pool.h"
#include "services/identity/identity.h"
#include "switchboard/identity/v1/identity_service.grpc.pb.h"

namespace switchboard::identity {

// The gRPC adapter of identity: authenticates and authorizes each call,
// converts messages, runs the logic on the blocking pool and maps statuses,
// turning the logic's retry-after (via RunUnary) and attempts-remaining
// payloads into trailing metadata. Who may call what is each RPC's
// (switchboard.auth.v1.access) option in identity_service.proto.
class IdentityService final : public v1::IdentityService::CallbackService {
 public:
  // None owned; all must outlive the service. `tokens` checks access tokens
  // and verification tokens (one deployment key).
  IdentityService(Identity* identity, const auth::TokenVerifier* tokens, Clock* clock,
                  server::BlockingPool* pool);

  grpc::ServerUnaryReactor* StartVerification(
      grpc::CallbackServerContext* context, const v1::StartVerificationRequest* request,
      v1::StartVerificationResponse* response) override;
  grpc::ServerUnaryReactor* CompleteVerification(
      grpc::CallbackServerContext* context, const v1::CompleteVerificationRequest* request,
      v1::CompleteVerificationResponse* response) override;
  grpc::ServerUnaryReactor* ValidateToken(grpc::CallbackServerContext* context,
                                          const v1::ValidateTokenRequest* request,
                                          v1::ValidateTokenResponse* response) override;
  grpc::ServerUnaryReactor* RegisterContact(
      grpc::CallbackServerContext* context, const v1::RegisterContactRequest* request,
      v1::RegisterContactResponse* response) override;
  grpc::ServerUnaryReactor* StartTotpEnrollment(
      grpc::CallbackServerContext* context, const v1::StartTotpEnrollmentRequest* request,
      v1::StartTotpEnrollmentResponse* response) override;
  grpc::ServerUnaryReactor* ConfirmTotpEnrollment(
      grpc::CallbackServerContext* context, const v1::ConfirmTotpEnrollmentRequest* request,
      v1::ConfirmTotpEnrollmentResponse* response) override;

 private:
  absl::StatusOr<auth::Principal> Authenticate(grpc::CallbackServerContext* context,
                                               absl::string_view method);
  // The customer a call acts on: the caller for a customer (who may name
  // only themselves), the named customer (required) for `others`.
  absl::StatusOr<std::string> TargetCustomer(const auth::Principal& principal,
                                             const std::string& requested,
                                             absl::string_view method);

  Identity* const identity_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
};

}  // namespace switchboard::identity
