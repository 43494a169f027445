#include "services/identity/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>

#include "services/identity/crypto.h"

namespace switchboard::identity {

std::string Hotp(absl::string_view secret, uint64_t counter, int digits) {
  unsigned char message[8];
  for (int i = 7; i >= 0; --i) {
    message[i] = static_cast<unsigned char>(counter & 0xff);
    counter >>= 8;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()), message,
           sizeof(message), mac, &mac_len) == nullptr ||
      mac_len != 20) {
    std::fprintf(stderr, "identity: HMAC-SHA1 failed\n");
    std::abort();
  }
  const int offset = mac[19] & 0x0f;
  const uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                          (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                          (static_cast<uint32_t>(mac[offset + 2]) << 8) |
                          static_cast<uint32_t>(mac[offset + 3]);
  uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  std::string out = std::to_string(binary % modulus);
  return std::string(digits - out.size(), '0') + out;
}

int64_t TotpStep(absl::Time time) {
  return absl::ToUnixSeconds(time) / absl::ToInt64Seconds(kTotpPeriod);
}

int64_t MatchTotp(absl::string_view secret, absl::string_view code, absl::Time now) {
  const int64_t current = TotpStep(now);
  int64_t matched = -1;
  // Every candidate is computed and compared, so the time taken does not
  // tell which step (if any) matched.
  for (int64_t step = current - 1; step <= current + 1; ++step) {
    if (step < 0) continue;
    if (ConstantTimeEquals(Hotp(secret, static_cast<uint64_t>(step), 6), code)) {
      matched = step;
    }
  }
  return matched;
}

std::string Base32Encode(absl::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

}  // namespace switchboard::identity
