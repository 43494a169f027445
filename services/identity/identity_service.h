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
  struct Options {
    // A request header naming the client's address, set by a proxy in
    // front of identity (e.g. "x-forwarded-for"; its first address
    // counts); empty: the connection's peer address. Only name one that the
    // proxy always sets and never passes on from clients.
    std::string client_address_header;
  };

  // None owned; all must outlive the service. `tokens` checks the callers'
  // tokens and, against identity's own verification key set, the
  // verification tokens customers present.
  IdentityService(Identity* identity, const auth::TokenVerifier* tokens, Clock* clock,
                  server::BlockingPool* pool, Options options);
  IdentityService(Identity* identity, const auth::TokenVerifier* tokens, Clock* clock,
                  server::BlockingPool* pool)
      : IdentityService(identity, tokens, clock, pool, Options()) {}

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
  grpc::ServerUnaryReactor* ListAccountChanges(
      grpc::CallbackServerContext* context, const v1::ListAccountChangesRequest* request,
      v1::ListAccountChangesResponse* response) override;
  grpc::ServerUnaryReactor* ConfirmAccountChange(
      grpc::CallbackServerContext* context, const v1::ConfirmAccountChangeRequest* request,
      v1::ConfirmAccountChangeResponse* response) override;
  grpc::ServerUnaryReactor* CancelAccountChange(
      grpc::CallbackServerContext* context, const v1::CancelAccountChangeRequest* request,
      v1::CancelAccountChangeResponse* response) override;

 private:
  absl::StatusOr<auth::Principal> Authenticate(grpc::CallbackServerContext* context,
                                               absl::string_view method);
  // The customer a call acts on: the caller for a customer (who may name
  // only themselves), the named customer (required) for `others`.
  absl::StatusOr<std::string> TargetCustomer(const auth::Principal& principal,
                                             const std::string& requested,
                                             absl::string_view method);
  // The source a customer's verification call counts against (see
  // SourceOf).
  std::string Source(const grpc::CallbackServerContext& context) const;

  Identity* const identity_;
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
  Clock* const clock_;
  server::BlockingPool* const pool_;
  const Options options_;
};

// The API's AccountChange. Customers see neither the supervisor who asked
// nor staff who resolved it.
void ToProto(const AccountChangeRecord& change, bool for_customer, v1::AccountChange* out);

}  // namespace switchboard::identity
