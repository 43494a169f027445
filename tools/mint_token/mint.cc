#include "tools/mint_token/mint.h"

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/token.h"

namespace switchboard::mint_token {
namespace {

constexpr absl::string_view kUsageHint =
    "usage: mint_token --subject=ID --role=customer|agent|supervisor [--ttl=12h] "
    "[--keys_dir=DIR|--key_file=PEM]\n"
    "       mint_token --role=service --subject=SERVICE --audience=SERVICE [--ttl=10m]\n"
    "       mint_token --generate_keys=DIR";

// What a token may be valid for unless --ttl says otherwise: a working day
// for people, a few minutes for services (verifiers refuse service tokens
// valid longer than 15 minutes by default).
constexpr absl::Duration kAccessTtl = absl::Hours(12);
constexpr absl::Duration kServiceTtl = absl::Minutes(10);

int BadFlags(std::ostream& err, absl::string_view message) {
  err << "mint_token: " << message << "\n" << kUsageHint << "\n";
  return kExitBadFlags;
}

int Failure(std::ostream& err, const absl::Status& status) {
  err << "mint_token: " << status.message() << "\n";
  return kExitFailure;
}

}  // namespace

int Run(int argc, const char* const* argv, absl::Time now, std::ostream& out,
        std::ostream& err, config::FlagSet::Environment environment) {
  std::string data_dir = "data";
  std::string keys_dir;
  std::string key_file;
  std::string subject;
  std::string role_name;
  std::string audience;
  std::string issuer = std::string(auth::kDevelopmentIssuer);
  std::string generate_keys;
  absl::Duration ttl = absl::ZeroDuration();

  config::FlagSet flags("mint_token", std::move(environment));
  flags.Add("data_dir", &data_dir, "the platform's data folder; keys are in DATA_DIR/keys");
  flags.Add("keys_dir", &keys_dir, "the key folder; default DATA_DIR/keys");
  flags.Add("key_file", &key_file,
            "the private key to sign with (PEM); default KEYS_DIR/development-issuer.pem, or "
            "KEYS_DIR/SUBJECT.pem for --role=service");
  flags.Add("subject", &subject, "who the token names: a customer, agent or supervisor id, or "
                                 "the calling service");
  flags.Add("role", &role_name, "customer, agent, supervisor or service");
  flags.Add("audience", &audience, "the service called, for --role=service (e.g. sessions)");
  flags.Add("issuer", &issuer, "the iss of access tokens (the services' --access_issuer)");
  flags.Add("ttl", &ttl, "how long the token is valid, e.g. 30m; default 12h, 10m for services");
  flags.Add("generate_keys", &generate_keys,
            "write a new development key folder here (all the platform's key pairs) and exit");
  absl::Status parsed = flags.Parse(argc, argv);
  if (absl::IsCancelled(parsed)) return kExitOk;  // --help printed the usage
  if (!parsed.ok()) return BadFlags(err, parsed.message());

  if (!generate_keys.empty()) {
    if (!subject.empty() || !role_name.empty()) {
      return BadFlags(err, "--generate_keys takes no --subject or --role");
    }
    absl::StatusOr<auth::KeyFolder> keys = auth::KeyFolder::Generate();
    if (!keys.ok()) return Failure(err, keys.status());
    if (absl::Status s = auth::WriteKeyFolder(*keys, generate_keys); !s.ok()) {
      if (absl::IsAlreadyExists(s)) {
        return Failure(err, absl::AlreadyExistsError(absl::StrCat(
                                generate_keys, " exists; keys are never replaced")));
      }
      return Failure(err, s);
    }
    out << generate_keys << "\n";
    return kExitOk;
  }

  if (subject.empty()) return BadFlags(err, "--subject is required");
  if (subject.size() > auth::kMaxSubjectBytes) {
    return BadFlags(err, absl::StrCat("--subject is longer than ", auth::kMaxSubjectBytes,
                                      " bytes"));
  }
  if (role_name.empty()) return BadFlags(err, "--role is required");
  std::optional<auth::Role> role = auth::ParseRole(role_name);
  if (!role.has_value()) {
    return BadFlags(err, absl::StrCat("unknown --role \"", role_name,
                                      "\"; use customer, agent, supervisor or service"));
  }
  const bool service = *role == auth::Role::kService;
  if (service && audience.empty()) {
    return BadFlags(err, "--role=service needs --audience (the service called)");
  }
  if (!service && !audience.empty()) {
    return BadFlags(err, "--audience is for --role=service only");
  }
  if (ttl == absl::ZeroDuration()) ttl = service ? kServiceTtl : kAccessTtl;
  if (ttl <= absl::ZeroDuration() || ttl == absl::InfiniteDuration()) {
    return BadFlags(err, "--ttl must be a positive, finite duration");
  }
  if (issuer.empty()) return BadFlags(err, "--issuer must not be empty");

  if (keys_dir.empty()) keys_dir = data_dir + "/keys";
  if (key_file.empty()) {
    key_file = absl::StrCat(keys_dir, "/",
                            service ? auth::ServiceKeyFile(subject) : auth::kIssuerKeyFile);
  }
  absl::StatusOr<auth::SigningKey> key = auth::ReadSigningKeyFile(key_file);
  if (!key.ok()) {
    err << "mint_token: " << key.status().message();
    if (absl::IsNotFound(key.status())) {
      err << " (start the platform with tools/run.sh, or make keys with --generate_keys)";
    }
    err << "\n";
    return kExitFailure;
  }
  absl::StatusOr<std::string> token;
  if (service) {
    const auth::TokenSigner signer(*std::move(key), std::string(auth::kServiceIssuer));
    token = auth::MintServiceToken(signer, subject, audience, now, ttl);
  } else {
    const auth::TokenSigner signer(*std::move(key), issuer);
    token = auth::MintAccessToken(signer, auth::Principal{subject, *role, now + ttl}, now);
  }
  if (!token.ok()) {
    // Flags were checked above; what is left is the text's encoding.
    return BadFlags(err, token.status().message());
  }
  out << *token << "\n";
  return kExitOk;
}

}  // namespace switchboard::mint_token
