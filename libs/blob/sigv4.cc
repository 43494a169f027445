#include "libs/blob/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/blob/blob_store.h"
#include "absl/strings/ascii.h"

namespace switchboard::blob {
namespace {

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

// RFC 3986 unreserved characters stay; everything else is %XX (SigV4's
// encoding of query names and values, slashes included).
std::string UriEncode(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::AsciiStrToUpper(absl::BytesToHexString(
                                     absl::string_view(reinterpret_cast<char*>(&c), 1))));
    }
  }
  return out;
}

}  // namespace

std::string PresignQuery(const PresignRequest& request) {
  const std::string date = absl::FormatTime("%Y%m%d", request.now, absl::UTCTimeZone());
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", request.now, absl::UTCTimeZone());
  const std::string scope = absl::StrCat(date, "/", request.region, "/s3/aws4_request");
  // In the order SigV4 sorts them (by name, byte order).
  const std::string query = absl::StrCat(
      "X-Amz-Algorithm=AWS4-HMAC-SHA256",
      "&X-Amz-Credential=", UriEncode(absl::StrCat(request.access_key_id, "/", scope)),
      "&X-Amz-Date=", stamp,
      "&X-Amz-Expires=", absl::ToInt64Seconds(request.expires_in),
      "&X-Amz-SignedHeaders=host");
  const std::string canonical_request =
      absl::StrCat(request.method, "\n", request.path, "\n", query, "\nhost:", request.host,
                   "\n\nhost\nUNSIGNED-PAYLOAD");
  const std::string string_to_sign = absl::StrCat("AWS4-HMAC-SHA256\n", stamp, "\n", scope,
                                                  "\n", ContentAddress(canonical_request));
  std::string key = Hmac("AWS4" + request.secret_access_key, date);
  key = Hmac(key, request.region);
  key = Hmac(key, "s3");
  key = Hmac(key, "aws4_request");
  return absl::StrCat(query, "&X-Amz-Signature=",
                      absl::BytesToHexString(Hmac(key, string_to_sign)));
}

}  // namespace switchboard::blob
