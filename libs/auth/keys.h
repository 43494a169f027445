#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// OpenSSL's key type, without OpenSSL's headers.
struct evp_pkey_st;

namespace switchboard::auth {

// ES256 keys (ECDSA on the P-256 curve with SHA-256, RFC 7518 section 3.4)
// and JSON Web Key Sets (RFC 7517), on OpenSSL 3.
//
// Tokens are signed with a private key that only their issuer holds, and
// checked with public keys from a key set: a service that can check tokens
// cannot make them. A key set holds several keys, each named by its `kid`,
// so that a new key can be added before the old one is removed (rotation).

// A public ES256 key. Copies share one OpenSSL key; thread-safe.
class PublicKey {
 public:
  // From a JWK's coordinates `x` and `y`: 32 bytes each, already decoded
  // from base64url. InvalidArgument unless (x, y) is a point of P-256.
  static absl::StatusOr<PublicKey> FromCoordinates(absl::string_view x, absl::string_view y);

  // Whether `signature` is a valid ES256 signature of `input`: 64 bytes, the
  // big-endian R and S of 32 bytes each, as JWS writes them.
  bool Verify(absl::string_view input, absl::string_view signature) const;

  // The coordinates, 32 bytes each.
  const std::string& x() const { return x_; }
  const std::string& y() const { return y_; }

  // The key's RFC 7638 thumbprint: the base64url SHA-256 of its canonical
  // JWK. Switchboard's own keys use it as their kid.
  std::string Thumbprint() const;

 private:
  PublicKey(std::shared_ptr<evp_pkey_st> key, std::string x, std::string y)
      : key_(std::move(key)), x_(std::move(x)), y_(std::move(y)) {}
  friend class SigningKey;

  std::shared_ptr<evp_pkey_st> key_;
  std::string x_;
  std::string y_;
};

// A private ES256 key: signs. Copies share one OpenSSL key; thread-safe.
class SigningKey {
 public:
  // A new random key (OpenSSL's generator). Internal if OpenSSL fails.
  static absl::StatusOr<SigningKey> Generate();

  // From PEM text: a PKCS#8 "PRIVATE KEY" or a SEC 1 "EC PRIVATE KEY" on
  // P-256. InvalidArgument for anything else (the message never holds the
  // key).
  static absl::StatusOr<SigningKey> FromPem(absl::string_view pem);

  // The key as a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), unencrypted.
  std::string ToPem() const;

  const PublicKey& public_key() const { return public_key_; }

  // The kid tokens signed with this key name: the public key's thumbprint.
  const std::string& kid() const { return kid_; }

  // The ES256 signature of `input`, in JWS form (64 bytes, R then S).
  // Internal if OpenSSL fails.
  absl::StatusOr<std::string> Sign(absl::string_view input) const;

 private:
  SigningKey(std::shared_ptr<evp_pkey_st> key, PublicKey public_key);

  std::shared_ptr<evp_pkey_st> key_;
  PublicKey public_key_;
  std::string kid_;
};

// A JSON Web Key Set of ES256 public keys, by kid. Immutable once shared;
// thread-safe for reading.
//
// The JSON form is RFC 7517's:
//   {"keys": [{"kty": "EC", "crv": "P-256", "kid": "...", "x": "...",
//              "y": "...", "alg": "ES256", "use": "sig"}]}
// In the set of Switchboard's service keys each key also names the service
// it belongs to, `"service": "routing"` (RFC 7517 lets a JWK carry members
// of its own): a service token is accepted only from its service's key.
class KeySet {
 public:
  struct Key {
    std::string kid;
    PublicKey key;
    // The service the key belongs to; empty outside the service key set.
    std::string service;
  };

  // An empty set.
  KeySet();

  // Parses a JWKS. Keys that are not ES256 signing keys (another `kty`,
  // `crv` or `alg`, or `use` other than "sig") are skipped, so that an
  // issuer may publish other keys beside them. InvalidArgument, naming the
  // key ("keys[2].x: ..."), for JSON that is not a key set, a usable key
  // without a kid or with malformed coordinates, a kid used twice, a key
  // that holds private material (`d`: a key set is handed to every service
  // and must hold public keys only), or a set with no usable key.
  static absl::StatusOr<KeySet> FromJson(absl::string_view json);

  // The set as JSON, one key per line, in the order keys were added.
  std::string ToJson() const;

  // Adds a key. InvalidArgument if the kid is empty or already in the set,
  // or `service` holds characters other than [a-z0-9_-].
  absl::Status Add(std::string kid, PublicKey key, std::string service = "");

  // The key named `kid`, or null.
  const Key* Find(absl::string_view kid) const;

  const std::vector<Key>& keys() const { return keys_; }

  // Distinct for every set made or changed in this process: a cache of
  // tokens checked against one set knows when the set was replaced.
  uint64_t generation() const { return generation_; }

 private:
  std::vector<Key> keys_;
  uint64_t generation_;
};

// base64url without padding (RFC 7515 section 2), as JWS and JWK use it.
std::string Base64UrlEncode(absl::string_view bytes);
// The inverse; false for any character outside the base64url alphabet,
// padding, or a text that is not the canonical encoding of its bytes.
bool Base64UrlDecode(absl::string_view text, std::string* bytes);

}  // namespace switchboard::auth
