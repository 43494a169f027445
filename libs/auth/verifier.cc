#include "libs/auth/verifier.h"

#include <array>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::auth {
namespace {

class FixedKeySource final : public KeySource {
 public:
  explicit FixedKeySource(KeySet keys) : keys_(std::make_shared<const KeySet>(std::move(keys))) {}
  std::shared_ptr<const KeySet> Keys() const override { return keys_; }

 private:
  const std::shared_ptr<const KeySet> keys_;
};

}  // namespace

std::shared_ptr<const KeySource> FixedKeys(KeySet keys) {
  return std::make_shared<FixedKeySource>(std::move(keys));
}

// Verified caller tokens by their text, in shards so that concurrent calls
// rarely share a lock. A full shard is emptied: simple, bounded, and the
// tokens in use come back on their next call.
class TokenVerifier::Cache {
 public:
  struct Entry {
    Principal principal;
    // The generation of the key set the token was checked against.
    uint64_t generation;
  };

  std::optional<Entry> Find(absl::string_view token) {
    Shard& shard = ShardOf(token);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.entries.find(token);
    if (it == shard.entries.end()) return std::nullopt;
    return it->second;
  }

  void Remember(absl::string_view token, Entry entry) {
    Shard& shard = ShardOf(token);
    absl::MutexLock lock(&shard.mu);
    if (shard.entries.size() >= kTokensPerShard) shard.entries.clear();
    shard.entries.insert_or_assign(token, std::move(entry));
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kTokensPerShard = 4096;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(absl::string_view token) { return shards_[absl::HashOf(token) % kShards]; }
  std::array<Shard, kShards> shards_;
};

TokenVerifier::TokenVerifier(KeySources keys, VerifierOptions options)
    : keys_(std::move(keys)), options_(std::move(options)), cache_(std::make_unique<Cache>()) {}

TokenVerifier::~TokenVerifier() = default;

absl::StatusOr<Principal> TokenVerifier::VerifyCaller(absl::string_view token,
                                                      absl::Time now) const {
  const std::shared_ptr<const KeySet> access = keys_.access->Keys();
  const std::shared_ptr<const KeySet> services = keys_.services->Keys();
  if (std::optional<Cache::Entry> known = cache_->Find(token)) {
    const uint64_t current = known->principal.role == Role::kService ? services->generation()
                                                                     : access->generation();
    if (known->generation == current && known->principal.expires_at > now) {
      return std::move(known->principal);
    }
  }

  absl::StatusOr<std::string> kid = TokenKeyId(token);
  if (!kid.ok()) return kid.status();
  const bool is_access = access->Find(*kid) != nullptr;
  const KeySet& keys = is_access ? *access : *services;
  TokenRules rules;
  if (is_access) {
    rules = {options_.access_issuer, std::string(kAccessAudience), options_.max_access_lifetime};
  } else {
    rules = {std::string(kServiceIssuer), options_.service, options_.max_service_lifetime};
  }
  std::string key_service;
  absl::StatusOr<Claims> claims = VerifyToken(token, keys, rules, now, &key_service);
  if (!claims.ok()) return claims.status();

  auto role_claim = claims->strings.find("role");
  std::optional<Role> role;
  if (role_claim != claims->strings.end()) role = ParseRole(role_claim->second);
  if (!role.has_value() || (*role == Role::kService) == is_access) {
    return absl::UnauthenticatedError("unknown role");
  }
  if (claims->subject.size() > kMaxSubjectBytes) {
    return absl::UnauthenticatedError("subject too long");
  }
  if (!is_access && key_service != claims->subject) {
    return absl::UnauthenticatedError("key belongs to another service");
  }
  Principal principal{std::move(claims->subject), *role, claims->expires_at};
  cache_->Remember(token, {principal, keys.generation()});
  return principal;
}

absl::StatusOr<Claims> TokenVerifier::VerifyVerification(absl::string_view token,
                                                         absl::Time now) const {
  const std::shared_ptr<const KeySet> keys = keys_.verification->Keys();
  return VerifyToken(token, *keys,
                     {std::string(kVerificationIssuer), std::string(kVerificationAudience),
                      options_.max_verification_lifetime},
                     now);
}

}  // namespace switchboard::auth
