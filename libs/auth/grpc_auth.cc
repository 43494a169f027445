#include "libs/auth/grpc_auth.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::auth {
namespace {

absl::string_view StripSpacesAndTabs(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

absl::StatusOr<absl::string_view> BearerToken(
    absl::string_view authorization_header) {
  absl::string_view value = StripSpacesAndTabs(authorization_header);
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t')) {
    return absl::UnauthenticatedError(
        "authorization is not \"Bearer <token>\"");
  }
  absl::string_view token = StripSpacesAndTabs(value.substr(kScheme.size()));
  if (token.empty()) {
    return absl::UnauthenticatedError("authorization has an empty token");
  }
  for (char c : token) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return absl::UnauthenticatedError(
          "authorization is not \"Bearer <token>\"");
    }
  }
  return token;
}

namespace {

// The token of `authorization: Bearer <token>`, pointing into the call's
// metadata.
absl::StatusOr<absl::string_view> CallToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto [first, last] = metadata.equal_range(
      grpc::string_ref(kAuthorizationKey.data(), kAuthorizationKey.size()));
  if (first == last) {
    return absl::UnauthenticatedError("missing authorization metadata");
  }
  if (std::next(first) != last) {
    return absl::UnauthenticatedError(
        "authorization metadata given more than once");
  }
  return BearerToken(absl::string_view(first->second.data(), first->second.size()));
}

}  // namespace

absl::StatusOr<Principal> AuthenticateCall(const grpc::ServerContextBase& context,
                                           const TokenVerifier& verifier, absl::Time now) {
  absl::StatusOr<absl::string_view> token = CallToken(context);
  if (!token.ok()) return token.status();
  return verifier.VerifyCaller(*token, now);
}

absl::StatusOr<Principal> AuthenticateAndAuthorize(const grpc::ServerContextBase& context,
                                                   const TokenVerifier& verifier,
                                                   const ServicePolicy& policy, absl::Time now,
                                                   absl::string_view method) {
  absl::StatusOr<Principal> principal = AuthenticateCall(context, verifier, now);
  if (!principal.ok()) return principal.status();
  if (absl::Status s = policy.Authorize(*principal, method); !s.ok()) return s;
  return principal;
}

void AttachToken(grpc::ClientContext& context, absl::string_view token) {
  context.AddMetadata(std::string(kAuthorizationKey),
                      absl::StrCat("Bearer ", token));
}

}  // namespace switchboard::auth
