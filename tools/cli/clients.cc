#include "tools/cli/clients.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/key_folder.h"
#include "tools/cli/command_line.h"

namespace switchboard::cli {

void AddCommonFlags(config::FlagSet& flags, CommonOptions* options) {
  flags.Add("sessions_address", &options->sessions_address, "sessions service, host:port");
  flags.Add("routing_address", &options->routing_address, "routing service, host:port");
  flags.Add("bot_address", &options->bot_address, "bot service, host:port");
  flags.Add("presence_address", &options->presence_address, "presence service, host:port");
  flags.Add("identity_address", &options->identity_address, "identity service, host:port");
  flags.Add("feedback_address", &options->feedback_address, "feedback service, host:port");
  client::AddClientTlsFlags(flags, &options->tls, "");
  flags.Add("data_dir", &options->data_dir,
            "the platform's data folder (its development keys are in DATA_DIR/keys)");
  flags.Add("key_file", &options->key_file,
            "the development issuer's private key; empty means "
            "DATA_DIR/keys/development-issuer.pem");
  flags.Add("as", &options->as, "the subject (customer, agent or supervisor id) to act as");
  flags.Add("json", &options->json, "print one JSON object per line instead of text");
  flags.Add("deadline", &options->deadline, "deadline of each call");
}

std::set<std::string> CommonBoolFlags() { return {"json"}; }

absl::StatusOr<std::unique_ptr<Clients>> Clients::Create(const CommonOptions& options) {
  const std::string key_file =
      options.key_file.empty()
          ? absl::StrCat(options.data_dir, "/keys/", auth::kIssuerKeyFile)
          : options.key_file;
  absl::StatusOr<auth::SigningKey> key = auth::ReadSigningKeyFile(key_file);
  if (!key.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the token key: ", key.status().message(),
        " (start the platform with `bash tools/run.sh`, or pass --data_dir or --key_file)"));
  }
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--deadline must be positive");
  }
  absl::StatusOr<client::ChannelSecurity> security =
      client::ChannelSecurity::Create(options.tls, "");
  if (!security.ok()) return security.status();
  std::unique_ptr<Clients> clients(new Clients(*std::move(key), options.deadline));
  const auto channel = [&security](const std::string& address) {
    return security->Channel(address);
  };
  clients->sessions = sessions::v1::SessionsService::NewStub(channel(options.sessions_address));
  clients->routing = routing::v1::RoutingService::NewStub(channel(options.routing_address));
  clients->bot = bot::v1::BotService::NewStub(channel(options.bot_address));
  clients->presence = presence::v1::PresenceService::NewStub(channel(options.presence_address));
  clients->identity = identity::v1::IdentityService::NewStub(channel(options.identity_address));
  clients->feedback = feedback::v1::FeedbackService::NewStub(channel(options.feedback_address));
  return clients;
}

absl::StatusOr<std::string> Clients::Token(auth::Role role, const std::string& subject) const {
  const absl::Time now = absl::Now();
  absl::StatusOr<std::string> token =
      auth::MintAccessToken(issuer_, {subject, role, now + absl::Hours(1)}, now);
  if (!token.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--as: ", token.status().message()));
  }
  return token;
}

std::unique_ptr<grpc::ClientContext> Clients::Context(const std::string& token) const {
  auto context = std::make_unique<grpc::ClientContext>();
  auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  return context;
}

std::unique_ptr<grpc::ClientContext> Clients::StreamContext(const std::string& token,
                                                            absl::Duration limit) const {
  auto context = std::make_unique<grpc::ClientContext>();
  auth::AttachToken(*context, token);
  if (limit != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + limit));
  }
  return context;
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

int Command::Start(const std::vector<std::string>& args, const std::set<std::string>& bool_flags,
                   size_t min_positional, size_t max_positional) {
  std::set<std::string> bools = CommonBoolFlags();
  bools.insert(bool_flags.begin(), bool_flags.end());
  SplitArgs split = Split(args, bools);
  std::vector<const char*> argv;
  for (const std::string& flag : split.flags) argv.push_back(flag.c_str());
  // The printer is needed for errors before --json is known; text mode.
  printer = std::make_unique<Printer>(io.out, io.err, false);
  absl::Status parsed = flags.Parse(static_cast<int>(argv.size()), argv.data());
  if (absl::IsCancelled(parsed)) return kExitOk;  // --help printed the flags
  if (!parsed.ok()) return BadUsage(parsed);
  printer = std::make_unique<Printer>(io.out, io.err, common.json);
  positional = std::move(split.positional);
  if (positional.size() < min_positional || positional.size() > max_positional) {
    return BadUsage(absl::InvalidArgumentError(
        positional.size() < min_positional
            ? "missing argument"
            : absl::StrCat("unexpected argument \"", positional[max_positional], "\"")));
  }
  absl::StatusOr<std::unique_ptr<Clients>> created = Clients::Create(common);
  if (!created.ok()) return printer->Fail(created.status());
  clients = *std::move(created);
  return -1;
}

}  // namespace switchboard::cli
