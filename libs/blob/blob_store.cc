#include "libs/blob/blob_store.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace switchboard::blob {

std::string ContentAddress(absl::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

bool IsContentAddress(absl::string_view key) {
  if (key.size() != 2 * SHA256_DIGEST_LENGTH) return false;
  for (char c : key) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

absl::Status CheckContentAddress(absl::string_view key) {
  if (IsContentAddress(key)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "blob key is not a SHA-256 in lowercase hex: \"", key.substr(0, 80), "\""));
}

}  // namespace switchboard::blob
