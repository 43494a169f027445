#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"

namespace switchboard::server {

// How a server's gRPC port is secured. All empty (the default): plaintext,
// for local runs on loopback. With a certificate and key: TLS. With a
// client CA too: clients' certificates are verified (mTLS), and with
// require_client_cert a client without one is refused at the handshake.
//
// The files are re-read every reload_interval, so a renewed certificate
// (cert-manager, Vault, tools/dev_certs.sh) is served without a restart.
// Replace each file by renaming a complete new one over it, the key and
// its certificate within one interval.
struct ServerTlsOptions {
  // PEM certificate chain, the server's own certificate first.
  std::string cert_file;
  // PEM private key of that certificate, unencrypted.
  std::string key_file;
  // PEM bundle of the CAs whose client certificates are accepted.
  std::string client_ca_file;
  // Refuse clients that present no certificate signed by client_ca_file.
  bool require_client_cert = false;
  // How often the files are checked for a renewed certificate.
  absl::Duration reload_interval = absl::Minutes(1);

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// Registers --tls_cert_file, --tls_key_file, --tls_client_ca_file,
// --tls_require_client_cert and --tls_reload_interval with `options`'
// current values as defaults.
void AddServerTlsFlags(config::FlagSet& flags, ServerTlsOptions* options);

// Checks that the options go together (a key with its certificate, a
// client CA only with TLS, require_client_cert only with a client CA, a
// reload interval of at least 1 s), without reading files.
// INVALID_ARGUMENT names the flag at fault.
absl::Status ValidateServerTls(const ServerTlsOptions& options);

// ValidateServerTls, then reads the files and checks them as a handshake
// would need them (tls::CheckKeyPair, tls::CheckCaBundle at `now`).
absl::Status CheckServerTlsFiles(const ServerTlsOptions& options, absl::Time now);

// The credentials to listen with: insecure when TLS is off, else TLS from
// the files (checked first, as CheckServerTlsFiles), watched for renewal.
// Logs the certificate's subject and expiry once ("tls_certificate", with
// `service_name`).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options, absl::string_view service_name);

// "plaintext", "tls" (no client certificates asked), "tls_client_cert_optional"
// (verified when presented) or "mtls" (required): the start-up log's
// "transport".
absl::string_view TransportName(const ServerTlsOptions& options);

// True for bind addresses only this machine can reach: 127.0.0.0/8, ::1
// (bracketed or not, or IPv4-mapped) and "localhost". False for the
// wildcard addresses (0.0.0.0, ::) and every other address or name.
bool IsLoopbackAddress(absl::string_view bind_address);

}  // namespace switchboard::server
