#include "libs/auth/hmac_token.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace switchboard::auth {
namespace {

static_assert(sizeof(long) == sizeof(int64_t),
              "libjwt's integer claims are longs; int64 claims need LP64");

constexpr absl::string_view kIssuer = "switchboard";
constexpr absl::string_view kAccessAudience = "switchboard-api";

// --- JWT ------------------------------------------------------------------

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

bool IsRegisteredClaim(absl::string_view name) {
  return name == "iss" || name == "aud" || name == "sub" || name == "iat" ||
         name == "exp";
}

absl::Status Unauthenticated(absl::string_view reason) {
  return absl::UnauthenticatedError(reason);
}

absl::Status AddString(jwt_t* jwt, const std::string& name,
                       const std::string& value) {
  // libjwt takes C strings: a NUL would silently cut the value short.
  if (value.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("claim ", name, " contains a NUL byte"));
  }
  if (jwt_add_grant(jwt, name.c_str(), value.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("claim ", name, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

// Decodes one base64url part of a token into a JSON object.
bool ParseJsonPart(absl::string_view part, google::protobuf::Struct* out) {
  std::string json;
  if (!absl::WebSafeBase64Unescape(part, &json)) return false;
  return google::protobuf::util::JsonStringToMessage(json, out).ok();
}

// A string claim, or nullptr if absent or not a string. The pointer lives as
// long as `jwt`.
const char* StringClaim(jwt_t* jwt, const char* name) {
  return jwt_get_grant(jwt, name);
}

// An integer claim, or nullopt if absent or not an integer. libjwt cannot
// tell (it reads 1.5 as 0), and the parsed payload holds numbers as doubles,
// which are inexact beyond 2^53: the claim must be a number in the payload
// whose value libjwt reads exactly.
std::optional<int64_t> IntClaim(jwt_t* jwt,
                                const google::protobuf::Struct& payload,
                                const std::string& name) {
  auto field = payload.fields().find(name);
  if (field == payload.fields().end() ||
      field->second.kind_case() != google::protobuf::Value::kNumberValue) {
    return std::nullopt;
  }
  errno = 0;
  long value = jwt_get_grant_int(jwt, name.c_str());
  if (errno != 0 ||
      static_cast<double>(value) != field->second.number_value()) {
    return std::nullopt;
  }
  return static_cast<int64_t>(value);
}

}  // namespace

absl::StatusOr<std::string> TokenCodec::Sign(const Claims& claims) const {
  if (key_.size() < kMinKeyBytes) {
    return absl::FailedPreconditionError("token signing key is too short");
  }
  if (claims.audience.empty()) {
    return absl::InvalidArgumentError("token audience is empty");
  }
  if (claims.subject.empty()) {
    return absl::InvalidArgumentError("token subject is empty");
  }
  if (claims.expires_at <= claims.issued_at) {
    return absl::InvalidArgumentError("token expires before it is issued");
  }
  for (const auto& [name, value] : claims.strings) {
    if (name.empty() || IsRegisteredClaim(name) || claims.ints.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("claim name \"", name, "\" is empty, reserved or used twice"));
    }
  }
  for (const auto& [name, value] : claims.ints) {
    if (name.empty() || IsRegisteredClaim(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("claim name \"", name, "\" is empty or reserved"));
    }
  }

  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::ResourceExhaustedError("jwt_new");
  JwtPtr jwt(raw);

  absl::Status status = AddString(jwt.get(), "iss", std::string(kIssuer));
  if (status.ok()) status = AddString(jwt.get(), "aud", claims.audience);
  if (status.ok()) status = AddString(jwt.get(), "sub", claims.subject);
  for (const auto& [name, value] : claims.strings) {
    if (status.ok()) status = AddString(jwt.get(), name, value);
  }
  if (!status.ok()) return status;
  if (jwt_add_grant_int(jwt.get(), "iat",
                        absl::ToUnixSeconds(claims.issued_at)) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp",
                        absl::ToUnixSeconds(claims.expires_at)) != 0) {
    return absl::InternalError("cannot add token times");
  }
  for (const auto& [name, value] : claims.ints) {
    if (jwt_add_grant_int(jwt.get(), name.c_str(), value) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot add claim ", name));
    }
  }

  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                  reinterpret_cast<const unsigned char*>(key_.data()),
                  static_cast<int>(key_.size())) != 0) {
    return absl::InternalError("cannot set the token algorithm");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return absl::InternalError("cannot encode token");
  std::string token(encoded);
  free(encoded);
  return token;
}

absl::StatusOr<TokenCodec::Claims> TokenCodec::Verify(
    absl::string_view token, absl::string_view audience,
    absl::Time now) const {
  if (key_.size() < kMinKeyBytes) {
    return absl::FailedPreconditionError("token signing key is too short");
  }
  if (token.empty() || token.size() > kMaxTokenBytes ||
      token.find('\0') != absl::string_view::npos) {
    return Unauthenticated("malformed token");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return Unauthenticated("malformed token");
  }

  // Look at the header before libjwt does: libjwt picks the algorithm from
  // the header and accepts "none" without a signature, so only a token that
  // asks for HS256 may reach it.
  google::protobuf::Struct header;
  google::protobuf::Struct payload;
  if (!ParseJsonPart(parts[0], &header) || !ParseJsonPart(parts[1], &payload)) {
    return Unauthenticated("malformed token");
  }
  auto alg = header.fields().find("alg");
  if (alg == header.fields().end() ||
      alg->second.kind_case() != google::protobuf::Value::kStringValue ||
      alg->second.string_value() != "HS256" ||
      header.fields().count("crit") != 0) {
    return Unauthenticated("unsupported algorithm");
  }
  if (parts[2].empty()) return Unauthenticated("bad signature");

  jwt_t* raw = nullptr;
  std::string terminated(token);
  int rc = jwt_decode(&raw, terminated.c_str(),
                      reinterpret_cast<const unsigned char*>(key_.data()),
                      static_cast<int>(key_.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || jwt == nullptr) return Unauthenticated("bad signature");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return Unauthenticated("unsupported algorithm");
  }

  const char* iss = StringClaim(jwt.get(), "iss");
  if (iss == nullptr || iss != kIssuer) return Unauthenticated("wrong issuer");
  const char* aud = StringClaim(jwt.get(), "aud");
  if (aud == nullptr || aud != audience) {
    return Unauthenticated("wrong audience");
  }
  const char* sub = StringClaim(jwt.get(), "sub");
  std::optional<int64_t> iat = IntClaim(jwt.get(), payload, "iat");
  std::optional<int64_t> exp = IntClaim(jwt.get(), payload, "exp");
  if (sub == nullptr || *sub == '\0' || !iat.has_value() ||
      !exp.has_value()) {
    return Unauthenticated("malformed token");
  }

  Claims claims;
  claims.audience = aud;
  claims.subject = sub;
  claims.issued_at = absl::FromUnixSeconds(*iat);
  claims.expires_at = absl::FromUnixSeconds(*exp);
  if (claims.expires_at <= now) return Unauthenticated("token expired");
  if (claims.issued_at > now + kMaxClockSkew) {
    return Unauthenticated("token not yet valid");
  }

  // libjwt has no way to list claims; the payload was parsed above for that,
  // but the values come from libjwt's verified copy.
  for (const auto& [name, value] : payload.fields()) {
    if (IsRegisteredClaim(name)) continue;
    if (value.kind_case() == google::protobuf::Value::kStringValue) {
      const char* s = StringClaim(jwt.get(), name.c_str());
      if (s != nullptr) claims.strings[name] = s;
    } else if (value.kind_case() == google::protobuf::Value::kNumberValue) {
      std::optional<int64_t> n = IntClaim(jwt.get(), payload, name);
      if (n.has_value()) claims.ints[name] = *n;
    }
  }
  return claims;
}

absl::StatusOr<std::string> MintAccessToken(const TokenCodec& codec,
                                            const Principal& principal,
                                            absl::Time now) {
  if (principal.subject.empty()) {
    return absl::InvalidArgumentError("subject is empty");
  }
  if (principal.subject.size() > kMaxSubjectBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject is longer than ", kMaxSubjectBytes, " bytes"));
  }
  if (principal.expires_at <= now) {
    return absl::InvalidArgumentError("expiry is not in the future");
  }
  TokenCodec::Claims claims;
  claims.audience = std::string(kAccessAudience);
  claims.subject = principal.subject;
  claims.issued_at = now;
  claims.expires_at = principal.expires_at;
  claims.strings["role"] = std::string(RoleName(principal.role));
  return codec.Sign(claims);
}

// Verified access tokens by their text, in shards so that concurrent calls
// rarely share a lock. A full shard is emptied: simple, bounded, and the
// tokens in use come back on their next call.
class AccessTokenCache {
 public:
  std::optional<Principal> Find(absl::string_view token, absl::Time now) {
    Shard& shard = ShardOf(token);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.principals.find(token);
    if (it == shard.principals.end() || it->second.expires_at <= now) return std::nullopt;
    return it->second;
  }

  void Remember(absl::string_view token, const Principal& principal) {
    Shard& shard = ShardOf(token);
    absl::MutexLock lock(&shard.mu);
    if (shard.principals.size() >= kTokensPerShard) shard.principals.clear();
    shard.principals.emplace(token, principal);
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kTokensPerShard = 4096;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Principal> principals ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(absl::string_view token) {
    return shards_[absl::HashOf(token) % kShards];
  }
  std::array<Shard, kShards> shards_;
};

TokenCodec::TokenCodec(std::string key)
    : key_(std::move(key)), access_cache_(std::make_shared<AccessTokenCache>()) {}

absl::StatusOr<TokenCodec> LoadServiceTokens(const std::string& data_dir,
                                             const std::string& key_file) {
  const bool local = key_file.empty();
  absl::StatusOr<std::string> key =
      LoadOrCreateKey(local ? data_dir + "/token.key" : key_file, /*create_if_missing=*/local);
  if (!key.ok()) return key.status();
  return TokenCodec(*std::move(key));
}

absl::StatusOr<Principal> VerifyAccessToken(const TokenCodec& codec,
                                            absl::string_view token,
                                            absl::Time now) {
  if (std::optional<Principal> known = codec.access_cache_->Find(token, now)) {
    return *std::move(known);
  }
  absl::StatusOr<TokenCodec::Claims> claims =
      codec.Verify(token, kAccessAudience, now);
  if (!claims.ok()) return claims.status();
  auto role_claim = claims->strings.find("role");
  if (role_claim == claims->strings.end()) {
    return Unauthenticated("token has no role");
  }
  std::optional<Role> role = ParseRole(role_claim->second);
  if (!role.has_value()) return Unauthenticated("unknown role");
  if (claims->subject.size() > kMaxSubjectBytes) {
    return Unauthenticated("subject too long");
  }
  Principal principal{std::move(claims->subject), *role, claims->expires_at};
  codec.access_cache_->Remember(token, principal);
  return principal;
}

}  // namespace switchboard::auth
