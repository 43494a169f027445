#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/auth/keys.h"

// A key folder: every key a Switchboard platform uses, as files.
//
//   access.jwks             public keys of the access tokens' issuer
//   services.jwks           each service's public key, bound to the service
//   verification.jwks       identity's verification-token public key
//   development-issuer.pem  the development issuer's private key: what
//                           tools/mint_token, the CLI and tests sign access
//                           tokens with (production uses the desk's login)
//   <service>.pem           each service's private key, for its service
//                           tokens (sessions.pem, routing.pem, ...; and
//                           accounts.pem, standing in locally for the
//                           exchange's account system)
//   verification.pem        identity's private key for verification tokens
//
// A local run (tools/run.sh, or a service started without key flags) makes
// one in DATA_DIR/keys; each service then reads only its own private key
// and the three public sets. In production each service is given only
// those files (see the README's security section).

namespace switchboard::auth {

inline constexpr char kAccessKeysFile[] = "access.jwks";
inline constexpr char kServiceKeysFile[] = "services.jwks";
inline constexpr char kVerificationKeysFile[] = "verification.jwks";
inline constexpr char kIssuerKeyFile[] = "development-issuer.pem";
inline constexpr char kVerificationKeyFile[] = "verification.pem";

// "<service>.pem".
std::string ServiceKeyFile(const std::string& service);

// The private keys of a key folder.
struct KeyFolder {
  SigningKey issuer;
  // By service name: one for each of ServiceNames().
  std::map<std::string, SigningKey> services;
  SigningKey verification;

  // New random keys. Internal if OpenSSL fails.
  static absl::StatusOr<KeyFolder> Generate();

  // The public sets, as the .jwks files hold them.
  KeySet AccessKeys() const;
  KeySet ServiceKeys() const;
  KeySet VerificationKeys() const;
};

// Writes `keys` as a new key folder `dir`: the files are written to a
// temporary folder beside it, which is then renamed to `dir`, so a reader
// never sees half a folder and two processes racing to create it end up
// sharing one. AlreadyExists if `dir` exists; the errno-derived code for
// other failures. Private keys get mode 0600, the folder 0700.
absl::Status WriteKeyFolder(const KeyFolder& keys, const std::string& dir);

// Reads the private keys of the key folder `dir`. NotFound or
// InvalidArgument naming the file at fault.
absl::StatusOr<KeyFolder> ReadKeyFolder(const std::string& dir);

// Makes a development key folder at `dir` with new keys unless `dir` exists.
// True if it was made now.
absl::StatusOr<bool> EnsureKeyFolder(const std::string& dir);

// Reads a PEM private key file (SigningKey::FromPem). NotFound or
// InvalidArgument naming the path, never the key.
absl::StatusOr<SigningKey> ReadSigningKeyFile(const std::string& path);

}  // namespace switchboard::auth
