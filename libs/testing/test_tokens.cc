#include "libs/testing/test_tokens.h"

#include <cstdio>
#include <cstdlib>

#include "absl/time/clock.h"

namespace switchboard::testing {
namespace {

template <typename T>
T OrDie(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) {
    std::fprintf(stderr, "TestTokens: %s: %s\n", what, value.status().ToString().c_str());
    std::abort();
  }
  return *std::move(value);
}

}  // namespace

TestTokens::TestTokens(std::string audience)
    : TestTokens(std::make_unique<auth::KeyFolder>(
                     OrDie(auth::KeyFolder::Generate(), "cannot make keys")),
                 std::move(audience)) {}

TestTokens::TestTokens(std::unique_ptr<auth::KeyFolder> keys, std::string audience)
    : keys_(std::move(keys)),
      audience_(std::move(audience)),
      issuer_(std::make_unique<auth::TokenSigner>(keys_->issuer,
                                                  std::string(auth::kDevelopmentIssuer))),
      verification_(std::make_unique<auth::TokenSigner>(keys_->verification,
                                                        std::string(auth::kVerificationIssuer))) {
  for (const auto& [service, key] : keys_->services) {
    services_[service] =
        std::make_unique<auth::TokenSigner>(key, std::string(auth::kServiceIssuer));
  }
  verifier_ = VerifierFor(audience_);
}

TestTokens TestTokens::FromFolder(const std::string& dir, std::string audience) {
  return TestTokens(
      std::make_unique<auth::KeyFolder>(OrDie(auth::ReadKeyFolder(dir), "cannot read keys")),
      std::move(audience));
}

TestTokens TestTokens::InFolder(const std::string& dir, std::string audience) {
  TestTokens tokens(std::move(audience));
  tokens.WriteFolder(dir);
  return tokens;
}

void TestTokens::WriteFolder(const std::string& dir) const {
  if (absl::Status s = auth::WriteKeyFolder(*keys_, dir); !s.ok()) {
    std::fprintf(stderr, "TestTokens: cannot write keys: %s\n", s.ToString().c_str());
    std::abort();
  }
}

std::unique_ptr<auth::TokenVerifier> TestTokens::VerifierFor(const std::string& service) const {
  auth::VerifierOptions options;
  options.service = service;
  return std::make_unique<auth::TokenVerifier>(
      auth::TokenVerifier::KeySources{auth::FixedKeys(keys_->AccessKeys()),
                                      auth::FixedKeys(keys_->ServiceKeys()),
                                      auth::FixedKeys(keys_->VerificationKeys())},
      options);
}

std::string TestTokens::For(auth::Role role, const std::string& subject) const {
  if (role == auth::Role::kService) return ServiceToken(subject, audience_);
  const absl::Time now = absl::Now();
  return Access({subject, role, now + absl::Hours(1)}, now);
}

std::string TestTokens::ServiceToken(const std::string& caller, const std::string& callee) const {
  return OrDie(auth::MintServiceToken(service_signer(caller), caller, callee, absl::Now(),
                                      absl::Minutes(10)),
               "cannot mint a service token");
}

std::string TestTokens::Access(const auth::Principal& principal, absl::Time now) const {
  return OrDie(auth::MintAccessToken(*issuer_, principal, now), "cannot mint an access token");
}

const auth::TokenSigner& TestTokens::service_signer(const std::string& service) const {
  auto it = services_.find(service);
  if (it == services_.end()) {
    std::fprintf(stderr, "TestTokens: no service named \"%s\"\n", service.c_str());
    std::abort();
  }
  return *it->second;
}

}  // namespace switchboard::testing
