#pragma once

#include <istream>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/client/tls.h"
#include "libs/config/flags.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/identity/v1/identity_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/cli/printer.h"

namespace switchboard::cli {

// What a command reads and writes: the terminal, or strings in tests.
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

// Flags every command takes. Each also reads SWITCHBOARD_CLI_<NAME>, then
// SWITCHBOARD_<NAME> (the variables the services read too, e.g.
// SWITCHBOARD_SESSIONS_ADDRESS, SWITCHBOARD_DATA_DIR).
struct CommonOptions {
  std::string sessions_address = "localhost:7101";
  std::string routing_address = "localhost:7102";
  std::string bot_address = "localhost:7103";
  std::string presence_address = "localhost:7104";
  std::string identity_address = "localhost:7105";
  std::string feedback_address = "localhost:7106";
  // Dialing over TLS or mTLS (--tls_ca_file, --tls_cert_file, ...);
  // plaintext when no CA file is given.
  client::ClientTlsOptions tls;
  std::string data_dir = "data";
  // The development issuer's private key; empty means
  // DATA_DIR/keys/development-issuer.pem.
  std::string key_file;
  // The subject tokens name; empty means the command group's default.
  std::string as;
  bool json = false;
  // Deadline of every unary call.
  absl::Duration deadline = absl::Seconds(10);
};
void AddCommonFlags(config::FlagSet& flags, CommonOptions* options);

// The bool flags of AddCommonFlags, for Split.
std::set<std::string> CommonBoolFlags();

// Stubs of the six services and the development issuer's key. Tokens are
// minted locally with that key (DATA_DIR/keys/development-issuer.pem), as
// tools/mint_token does: this is a development tool. In production access
// tokens come from the desk's login.
class Clients {
 public:
  // FailedPrecondition if the key cannot be read (with a hint to start
  // the platform first); InvalidArgument for wrong TLS flags or files.
  static absl::StatusOr<std::unique_ptr<Clients>> Create(const CommonOptions& options);

  // A one-hour access token for `subject` in `role`. InvalidArgument for an
  // empty or overlong subject.
  absl::StatusOr<std::string> Token(auth::Role role, const std::string& subject) const;
  // A context carrying `token` and the --deadline.
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) const;
  // A context carrying `token` and no deadline, for long-lived streams (they
  // end when the command ends, or after `limit` if finite).
  std::unique_ptr<grpc::ClientContext> StreamContext(
      const std::string& token, absl::Duration limit = absl::InfiniteDuration()) const;

  std::unique_ptr<sessions::v1::SessionsService::Stub> sessions;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing;
  std::unique_ptr<bot::v1::BotService::Stub> bot;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence;
  std::unique_ptr<identity::v1::IdentityService::Stub> identity;
  std::unique_ptr<feedback::v1::FeedbackService::Stub> feedback;

 private:
  Clients(auth::SigningKey key, absl::Duration deadline)
      : issuer_(std::move(key), std::string(auth::kDevelopmentIssuer)), deadline_(deadline) {}
  auth::TokenSigner issuer_;
  absl::Duration deadline_;
};

// grpc::Status as absl::Status (same codes, same message).
absl::Status FromGrpc(const grpc::Status& status);

// One command invocation: parses the common flags plus the command's own
// (already added to `flags`), checks the number of positional arguments,
// and connects. On failure returns the exit code (after printing), else
// leaves `clients` and `positional` filled and returns -1.
struct Command {
  Command(Io& io, std::string usage) : io(io), usage(std::move(usage)), flags("cli") {
    AddCommonFlags(flags, &common);
  }
  // `args` are those after the command name; `bool_flags` the command's
  // own bool flags. Returns -1 to go on, or an exit code.
  int Start(const std::vector<std::string>& args, const std::set<std::string>& bool_flags,
            size_t min_positional, size_t max_positional);
  // Prints a usage error and returns kExitUsage.
  int BadUsage(const absl::Status& status) { return printer->Usage(status, usage); }

  Io& io;
  std::string usage;
  config::FlagSet flags;
  CommonOptions common;
  std::vector<std::string> positional;
  std::unique_ptr<Printer> printer;
  std::unique_ptr<Clients> clients;
};

}  // namespace switchboard::cli
