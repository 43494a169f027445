#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::tls {

// What a checked certificate file holds, for the start-up log.
struct CertificateInfo {
  // The first (leaf) certificate's subject, e.g. "CN=sessions,O=Example".
  std::string subject;
  absl::Time not_before;
  absl::Time not_after;
  // Certificates in the file: the leaf and the intermediates after it.
  int chain_length = 0;
  // The leaf's subjectAltName DNS names, in the certificate's order.
  std::vector<std::string> dns_names;
};

// Reads a certificate chain (`cert_file`, PEM, leaf first) and its private
// key (`key_file`, unencrypted PEM) and checks them the way a TLS handshake
// would need them, so that a wrong file stops a server at start with a clear
// message rather than failing every handshake later:
//   - both files can be read and hold PEM data of the right kind;
//   - the key belongs to the leaf certificate;
//   - the leaf is valid at `now` (not expired, not yet to come).
// Errors are INVALID_ARGUMENT naming the flag (`cert_flag` or `key_flag`,
// e.g. "--tls_cert_file") and the file. Never reads a terminal (an
// encrypted key is an error, not a passphrase prompt). Thread-safe.
absl::StatusOr<CertificateInfo> CheckKeyPair(const std::string& cert_file,
                                             absl::string_view cert_flag,
                                             const std::string& key_file,
                                             absl::string_view key_flag, absl::Time now);

// Reads a bundle of trusted CA certificates (`ca_file`, PEM) and checks
// that it holds at least one certificate and nothing that is not one.
// Returns the number of certificates. INVALID_ARGUMENT naming `flag` and
// the file otherwise. Thread-safe.
absl::StatusOr<int> CheckCaBundle(const std::string& ca_file, absl::string_view flag);

}  // namespace switchboard::tls
