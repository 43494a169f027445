#include "libs/auth/keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "libs/auth/json.h"

namespace switchboard::auth {
namespace {

constexpr size_t kCoordinateBytes = 32;
constexpr size_t kSignatureBytes = 2 * kCoordinateBytes;
constexpr size_t kMaxKidBytes = 256;
// OpenSSL's name of P-256.
constexpr char kCurve[] = "prime256v1";

std::atomic<uint64_t> next_generation{1};

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct SigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
using SigPtr = std::unique_ptr<ECDSA_SIG, SigDeleter>;

std::shared_ptr<evp_pkey_st> Share(EVP_PKEY* key) {
  return std::shared_ptr<evp_pkey_st>(key, EVP_PKEY_free);
}

// OpenSSL keeps errors in a per-thread queue; a failure handled here must
// not surface later in someone else's OpenSSL call.
template <typename T>
T Cleared(T result) {
  ERR_clear_error();
  return result;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  char name[64];
  size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                     &length) != 1) {
    return false;
  }
  return absl::string_view(name, length) == kCurve;
}

// The public point's coordinates, 32 bytes each.
bool Coordinates(EVP_PKEY* key, std::string* x, std::string* y) {
  BIGNUM* raw_x = nullptr;
  BIGNUM* raw_y = nullptr;
  const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &raw_x) == 1 &&
                   EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &raw_y) == 1;
  BnPtr bx(raw_x);
  BnPtr by(raw_y);
  if (!got) return false;
  x->assign(kCoordinateBytes, '\0');
  y->assign(kCoordinateBytes, '\0');
  return BN_bn2binpad(bx.get(), reinterpret_cast<unsigned char*>(x->data()),
                      kCoordinateBytes) == kCoordinateBytes &&
         BN_bn2binpad(by.get(), reinterpret_cast<unsigned char*>(y->data()),
                      kCoordinateBytes) == kCoordinateBytes;
}

bool Sha256(absl::string_view input, std::string* digest) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(input.data(), input.size(), out, &length, EVP_sha256(), nullptr) != 1) {
    return false;
  }
  digest->assign(reinterpret_cast<const char*>(out), length);
  return true;
}

bool IsServiceName(absl::string_view name) {
  for (char c : name) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

// A string member of a JSON object, or nullptr if absent or not a string.
const std::string* StringMember(const google::protobuf::Struct& object,
                                const std::string& name) {
  auto it = object.fields().find(name);
  if (it == object.fields().end() ||
      it->second.kind_case() != google::protobuf::Value::kStringValue) {
    return nullptr;
  }
  return &it->second.string_value();
}

}  // namespace

// --- base64url ------------------------------------------------------------

std::string Base64UrlEncode(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

bool Base64UrlDecode(absl::string_view text, std::string* bytes) {
  for (char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
  }
  // A length of 1 modulo 4 encodes no whole byte.
  if (text.size() % 4 == 1) return false;
  if (!absl::WebSafeBase64Unescape(text, bytes)) return false;
  // Unused low bits of the last character must be zero: one token, one text.
  return absl::WebSafeBase64Escape(*bytes) == text;
}

// --- PublicKey ------------------------------------------------------------

absl::StatusOr<PublicKey> PublicKey::FromCoordinates(absl::string_view x, absl::string_view y) {
  if (x.size() != kCoordinateBytes || y.size() != kCoordinateBytes) {
    return absl::InvalidArgumentError("coordinates are not 32 bytes each");
  }
  unsigned char point[1 + kSignatureBytes];
  point[0] = POINT_CONVERSION_UNCOMPRESSED;
  std::copy(x.begin(), x.end(), point + 1);
  std::copy(y.begin(), y.end(), point + 1 + kCoordinateBytes);
  char curve[sizeof(kCurve)];
  std::copy(kCurve, kCurve + sizeof(kCurve), curve);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, curve, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
      OSSL_PARAM_construct_end()};
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(raw);
    return Cleared(absl::InvalidArgumentError("not a point on P-256"));
  }
  std::shared_ptr<evp_pkey_st> key = Share(raw);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    return Cleared(absl::InvalidArgumentError("not a point on P-256"));
  }
  return PublicKey(std::move(key), std::string(x), std::string(y));
}

bool PublicKey::Verify(absl::string_view input, absl::string_view signature) const {
  if (signature.size() != kSignatureBytes) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(signature.data());
  BnPtr r(BN_bin2bn(bytes, kCoordinateBytes, nullptr));
  BnPtr s(BN_bin2bn(bytes + kCoordinateBytes, kCoordinateBytes, nullptr));
  SigPtr sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || sig == nullptr ||
      ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return Cleared(false);
  }
  r.release();  // owned by sig now
  s.release();
  unsigned char* der = nullptr;
  const int der_length = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_length <= 0) return Cleared(false);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool valid =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_length),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  OPENSSL_free(der);
  return valid ? true : Cleared(false);
}

std::string PublicKey::Thumbprint() const {
  // RFC 7638 section 3.2: the required members only, in lexical order, no
  // whitespace.
  const std::string canonical =
      absl::StrCat(R"({"crv":"P-256","kty":"EC","x":")", Base64UrlEncode(x_), R"(","y":")",
                   Base64UrlEncode(y_), R"("})");
  std::string digest;
  // SHA-256 of a few bytes fails only if OpenSSL cannot allocate; the kid
  // is then the canonical text's own encoding, still unique per key.
  if (!Sha256(canonical, &digest)) return Cleared(Base64UrlEncode(canonical));
  return Base64UrlEncode(digest);
}

// --- SigningKey -----------------------------------------------------------

SigningKey::SigningKey(std::shared_ptr<evp_pkey_st> key, PublicKey public_key)
    : key_(std::move(key)), public_key_(std::move(public_key)), kid_(public_key_.Thumbprint()) {}

absl::StatusOr<SigningKey> SigningKey::Generate() {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  if (raw == nullptr) return Cleared(absl::InternalError("cannot generate a P-256 key"));
  std::shared_ptr<evp_pkey_st> key = Share(raw);
  std::string x;
  std::string y;
  if (!Coordinates(key.get(), &x, &y)) {
    return Cleared(absl::InternalError("cannot read the new key's public point"));
  }
  absl::StatusOr<PublicKey> public_key = PublicKey::FromCoordinates(x, y);
  if (!public_key.ok()) return absl::InternalError("the new key's public point is invalid");
  return SigningKey(std::move(key), *std::move(public_key));
}

absl::StatusOr<SigningKey> SigningKey::FromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return Cleared(absl::InternalError("BIO_new_mem_buf failed"));
  // An encrypted key would make OpenSSL ask a terminal for its passphrase;
  // the empty one given here fails instead.
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  if (raw == nullptr) {
    return Cleared(
        absl::InvalidArgumentError("not a PEM private key (unencrypted PKCS#8 or SEC 1)"));
  }
  std::shared_ptr<evp_pkey_st> key = Share(raw);
  if (!IsP256(key.get())) {
    return Cleared(absl::InvalidArgumentError("not an EC key on P-256 (ES256 needs one)"));
  }
  std::string x;
  std::string y;
  if (!Coordinates(key.get(), &x, &y)) {
    return Cleared(absl::InvalidArgumentError("the key has no public point"));
  }
  absl::StatusOr<PublicKey> public_key = PublicKey::FromCoordinates(x, y);
  if (!public_key.ok()) return public_key.status();
  return SigningKey(std::move(key), *std::move(public_key));
}

std::string SigningKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Cleared(std::string());
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(length));
  OPENSSL_cleanse(data, static_cast<size_t>(length));
  return pem;
}

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view input) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t der_length = 0;
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return Cleared(absl::InternalError("cannot start an ES256 signature"));
  }
  std::string der(der_length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &der_length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return Cleared(absl::InternalError("cannot make an ES256 signature"));
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_length)));
  if (sig == nullptr) return Cleared(absl::InternalError("cannot decode the ECDSA signature"));
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(kSignatureBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, bytes, kCoordinateBytes) != kCoordinateBytes ||
      BN_bn2binpad(s, bytes + kCoordinateBytes, kCoordinateBytes) != kCoordinateBytes) {
    return Cleared(absl::InternalError("ECDSA signature out of range"));
  }
  return out;
}

// --- KeySet ---------------------------------------------------------------

KeySet::KeySet() : generation_(next_generation.fetch_add(1)) {}

absl::Status KeySet::Add(std::string kid, PublicKey key, std::string service) {
  if (kid.empty() || kid.size() > kMaxKidBytes || !IsValidUtf8(kid)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kid: must be 1 to ", kMaxKidBytes, " bytes of UTF-8"));
  }
  if (Find(kid) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("kid: \"", kid, "\" is used twice"));
  }
  if (!IsServiceName(service)) {
    return absl::InvalidArgumentError("service: only a-z, 0-9, '_' and '-'");
  }
  keys_.push_back(Key{std::move(kid), std::move(key), std::move(service)});
  generation_ = next_generation.fetch_add(1);
  return absl::OkStatus();
}

const KeySet::Key* KeySet::Find(absl::string_view kid) const {
  for (const Key& key : keys_) {
    if (key.kid == kid) return &key;
  }
  return nullptr;
}

absl::StatusOr<KeySet> KeySet::FromJson(absl::string_view json) {
  google::protobuf::Struct root;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &root).ok()) {
    return absl::InvalidArgumentError("key set: not a JSON object");
  }
  auto keys = root.fields().find("keys");
  if (keys == root.fields().end() ||
      keys->second.kind_case() != google::protobuf::Value::kListValue) {
    return absl::InvalidArgumentError("key set: no \"keys\" array");
  }
  KeySet set;
  const auto& list = keys->second.list_value().values();
  for (int i = 0; i < list.size(); ++i) {
    const std::string where = absl::StrCat("keys[", i, "]");
    if (list[i].kind_case() != google::protobuf::Value::kStructValue) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    const google::protobuf::Struct& jwk = list[i].struct_value();
    // Checked before anything is skipped: a private or secret key of any
    // kind in a set that every service reads has leaked.
    if (jwk.fields().contains("d") || jwk.fields().contains("k")) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": holds private key material (\"d\" or \"k\"); a key set holds public "
                 "keys only"));
    }
    const std::string* kty = StringMember(jwk, "kty");
    const std::string* crv = StringMember(jwk, "crv");
    const std::string* alg = StringMember(jwk, "alg");
    const std::string* use = StringMember(jwk, "use");
    if (kty == nullptr || *kty != "EC" || crv == nullptr || *crv != "P-256" ||
        (jwk.fields().contains("alg") && (alg == nullptr || *alg != "ES256")) ||
        (jwk.fields().contains("use") && (use == nullptr || *use != "sig"))) {
      continue;
    }
    const std::string* kid = StringMember(jwk, "kid");
    if (kid == nullptr || kid->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".kid: missing"));
    }
    std::string coordinates[2];
    const char* const names[2] = {"x", "y"};
    for (int c = 0; c < 2; ++c) {
      const std::string* text = StringMember(jwk, names[c]);
      if (text == nullptr || !Base64UrlDecode(*text, &coordinates[c]) ||
          coordinates[c].size() != kCoordinateBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".", names[c], ": not 32 bytes in base64url"));
      }
    }
    absl::StatusOr<PublicKey> key = PublicKey::FromCoordinates(coordinates[0], coordinates[1]);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", key.status().message()));
    }
    std::string service;
    if (jwk.fields().contains("service")) {
      const std::string* named = StringMember(jwk, "service");
      if (named == nullptr || named->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".service: not a service name"));
      }
      service = *named;
    }
    if (absl::Status s = set.Add(*kid, *std::move(key), std::move(service)); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", s.message()));
    }
  }
  if (set.keys_.empty()) {
    return absl::InvalidArgumentError("key set: no ES256 signing key (kty EC, crv P-256)");
  }
  return set;
}

std::string KeySet::ToJson() const {
  std::string json = "{\"keys\": [";
  for (size_t i = 0; i < keys_.size(); ++i) {
    const Key& key = keys_[i];
    absl::StrAppend(&json, i == 0 ? "\n" : ",\n", R"(  {"kty": "EC", "crv": "P-256", "kid": )");
    // Add and FromJson admit only kids that came from valid UTF-8.
    AppendJsonString(key.kid, &json);
    absl::StrAppend(&json, R"(, "x": ")", Base64UrlEncode(key.key.x()), R"(", "y": ")",
                    Base64UrlEncode(key.key.y()), R"(", "alg": "ES256", "use": "sig")");
    if (!key.service.empty()) absl::StrAppend(&json, R"(, "service": ")", key.service, "\"");
    json += "}";
  }
  json += keys_.empty() ? "]}\n" : "\n]}\n";
  return json;
}

}  // namespace switchboard::auth
