#include "libs/client/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"
#include "libs/tls/certificates.h"

namespace switchboard::client {

void AddClientTlsFlags(config::FlagSet& flags, ClientTlsOptions* options,
                       absl::string_view prefix) {
  const auto name = [prefix](absl::string_view flag) { return absl::StrCat(prefix, flag); };
  flags.Add(name("tls_ca_file"), &options->ca_file,
            "PEM bundle of CAs that sign the servers' certificates; set: dial with TLS. "
            "Empty: plaintext");
  flags.Add(name("tls_cert_file"), &options->cert_file,
            "PEM client certificate chain to present to servers that ask (mTLS)");
  flags.Add(name("tls_key_file"), &options->key_file,
            "PEM private key of the client certificate, unencrypted");
  flags.Add(name("tls_server_name"), &options->server_name,
            "name to check in servers' certificates instead of the host dialed");
  flags.Add(name("tls_reload_interval"), &options->reload_interval,
            "how often the TLS files are re-read, so renewed certificates apply "
            "without a restart");
}

ChannelSecurity::ChannelSecurity() : credentials_(grpc::InsecureChannelCredentials()) {}

absl::StatusOr<ChannelSecurity> ChannelSecurity::Create(const ClientTlsOptions& options,
                                                        absl::string_view flag_prefix,
                                                        absl::Time now) {
  const auto flag = [flag_prefix](absl::string_view name) {
    return absl::StrCat("--", flag_prefix, name);
  };
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag("tls_cert_file"), " and ",
                                                   flag("tls_key_file"),
                                                   " go together: give both, or neither"));
  }
  if (options.ca_file.empty()) {
    if (!options.cert_file.empty() || !options.server_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag(options.cert_file.empty() ? "tls_server_name" : "tls_cert_file"), " needs ",
          flag("tls_ca_file"), " (TLS is on when a CA file is given)"));
    }
    return ChannelSecurity();
  }
  if (options.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag("tls_reload_interval"), " must be at least 1s"));
  }
  if (absl::StatusOr<int> cas = tls::CheckCaBundle(options.ca_file, flag("tls_ca_file"));
      !cas.ok()) {
    return cas.status();
  }
  const bool client_cert = !options.cert_file.empty();
  if (client_cert) {
    if (auto info = tls::CheckKeyPair(options.cert_file, flag("tls_cert_file"),
                                      options.key_file, flag("tls_key_file"), now);
        !info.ok()) {
      return info.status();
    }
  }
  const auto interval =
      static_cast<unsigned int>(absl::ToInt64Seconds(options.reload_interval));
  auto provider =
      client_cert ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                        options.key_file, options.cert_file, options.ca_file, interval)
                  : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                        options.ca_file, interval);
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(provider);
  tls.watch_root_certs();
  if (client_cert) tls.watch_identity_key_cert_pairs();
  ChannelSecurity security;
  security.credentials_ = grpc::experimental::TlsCredentials(tls);
  if (security.credentials_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("gRPC refused the TLS settings of ", flag("tls_ca_file"), ", ",
                     flag("tls_cert_file"), " and ", flag("tls_key_file")));
  }
  security.server_name_ = options.server_name;
  security.tls_ = true;
  security.client_cert_ = client_cert;
  return security;
}

absl::string_view ChannelSecurity::name() const {
  return !tls_ ? "plaintext" : client_cert_ ? "mtls" : "tls";
}

std::shared_ptr<grpc::Channel> ChannelSecurity::Channel(const std::string& address,
                                                        grpc::ChannelArguments args) const {
  if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
  return grpc::CreateCustomChannel(address, credentials_, args);
}

}  // namespace switchboard::client
