#include "libs/server/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/tls/certificates.h"

namespace switchboard::server {

void AddServerTlsFlags(config::FlagSet& flags, ServerTlsOptions* options) {
  flags.Add("tls_cert_file", &options->cert_file,
            "PEM certificate chain of the gRPC port (own certificate first); with "
            "--tls_key_file: serve TLS. Empty: plaintext (loopback only, local runs)");
  flags.Add("tls_key_file", &options->key_file,
            "PEM private key of --tls_cert_file, unencrypted");
  flags.Add("tls_client_ca_file", &options->client_ca_file,
            "PEM bundle of CAs whose client certificates are accepted and verified (mTLS)");
  flags.Add("tls_require_client_cert", &options->require_client_cert,
            "refuse clients without a certificate signed by --tls_client_ca_file");
  flags.Add("tls_reload_interval", &options->reload_interval,
            "how often the TLS files are re-read, so renewed certificates apply "
            "without a restart");
}

absl::Status ValidateServerTls(const ServerTlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both to serve TLS, or neither");
  }
  if (!options.client_ca_file.empty() && !options.enabled()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs --tls_cert_file and --tls_key_file (client certificates "
        "are only asked for over TLS)");
  }
  if (options.require_client_cert && options.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_require_client_cert needs --tls_client_ca_file (the CAs that sign client "
        "certificates)");
  }
  if (options.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls_reload_interval must be at least 1s");
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<tls::CertificateInfo> CheckFiles(const ServerTlsOptions& options,
                                                absl::Time now) {
  if (absl::Status s = ValidateServerTls(options); !s.ok()) return s;
  absl::StatusOr<tls::CertificateInfo> info = tls::CheckKeyPair(
      options.cert_file, "--tls_cert_file", options.key_file, "--tls_key_file", now);
  if (!info.ok()) return info.status();
  if (!options.client_ca_file.empty()) {
    if (absl::StatusOr<int> cas = tls::CheckCaBundle(options.client_ca_file,
                                                     "--tls_client_ca_file");
        !cas.ok()) {
      return cas.status();
    }
  }
  return info;
}

}  // namespace

absl::Status CheckServerTlsFiles(const ServerTlsOptions& options, absl::Time now) {
  if (!options.enabled()) return ValidateServerTls(options);
  return CheckFiles(options, now).status();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options, absl::string_view service_name) {
  if (absl::Status s = ValidateServerTls(options); !s.ok()) return s;
  if (!options.enabled()) return grpc::InsecureServerCredentials();
  const absl::Time now = absl::Now();
  absl::StatusOr<tls::CertificateInfo> info = CheckFiles(options, now);
  if (!info.ok()) return info.status();

  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.key_file, options.cert_file, options.client_ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(options.reload_interval)));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!options.client_ca_file.empty()) tls.watch_root_certs();
  tls.set_cert_request_type(
      options.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
      : !options.client_ca_file.empty() ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                        : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(tls);
  if (credentials == nullptr) {
    return absl::InvalidArgumentError(
        "gRPC refused the TLS settings of --tls_cert_file, --tls_key_file and "
        "--tls_client_ca_file");
  }
  log::Info("tls_certificate", {{"service", service_name},
                                {"subject", info->subject},
                                {"not_after", absl::FormatTime(info->not_after)},
                                {"days_left", absl::ToInt64Hours(info->not_after - now) / 24},
                                {"chain_length", info->chain_length},
                                {"transport", TransportName(options)}});
  return credentials;
}

absl::string_view TransportName(const ServerTlsOptions& options) {
  if (!options.enabled()) return "plaintext";
  if (options.require_client_cert) return "mtls";
  if (!options.client_ca_file.empty()) return "tls_client_cert_optional";
  return "tls";
}

bool IsLoopbackAddress(absl::string_view bind_address) {
  absl::string_view address = bind_address;
  if (absl::ConsumePrefix(&address, "[") && !absl::ConsumeSuffix(&address, "]")) return false;
  if (absl::EqualsIgnoreCase(address, "localhost")) return true;
  const std::string text(address);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace switchboard::server
