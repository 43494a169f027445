#include "libs/auth/token.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "libs/auth/json.h"

namespace switchboard::auth {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Integers beyond 2^53 do not survive a JSON parser that reads numbers as
// doubles (protobuf's does), so they are neither made nor accepted.
constexpr int64_t kMaxJsonInteger = int64_t{1} << 53;

bool IsRegisteredClaim(absl::string_view name) {
  return name == "iss" || name == "sub" || name == "aud" || name == "exp" || name == "nbf" ||
         name == "iat" || name == "jti";
}

absl::Status Unauthenticated(absl::string_view reason) {
  return absl::UnauthenticatedError(reason);
}

// The three parts of a compact JWS whose header passed the checks.
struct Parts {
  absl::string_view header;
  absl::string_view payload;
  absl::string_view signature;
  std::string kid;
};

// Decodes one base64url part into a JSON object.
bool ParseJsonPart(absl::string_view part, Struct* out) {
  std::string json;
  if (!Base64UrlDecode(part, &json)) return false;
  return google::protobuf::util::JsonStringToMessage(json, out).ok();
}

const std::string* StringField(const Struct& object, const std::string& name) {
  auto it = object.fields().find(name);
  if (it == object.fields().end() || it->second.kind_case() != Value::kStringValue) {
    return nullptr;
  }
  return &it->second.string_value();
}

// An integer claim: a JSON number with no fraction within +-2^53.
std::optional<int64_t> IntegerValue(const Value& value) {
  if (value.kind_case() != Value::kNumberValue) return std::nullopt;
  const double number = value.number_value();
  if (!std::isfinite(number) || std::trunc(number) != number ||
      std::fabs(number) > static_cast<double>(kMaxJsonInteger)) {
    return std::nullopt;
  }
  return static_cast<int64_t>(number);
}

std::optional<int64_t> IntegerField(const Struct& object, const std::string& name) {
  auto it = object.fields().find(name);
  if (it == object.fields().end()) return std::nullopt;
  return IntegerValue(it->second);
}

absl::StatusOr<Parts> SplitAndCheckHeader(absl::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return Unauthenticated("malformed token");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return Unauthenticated("malformed token");
  }
  Struct header;
  if (!ParseJsonPart(parts[0], &header)) return Unauthenticated("malformed token");
  const std::string* alg = StringField(header, "alg");
  if (alg == nullptr || *alg != "ES256" || header.fields().contains("crit")) {
    return Unauthenticated("unsupported algorithm");
  }
  const std::string* kid = StringField(header, "kid");
  if (kid == nullptr || kid->empty()) return Unauthenticated("unknown key");
  return Parts{parts[0], parts[1], parts[2], *kid};
}

// Appends `"name":` to a JSON object under construction.
bool AppendName(absl::string_view name, std::string* json) {
  if (json->size() > 1) json->push_back(',');
  if (!AppendJsonString(name, json)) return false;
  json->push_back(':');
  return true;
}

}  // namespace

absl::StatusOr<std::string> TokenSigner::Sign(const Claims& claims) const {
  if (claims.audience.empty()) return absl::InvalidArgumentError("token audience is empty");
  if (claims.subject.empty()) return absl::InvalidArgumentError("token subject is empty");
  if (claims.expires_at <= claims.issued_at) {
    return absl::InvalidArgumentError("token expires before it is issued");
  }
  const int64_t iat = absl::ToUnixSeconds(claims.issued_at);
  const int64_t exp = absl::ToUnixSeconds(claims.expires_at);
  if (std::llabs(iat) > kMaxJsonInteger || std::llabs(exp) > kMaxJsonInteger) {
    return absl::InvalidArgumentError("token times are out of range");
  }
  std::vector<std::string> names;
  for (const auto& [name, value] : claims.strings) names.push_back(name);
  for (const auto& [name, value] : claims.ints) {
    if (claims.strings.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("claim \"", name, "\" is used twice"));
    }
    if (value > kMaxJsonInteger || value < -kMaxJsonInteger) {
      return absl::InvalidArgumentError(absl::StrCat("claim \"", name, "\" is out of range"));
    }
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());

  std::string payload = "{";
  bool valid = AppendName("iss", &payload) && AppendJsonString(issuer_, &payload) &&
               AppendName("sub", &payload) && AppendJsonString(claims.subject, &payload) &&
               AppendName("aud", &payload) && AppendJsonString(claims.audience, &payload);
  if (!valid) return absl::InvalidArgumentError("issuer, subject or audience is not UTF-8");
  AppendName("iat", &payload);
  absl::StrAppend(&payload, iat);
  AppendName("exp", &payload);
  absl::StrAppend(&payload, exp);
  for (const std::string& name : names) {
    if (name.empty() || IsRegisteredClaim(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("claim name \"", name, "\" is empty or registered"));
    }
    if (!AppendName(name, &payload)) {
      return absl::InvalidArgumentError("a claim name is not valid UTF-8");
    }
    if (auto s = claims.strings.find(name); s != claims.strings.end()) {
      if (!AppendJsonString(s->second, &payload)) {
        return absl::InvalidArgumentError(absl::StrCat("claim ", name, " is not valid UTF-8"));
      }
    } else {
      absl::StrAppend(&payload, claims.ints.at(name));
    }
  }
  payload.push_back('}');

  std::string header = R"({"alg":"ES256","typ":"JWT","kid":)";
  AppendJsonString(key_.kid(), &header);  // a thumbprint: base64url
  header.push_back('}');
  std::string token = absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(payload));
  absl::StatusOr<std::string> signature = key_.Sign(token);
  if (!signature.ok()) return signature.status();
  absl::StrAppend(&token, ".", Base64UrlEncode(*signature));
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token would be longer than ", kMaxTokenBytes, " bytes"));
  }
  return token;
}

absl::StatusOr<std::string> TokenKeyId(absl::string_view token) {
  absl::StatusOr<Parts> parts = SplitAndCheckHeader(token);
  if (!parts.ok()) return parts.status();
  return std::move(parts->kid);
}

absl::StatusOr<Claims> VerifyToken(absl::string_view token, const KeySet& keys,
                                   const TokenRules& rules, absl::Time now,
                                   std::string* key_service) {
  absl::StatusOr<Parts> parts = SplitAndCheckHeader(token);
  if (!parts.ok()) return parts.status();
  const KeySet::Key* key = keys.Find(parts->kid);
  if (key == nullptr) return Unauthenticated("unknown key");
  std::string signature;
  if (!Base64UrlDecode(parts->signature, &signature)) return Unauthenticated("bad signature");
  const absl::string_view signed_part =
      token.substr(0, parts->header.size() + 1 + parts->payload.size());
  if (!key->key.Verify(signed_part, signature)) return Unauthenticated("bad signature");

  Struct payload;
  if (!ParseJsonPart(parts->payload, &payload)) return Unauthenticated("malformed token");
  const std::string* iss = StringField(payload, "iss");
  if (iss == nullptr || *iss != rules.issuer) return Unauthenticated("wrong issuer");
  bool audience_ok = false;
  if (auto aud = payload.fields().find("aud"); aud != payload.fields().end()) {
    if (aud->second.kind_case() == Value::kStringValue) {
      audience_ok = aud->second.string_value() == rules.audience;
    } else if (aud->second.kind_case() == Value::kListValue) {
      for (const Value& one : aud->second.list_value().values()) {
        audience_ok = audience_ok || (one.kind_case() == Value::kStringValue &&
                                      one.string_value() == rules.audience);
      }
    }
  }
  if (!audience_ok) return Unauthenticated("wrong audience");
  const std::string* sub = StringField(payload, "sub");
  std::optional<int64_t> iat = IntegerField(payload, "iat");
  std::optional<int64_t> exp = IntegerField(payload, "exp");
  std::optional<int64_t> nbf = IntegerField(payload, "nbf");
  if (sub == nullptr || sub->empty() || !iat.has_value() || !exp.has_value() ||
      (payload.fields().contains("nbf") && !nbf.has_value())) {
    return Unauthenticated("malformed token");
  }

  Claims claims;
  claims.audience = rules.audience;
  claims.subject = *sub;
  claims.issued_at = absl::FromUnixSeconds(*iat);
  claims.expires_at = absl::FromUnixSeconds(*exp);
  if (claims.expires_at <= now) return Unauthenticated("token expired");
  if (claims.issued_at > now + kMaxClockSkew ||
      (nbf.has_value() && absl::FromUnixSeconds(*nbf) > now + kMaxClockSkew)) {
    return Unauthenticated("token not yet valid");
  }
  if (claims.expires_at - claims.issued_at > rules.max_lifetime) {
    return Unauthenticated("token lifetime too long");
  }
  for (const auto& [name, value] : payload.fields()) {
    if (IsRegisteredClaim(name)) continue;
    if (value.kind_case() == Value::kStringValue) {
      claims.strings[name] = value.string_value();
    } else if (std::optional<int64_t> n = IntegerValue(value)) {
      claims.ints[name] = *n;
    }
  }
  if (key_service != nullptr) *key_service = key->service;
  return claims;
}

absl::StatusOr<std::string> MintAccessToken(const TokenSigner& issuer, const Principal& principal,
                                            absl::Time now) {
  if (principal.role == Role::kService) {
    return absl::InvalidArgumentError(
        "role service: services call with service tokens (MintServiceToken)");
  }
  if (principal.subject.empty()) return absl::InvalidArgumentError("subject is empty");
  if (principal.subject.size() > kMaxSubjectBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject is longer than ", kMaxSubjectBytes, " bytes"));
  }
  if (principal.expires_at <= now) {
    return absl::InvalidArgumentError("expiry is not in the future");
  }
  Claims claims;
  claims.audience = std::string(kAccessAudience);
  claims.subject = principal.subject;
  claims.issued_at = now;
  claims.expires_at = principal.expires_at;
  claims.strings["role"] = std::string(RoleName(principal.role));
  return issuer.Sign(claims);
}

absl::StatusOr<std::string> MintServiceToken(const TokenSigner& signer, absl::string_view caller,
                                             absl::string_view callee, absl::Time now,
                                             absl::Duration lifetime) {
  if (caller.empty() || callee.empty()) {
    return absl::InvalidArgumentError("service token: caller and callee must be named");
  }
  if (lifetime <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("service token: lifetime must be positive");
  }
  Claims claims;
  claims.audience = std::string(callee);
  claims.subject = std::string(caller);
  claims.issued_at = now;
  claims.expires_at = now + lifetime;
  claims.strings["role"] = std::string(RoleName(Role::kService));
  return signer.Sign(claims);
}

}  // namespace switchboard::auth
