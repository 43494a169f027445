#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/principal.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"

namespace switchboard::testing {

// Tokens for tests, from a fresh set of keys made in memory: a development
// issuer for access tokens, one key per service, and identity's
// verification key. A test mints any token in one line:
//
//   testing::TestTokens tokens("sessions");  // the service under test
//   SessionsService service(&sessions, &tokens.verifier(), ...);
//   auto agent = ContextWithToken(tokens.For(auth::Role::kAgent, "ana"));
//   auto routing = ContextWithToken(tokens.For(auth::Role::kService, "routing"));
//
// Process tests hand the keys to servers as a key folder (WriteFolder, then
// --keys_dir), or read the folder a server made (FromFolder). Aborts the
// test binary if keys cannot be made or read.
class TestTokens {
 public:
  // `audience`: the service under test; verifier() accepts the service
  // tokens addressed to it, and For(kService, ...) addresses them to it.
  explicit TestTokens(std::string audience = "test");

  // The keys of the key folder `dir` (e.g. DATA_DIR/keys of a server that
  // made development keys on start).
  static TestTokens FromFolder(const std::string& dir, std::string audience = "test");

  // Writes the keys as a new key folder at `dir`, for a server's --keys_dir
  // (or its DATA_DIR/keys, where a server looks when given no key flags).
  void WriteFolder(const std::string& dir) const;
  // New keys, written at once as the key folder `dir`.
  static TestTokens InFolder(const std::string& dir, std::string audience = "test");

  // Checks tokens as the service `audience` does.
  const auth::TokenVerifier& verifier() const { return *verifier_; }
  // Checks tokens as `service` does (fakes of a service's peers).
  std::unique_ptr<auth::TokenVerifier> VerifierFor(const std::string& service) const;

  // Customer, agent or supervisor: an access token for `subject`, valid for
  // an hour of real time. kService: a service token from the service
  // `subject` to the audience, valid for ten minutes.
  std::string For(auth::Role role, const std::string& subject) const;
  // A service token from `caller` to `callee`, valid for ten minutes.
  std::string ServiceToken(const std::string& caller, const std::string& callee) const;
  // An access token for `principal`, issued at `now` (e.g. in the past, for
  // an expired token).
  std::string Access(const auth::Principal& principal, absl::Time now) const;

  const auth::TokenSigner& issuer() const { return *issuer_; }
  // Signs `service`'s service tokens (for its clients under test).
  const auth::TokenSigner& service_signer(const std::string& service) const;
  // Identity's signer of verification tokens.
  const auth::TokenSigner& verification_signer() const { return *verification_; }
  const auth::KeyFolder& keys() const { return *keys_; }
  const std::string& audience() const { return audience_; }

 private:
  TestTokens(std::unique_ptr<auth::KeyFolder> keys, std::string audience);

  std::unique_ptr<auth::KeyFolder> keys_;
  std::string audience_;
  std::unique_ptr<auth::TokenSigner> issuer_;
  std::unique_ptr<auth::TokenSigner> verification_;
  std::map<std::string, std::unique_ptr<auth::TokenSigner>> services_;
  std::unique_ptr<auth::TokenVerifier> verifier_;
};

}  // namespace switchboard::testing
