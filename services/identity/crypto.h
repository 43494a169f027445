#pragma once

// The cryptography of identity, all over OpenSSL: random codes and ids, keyed
// hashes of one-time codes, and authenticated encryption of TOTP secrets.
// Nothing here logs; errors never contain key material, codes or secrets.
//
// Thread-safe: every function and const method may be called from any thread.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchboard::identity {

// `n` bytes from OpenSSL's CSPRNG (RAND_bytes). Aborts the process if the
// generator fails: no code may ever come from a weaker source.
std::string RandomBytes(size_t n);

// `digits` decimal digits, each uniform: random bytes of 250 or more are
// rejected (250 is the largest multiple of 10 that fits a byte), so there is
// no modulo bias.
std::string RandomDigits(int digits);

// A random opaque id: `prefix` followed by 32 lowercase hex characters
// (128 bits from RandomBytes).
std::string RandomId(absl::string_view prefix);

// A 32-byte subkey for one purpose, HMAC-SHA256(master, purpose), so that one
// configured key yields independent keys for code hashing and encryption.
std::string DeriveKey(absl::string_view master, absl::string_view purpose);

// Keyed hashes of one-time codes: HMAC-SHA256(key, challenge_id ":" code).
// Binding the challenge id means a hash is useless for any other challenge,
// and without the key a stolen database does not let anyone test the 10^6
// possible codes offline.
class CodeHasher {
 public:
  explicit CodeHasher(std::string key);
  // 32 raw bytes.
  std::string Hash(absl::string_view challenge_id, absl::string_view code) const;
  // Whether `code` hashes to `hash`, compared in constant time
  // (CRYPTO_memcmp).
  bool Matches(absl::string_view hash, absl::string_view challenge_id,
               absl::string_view code) const;

 private:
  std::string key_;
};

// AES-256-GCM with a 32-byte key: Seal returns nonce (12 random bytes) ||
// ciphertext || tag (16 bytes); `associated` is authenticated but not stored
// (e.g. the customer id, so a sealed secret cannot be moved to another
// customer's row).
class SecretBox {
 public:
  explicit SecretBox(std::string key);
  std::string Seal(absl::string_view plaintext, absl::string_view associated) const;
  // DataLoss if `sealed` was altered, is truncated, or was sealed with another
  // key or associated data.
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view associated) const;

 private:
  std::string key_;
};

// True when a and b are equal, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace switchboard::identity
