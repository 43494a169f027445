#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"
#include "libs/auth/policy.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"

// The gRPC side of authentication: where tokens travel in call metadata.
// Everything here returns absl::Status; the service adapters convert it.

namespace switchboard::auth {

// The metadata key of the token (gRPC keys are lowercase).
inline constexpr absl::string_view kAuthorizationKey = "authorization";

// Extracts the token from an `authorization` header value of the form
// "Bearer <token>" (scheme case-insensitive, as RFC 7235 says; surrounding
// spaces and tabs ignored). Unauthenticated if the scheme is not Bearer or the
// token is empty or contains whitespace. The result points into the argument.
absl::StatusOr<absl::string_view> BearerToken(
    absl::string_view authorization_header);

// Reads `authorization: Bearer <token>` from the call's metadata and verifies
// it as an access or a service token (TokenVerifier::VerifyCaller).
// Unauthenticated if the header is missing, given more than once, not
// Bearer, or the token is invalid; the message gives the reason and never
// the token. Thread-safe.
absl::StatusOr<Principal> AuthenticateCall(const grpc::ServerContextBase& context,
                                           const TokenVerifier& verifier, absl::Time now);

// AuthenticateCall, then policy.Authorize(principal, method): what every
// adapter does first. The caller, or UNAUTHENTICATED / PERMISSION_DENIED.
absl::StatusOr<Principal> AuthenticateAndAuthorize(const grpc::ServerContextBase& context,
                                                   const TokenVerifier& verifier,
                                                   const ServicePolicy& policy, absl::Time now,
                                                   absl::string_view method);

// Client side: attaches `authorization: Bearer <token>` to `context`. Call it
// once per ClientContext, before the call starts.
void AttachToken(grpc::ClientContext& context, absl::string_view token);

}  // namespace switchboard::auth
