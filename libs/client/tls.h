#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"

namespace switchboard::client {

// How a process dials gRPC servers. No CA file (the default): plaintext.
// With a CA file: TLS, the server's certificate verified against it and
// its name against the address dialed (or server_name). With a client
// certificate and key too: mTLS. The files are re-read every
// reload_interval, so renewed certificates apply without a restart.
struct ClientTlsOptions {
  // PEM bundle of the CAs that sign the servers' certificates.
  std::string ca_file;
  // PEM certificate chain and unencrypted private key this process
  // presents to servers that ask for one (mTLS).
  std::string cert_file;
  std::string key_file;
  // The name to check in servers' certificates instead of the dialed host
  // (e.g. dialing an IP address whose certificate names a DNS name).
  std::string server_name;
  absl::Duration reload_interval = absl::Minutes(1);
};

// Registers <prefix>tls_ca_file, <prefix>tls_cert_file, <prefix>tls_key_file,
// <prefix>tls_server_name and <prefix>tls_reload_interval. Services use the
// prefix "peer_" (their --tls_* flags are their own port's); tools use "".
void AddClientTlsFlags(config::FlagSet& flags, ClientTlsOptions* options,
                       absl::string_view prefix);

// Channel credentials made once per process and shared by its channels
// (copies share them, and their one file watcher). Thread-safe.
//
//   absl::StatusOr<client::ChannelSecurity> peers =
//       client::ChannelSecurity::Create(config.peer_tls, "peer_");
//   if (!peers.ok()) { ... }  // INVALID_ARGUMENT naming the flag
//   auto channel = client::PeerChannel("routing:7102", *peers);
class ChannelSecurity {
 public:
  // Plaintext.
  ChannelSecurity();

  // TLS as `options` say, plaintext if options.ca_file is empty. Checks the
  // files first (tls::CheckCaBundle, tls::CheckKeyPair at `now`), so a wrong
  // file fails here rather than at every call. INVALID_ARGUMENT names the
  // flag (with `flag_prefix`): a certificate without its key, a client
  // certificate or server name without a CA file, unreadable or mismatched
  // files, a reload interval under 1 s.
  static absl::StatusOr<ChannelSecurity> Create(const ClientTlsOptions& options,
                                                absl::string_view flag_prefix,
                                                absl::Time now = absl::Now());

  bool tls() const { return tls_; }
  // "plaintext", "tls" or "mtls", for logs.
  absl::string_view name() const;

  // A channel to `address` ("host:port") with these credentials and `args`.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                         grpc::ChannelArguments args = {}) const;

 private:
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string server_name_;
  bool tls_ = false;
  bool client_cert_ = false;
};

}  // namespace switchboard::client
