#include "services/identity/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace switchboard::identity {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &out_len) == nullptr) {
    std::fprintf(stderr, "identity: HMAC-SHA256 failed\n");
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(out), out_len);
}

using CipherContext =
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 &&
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "identity: RAND_bytes failed; refusing to continue\n");
    std::abort();
  }
  return out;
}

std::string RandomDigits(int digits) {
  std::string out;
  out.reserve(digits);
  while (static_cast<int>(out.size()) < digits) {
    for (unsigned char byte : RandomBytes(digits)) {
      if (byte >= 250) continue;
      out.push_back(static_cast<char>('0' + byte % 10));
      if (static_cast<int>(out.size()) == digits) break;
    }
  }
  return out;
}

std::string RandomId(absl::string_view prefix) {
  return absl::StrCat(prefix, absl::BytesToHexString(RandomBytes(16)));
}

std::string DeriveKey(absl::string_view master, absl::string_view purpose) {
  return HmacSha256(master, purpose);
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

CodeHasher::CodeHasher(std::string key) : key_(std::move(key)) {}

std::string CodeHasher::Hash(absl::string_view challenge_id,
                             absl::string_view code) const {
  return HmacSha256(key_, absl::StrCat(challenge_id, ":", code));
}

bool CodeHasher::Matches(absl::string_view hash, absl::string_view challenge_id,
                         absl::string_view code) const {
  return ConstantTimeEquals(Hash(challenge_id, code), hash);
}

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {
  if (key_.size() != 32) {
    std::fprintf(stderr, "identity: SecretBox needs a 32-byte key\n");
    std::abort();
  }
}

std::string SecretBox::Seal(absl::string_view plaintext,
                            absl::string_view associated) const {
  const std::string nonce = RandomBytes(kNonceBytes);
  std::string out = nonce;
  out.resize(kNonceBytes + plaintext.size() + kTagBytes);
  auto* cipher_out = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  int total = 0;
  bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), cipher_out, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), cipher_out + total, &len) == 1;
  total += len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                                 cipher_out + total) == 1;
  if (!ok || static_cast<size_t>(total) != plaintext.size()) {
    std::fprintf(stderr, "identity: AES-256-GCM encryption failed\n");
    std::abort();
  }
  return out;
}

absl::StatusOr<std::string> SecretBox::Open(absl::string_view sealed,
                                            absl::string_view associated) const {
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return absl::DataLossError("sealed secret is truncated");
  }
  const size_t cipher_len = sealed.size() - kNonceBytes - kTagBytes;
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const auto* cipher = nonce + kNonceBytes;
  std::string tag(sealed.substr(kNonceBytes + cipher_len));
  std::string plain(cipher_len, '\0');
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()), nonce) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                        cipher, static_cast<int>(cipher_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1;
  int final_len = 0;
  ok = ok && EVP_DecryptFinal_ex(ctx.get(),
                                 reinterpret_cast<unsigned char*>(plain.data()) + len,
                                 &final_len) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return absl::DataLossError(
        "sealed secret does not authenticate (altered, or another key)");
  }
  return plain;
}

}  // namespace switchboard::identity
