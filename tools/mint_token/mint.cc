#include "tools/mint_token/mint.h"

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/token.h"

namespace switchboard::mint_token {
namespace {

constexpr absl::string_view kUsageHint =
    "usage: mint_token --key_file=PATH --subject=ID "
    "--role=customer|agent|supervisor|service [--ttl=12h] [--create_key]";

int BadFlags(std::ostream& err, absl::string_view message) {
  err << "mint_token: " << message << "\n" << kUsageHint << "\n";
  return kExitBadFlags;
}

}  // namespace

int Run(int argc, const char* const* argv, absl::Time now, std::ostream& out,
        std::ostream& err, config::FlagSet::Environment environment) {
  std::string key_file;
  std::string subject;
  std::string role_name;
  absl::Duration ttl = absl::Hours(12);
  bool create_key = false;

  config::FlagSet flags("mint_token", std::move(environment));
  flags.Add("key_file", &key_file,
            "file holding the hex token signing key the services use");
  flags.Add("subject", &subject, "who the token names (customer or agent id)");
  flags.Add("role", &role_name, "customer, agent, supervisor or service");
  flags.Add("ttl", &ttl, "how long the token is valid, e.g. 30m, 12h");
  flags.Add("create_key", &create_key,
            "create a new random key at --key_file if there is none");
  absl::Status parsed = flags.Parse(argc, argv);
  if (absl::IsCancelled(parsed)) return kExitOk;  // --help printed the usage
  if (!parsed.ok()) return BadFlags(err, parsed.message());

  if (key_file.empty()) return BadFlags(err, "--key_file is required");
  if (subject.empty()) return BadFlags(err, "--subject is required");
  if (subject.size() > auth::kMaxSubjectBytes) {
    return BadFlags(err, absl::StrCat("--subject is longer than ",
                                      auth::kMaxSubjectBytes, " bytes"));
  }
  if (role_name.empty()) return BadFlags(err, "--role is required");
  std::optional<auth::Role> role = auth::ParseRole(role_name);
  if (!role.has_value()) {
    return BadFlags(err, absl::StrCat("unknown --role \"", role_name,
                                      "\"; use customer, agent, supervisor "
                                      "or service"));
  }
  if (ttl <= absl::ZeroDuration() || ttl == absl::InfiniteDuration()) {
    return BadFlags(err, "--ttl must be a positive, finite duration");
  }

  absl::StatusOr<std::string> key = auth::LoadOrCreateKey(key_file, create_key);
  if (!key.ok()) {
    err << "mint_token: " << key.status().message();
    if (absl::IsNotFound(key.status()) && !create_key) {
      err << " (pass --create_key to make one)";
    }
    err << "\n";
    return kExitFailure;
  }
  auth::TokenCodec codec(*std::move(key));
  absl::StatusOr<std::string> token = auth::MintAccessToken(
      codec, auth::Principal{subject, *role, now + ttl}, now);
  if (!token.ok()) {
    // Flags were checked above; what is left is the subject's encoding.
    return BadFlags(err, token.status().message());
  }
  out << *token << "\n";
  return kExitOk;
}

}  // namespace switchboard::mint_token
