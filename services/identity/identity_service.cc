#include "services/identity/identity_service.h"

#include "absl/strings/str_cat.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/verification_token.h"
#include "libs/protoutil/time.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"

namespace switchboard::identity {
namespace {

using auth::Role;
using server::FinishNow;
using server::RunUnary;

// Copies the logic's attempts-remaining payload to trailing metadata, then
// passes the status on (RunUnary turns a retry-after into its trailer).
absl::Status WithTrailers(grpc::CallbackServerContext* context, absl::Status status) {
  if (auto value = status.GetPayload(kAttemptsRemaining); value.has_value()) {
    context->AddTrailingMetadata(kAttemptsRemaining, std::string(*value));
  }
  return status;
}

}  // namespace

void ToProto(const AccountChangeRecord& change, bool for_customer, v1::AccountChange* out) {
  out->set_change_id(change.change_id);
  out->set_customer_id(change.customer_id);
  out->set_method(change.method);
  out->set_removed(change.method != common::v1::VERIFICATION_METHOD_TOTP &&
                   change.new_address.empty());
  if (!for_customer) out->set_requested_by(change.requested_by);
  protoutil::ToTimestamp(change.requested_at, out->mutable_requested_at());
  protoutil::ToTimestamp(change.effective_at, out->mutable_effective_at());
  switch (change.state) {
    case ChangeState::kPending:
      out->set_state(v1::ACCOUNT_CHANGE_STATE_PENDING);
      break;
    case ChangeState::kApplied:
      out->set_state(v1::ACCOUNT_CHANGE_STATE_APPLIED);
      break;
    case ChangeState::kCancelled:
      out->set_state(v1::ACCOUNT_CHANGE_STATE_CANCELLED);
      break;
  }
  out->set_resolution(static_cast<v1::AccountChangeResolution>(change.resolution));
  if (!for_customer || change.resolved_by == change.customer_id) {
    out->set_resolved_by(change.resolved_by);
  }
  if (change.state != ChangeState::kPending) {
    protoutil::ToTimestamp(change.resolved_at, out->mutable_resolved_at());
  }
  for (common::v1::VerificationMethod method : change.notified) out->add_notified(method);
}

IdentityService::IdentityService(Identity* identity, const auth::TokenVerifier* tokens,
                                 Clock* clock, server::BlockingPool* pool, Options options)
    : identity_(identity),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::IdentityService::service_full_name())),
      clock_(clock),
      pool_(pool),
      options_(std::move(options)) {}

std::string IdentityService::Source(const grpc::CallbackServerContext& context) const {
  absl::string_view forwarded;
  if (!options_.client_address_header.empty()) {
    const auto& metadata = context.client_metadata();
    auto it = metadata.find(options_.client_address_header);
    if (it != metadata.end()) {
      forwarded = absl::string_view(it->second.data(), it->second.size());
    }
  }
  return SourceOf(context.peer(), forwarded);
}

absl::StatusOr<auth::Principal> IdentityService::Authenticate(
    grpc::CallbackServerContext* context, absl::string_view method) {
  return auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
}

absl::StatusOr<std::string> IdentityService::TargetCustomer(
    const auth::Principal& principal, const std::string& requested,
    absl::string_view method) {
  if (principal.role == Role::kCustomer) {
    if (!requested.empty() && requested != principal.subject) {
      return absl::PermissionDeniedError(
          absl::StrCat(method, ": a customer may act for themselves only"));
    }
    return principal.subject;
  }
  if (requested.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("customer_id: required when a ", auth::RoleName(principal.role),
                     " calls"));
  }
  return requested;
}

grpc::ServerUnaryReactor* IdentityService::StartVerification(
    grpc::CallbackServerContext* context, const v1::StartVerificationRequest* request,
    v1::StartVerificationResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "StartVerification");
  if (!principal.ok()) return FinishNow(context, principal.status());
  absl::StatusOr<std::string> customer =
      TargetCustomer(*principal, request->customer_id(), "StartVerification");
  if (!customer.ok()) return FinishNow(context, customer.status());
  return RunUnary(context, *pool_, [this, context, request, response, customer = *customer,
                                    source = Source(*context)] {
    Identity::StartCommand command{customer,
                                   request->method(),
                                   request->session_id(),
                                   request->language(),
                                   request->request_id(),
                                   source};
    absl::StatusOr<Identity::Started> started = identity_->StartVerification(command);
    if (!started.ok()) return WithTrailers(context, started.status());
    const ChallengeRecord& challenge = started->challenge;
    response->set_challenge_id(challenge.challenge_id);
    response->set_method(challenge.method);
    protoutil::ToTimestamp(challenge.expires_at, response->mutable_expires_at());
    response->set_max_attempts(challenge.max_attempts);
    protoutil::ToTimestamp(started->resend_available_at,
                           response->mutable_resend_available_at());
    response->set_replayed(started->replayed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::CompleteVerification(
    grpc::CallbackServerContext* context, const v1::CompleteVerificationRequest* request,
    v1::CompleteVerificationResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "CompleteVerification");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const std::string caller =
      principal->role == Role::kCustomer ? principal->subject : std::string();
  return RunUnary(context, *pool_, [this, context, request, response, caller,
                                    source = Source(*context)] {
    absl::StatusOr<Identity::Completed> completed = identity_->CompleteVerification(
        caller, request->challenge_id(), request->code(), request->request_id(), source);
    if (!completed.ok()) return WithTrailers(context, completed.status());
    response->set_verification_token(completed->token);
    response->set_token_id(completed->claims.token_id);
    *response->mutable_verification() = completed->verification;
    response->set_session_id(completed->claims.session_id);
    response->set_customer_id(completed->claims.customer_id);
    response->set_replayed(completed->replayed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::ValidateToken(
    grpc::CallbackServerContext* context, const v1::ValidateTokenRequest* request,
    v1::ValidateTokenResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ValidateToken");
  if (!principal.ok()) return FinishNow(context, principal.status());
  if (request->verification_token().empty()) {
    return FinishNow(context,
                     absl::InvalidArgumentError("verification_token: must not be empty"));
  }
  if (request->verification_token().size() > auth::kMaxTokenBytes) {
    return FinishNow(context,
                     absl::InvalidArgumentError("verification_token: longer than 8 KiB"));
  }
  if (!common::v1::VerificationLevel_IsValid(request->min_level())) {
    return FinishNow(context, absl::InvalidArgumentError("min_level: unknown level"));
  }
  // Signature checks only: no blocking work, answered on this thread.
  TokenCheck check = CheckVerificationToken(
      *tokens_, request->verification_token(), request->customer_id(),
      request->session_id(), request->min_level(), clock_->Now());
  response->set_valid(check.reason == v1::INVALID_TOKEN_REASON_UNSPECIFIED);
  response->set_reason(check.reason);
  if (check.claims.has_value()) {
    const auth::VerificationClaims& claims = *check.claims;
    response->set_customer_id(claims.customer_id);
    response->set_session_id(claims.session_id);
    response->set_token_id(claims.token_id);
    common::v1::VerificationState* state = response->mutable_verification();
    state->set_method(MethodFromClaim(claims.method));
    state->set_level(static_cast<common::v1::VerificationLevel>(claims.level));
    protoutil::ToTimestamp(claims.issued_at, state->mutable_verified_at());
    protoutil::ToTimestamp(claims.expires_at, state->mutable_expires_at());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* IdentityService::RegisterContact(
    grpc::CallbackServerContext* context, const v1::RegisterContactRequest* request,
    v1::RegisterContactResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "RegisterContact");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const bool supervisor = principal->role == Role::kSupervisor;
  return RunUnary(context, *pool_, [this, context, request, response, supervisor,
                                    actor = principal->subject] {
    if (supervisor) {
      absl::StatusOr<Identity::ContactChange> change = identity_->RequestContactChange(
          request->customer_id(), request->method(), request->address(), actor,
          request->language());
      if (!change.ok()) return WithTrailers(context, change.status());
      response->set_replaced(change->replaced);
      if (change->pending.has_value()) {
        ToProto(*change->pending, /*for_customer=*/false, response->mutable_pending_change());
      }
      response->set_replayed(change->replayed);
      return absl::OkStatus();
    }
    absl::StatusOr<bool> replaced = identity_->RegisterContact(
        request->customer_id(), request->method(), request->address(), actor);
    if (!replaced.ok()) return WithTrailers(context, replaced.status());
    response->set_replaced(*replaced);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::StartTotpEnrollment(
    grpc::CallbackServerContext* context, const v1::StartTotpEnrollmentRequest* request,
    v1::StartTotpEnrollmentResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "StartTotpEnrollment");
  if (!principal.ok()) return FinishNow(context, principal.status());
  absl::StatusOr<std::string> customer =
      TargetCustomer(*principal, request->customer_id(), "StartTotpEnrollment");
  if (!customer.ok()) return FinishNow(context, customer.status());
  std::optional<int> proof_level;
  if (principal->role == Role::kCustomer) {
    if (request->verification_token().empty()) {
      return FinishNow(context, absl::PermissionDeniedError(
                                    "verification_token: customers need a verification "
                                    "token to enroll an authenticator"));
    }
    absl::StatusOr<auth::VerificationClaims> claims = auth::VerifyVerificationToken(
        *tokens_, request->verification_token(), clock_->Now());
    if (!claims.ok()) {
      return FinishNow(context, absl::PermissionDeniedError(absl::StrCat(
                                    "verification_token: ", claims.status().message())));
    }
    if (claims->customer_id != *customer) {
      return FinishNow(context, absl::PermissionDeniedError(
                                    "verification_token: issued to another customer"));
    }
    proof_level = claims->level;
  }
  return RunUnary(context, *pool_, [this, context, request, response,
                                    customer = *customer, actor = principal->subject,
                                    proof_level,
                                    supervisor = principal->role == Role::kSupervisor] {
    absl::StatusOr<Identity::EnrollmentStarted> started = identity_->StartTotpEnrollment(
        customer, request->account_label(), actor, proof_level, request->request_id(),
        supervisor);
    if (!started.ok()) return WithTrailers(context, started.status());
    response->set_enrollment_id(started->enrollment.enrollment_id);
    response->set_secret_base32(started->secret_base32);
    response->set_otpauth_uri(started->otpauth_uri);
    response->set_digits(kCodeDigits);
    protoutil::ToDuration(absl::Seconds(30), response->mutable_period());
    protoutil::ToTimestamp(started->enrollment.expires_at, response->mutable_expires_at());
    response->set_replayed(started->replayed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::ConfirmTotpEnrollment(
    grpc::CallbackServerContext* context, const v1::ConfirmTotpEnrollmentRequest* request,
    v1::ConfirmTotpEnrollmentResponse* response) {
  absl::StatusOr<auth::Principal> principal =
      Authenticate(context, "ConfirmTotpEnrollment");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const std::string caller =
      principal->role == Role::kCustomer ? principal->subject : std::string();
  return RunUnary(context, *pool_, [this, context, request, response, caller] {
    absl::StatusOr<Identity::EnrollmentConfirmed> confirmed =
        identity_->ConfirmTotpEnrollment(caller, request->enrollment_id(), request->code(),
                                         request->request_id(), request->language());
    if (!confirmed.ok()) return WithTrailers(context, confirmed.status());
    if (confirmed->pending.has_value()) {
      ToProto(*confirmed->pending, /*for_customer=*/!caller.empty(),
              response->mutable_pending_change());
    } else {
      protoutil::ToTimestamp(confirmed->enrolled_at, response->mutable_enrolled_at());
    }
    response->set_replaced(confirmed->replaced);
    response->set_replayed(confirmed->replayed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::ListAccountChanges(
    grpc::CallbackServerContext* context, const v1::ListAccountChangesRequest* request,
    v1::ListAccountChangesResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "ListAccountChanges");
  if (!principal.ok()) return FinishNow(context, principal.status());
  absl::StatusOr<std::string> customer =
      TargetCustomer(*principal, request->customer_id(), "ListAccountChanges");
  if (!customer.ok()) return FinishNow(context, customer.status());
  return RunUnary(context, *pool_, [this, response, customer = *customer,
                                    for_customer = principal->role == Role::kCustomer] {
    absl::StatusOr<std::vector<AccountChangeRecord>> changes =
        identity_->ListAccountChanges(customer);
    if (!changes.ok()) return changes.status();
    for (const AccountChangeRecord& change : *changes) {
      ToProto(change, for_customer, response->add_changes());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::ConfirmAccountChange(
    grpc::CallbackServerContext* context, const v1::ConfirmAccountChangeRequest* request,
    v1::ConfirmAccountChangeResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "ConfirmAccountChange");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const bool customer = principal->role == Role::kCustomer;
  std::optional<int> verification_level;
  if (!request->verification_token().empty()) {
    if (!customer) {
      return FinishNow(context, absl::InvalidArgumentError(
                                    "verification_token: customers only; staff give the code "
                                    "the customer received"));
    }
    if (request->verification_token().size() > auth::kMaxTokenBytes) {
      return FinishNow(context,
                       absl::InvalidArgumentError("verification_token: longer than 8 KiB"));
    }
    absl::StatusOr<auth::VerificationClaims> claims = auth::VerifyVerificationToken(
        *tokens_, request->verification_token(), clock_->Now());
    if (!claims.ok()) {
      return FinishNow(context, absl::PermissionDeniedError(absl::StrCat(
                                    "verification_token: ", claims.status().message())));
    }
    if (claims->customer_id != principal->subject) {
      return FinishNow(context, absl::PermissionDeniedError(
                                    "verification_token: issued to another customer"));
    }
    verification_level = claims->level;
  }
  return RunUnary(context, *pool_, [this, context, request, response, customer,
                                    verification_level, actor = principal->subject] {
    absl::StatusOr<AccountChangeRecord> change = identity_->ConfirmAccountChange(
        customer ? actor : "", request->change_id(), request->code(), verification_level,
        actor);
    if (!change.ok()) return WithTrailers(context, change.status());
    ToProto(*change, customer, response->mutable_change());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IdentityService::CancelAccountChange(
    grpc::CallbackServerContext* context, const v1::CancelAccountChangeRequest* request,
    v1::CancelAccountChangeResponse* response) {
  absl::StatusOr<auth::Principal> principal = Authenticate(context, "CancelAccountChange");
  if (!principal.ok()) return FinishNow(context, principal.status());
  const bool customer = principal->role == Role::kCustomer;
  return RunUnary(context, *pool_, [this, context, request, response, customer,
                                    actor = principal->subject] {
    absl::StatusOr<AccountChangeRecord> change =
        identity_->CancelAccountChange(customer ? actor : "", request->change_id(), actor);
    if (!change.ok()) return WithTrailers(context, change.status());
    ToProto(*change, customer, response->mutable_change());
    return absl::OkStatus();
  });
}

}  // namespace switchboard::identity
