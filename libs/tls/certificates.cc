#include "libs/tls/certificates.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::tls {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::Status Invalid(absl::string_view flag, const std::string& file, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", file, " ", why));
}

absl::StatusOr<std::string> ReadFile(const std::string& file, absl::string_view flag) {
  if (file.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is empty"));
  std::ifstream in(file, std::ios::binary);
  if (!in) return Invalid(flag, file, absl::StrCat("cannot be read: ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Invalid(flag, file, "cannot be read");
  return text.str();
}

// OpenSSL's reason for the last failure, for a message; clears its queue.
std::string OpenSslReason() {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

std::vector<Certificate> ReadCertificates(const std::string& pem) {
  std::vector<Certificate> certificates;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* x509 = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.emplace_back(x509);
  }
  // The loop ends at the end of the data, which OpenSSL reports as an error.
  ERR_clear_error();
  return certificates;
}

absl::Time ToTime(const ASN1_TIME* time) {
  struct tm parts = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&parts));
}

std::string Subject(X509* certificate) {
  Bio bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size > 0 ? static_cast<size_t>(size) : 0);
}

std::vector<std::string> DnsNames(X509* certificate) {
  std::vector<std::string> names;
  auto* general_names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (general_names == nullptr) return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(general_names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(general_names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       static_cast<size_t>(ASN1_STRING_length(dns)));
  }
  GENERAL_NAMES_free(general_names);
  return names;
}

}  // namespace

absl::StatusOr<CertificateInfo> CheckKeyPair(const std::string& cert_file,
                                             absl::string_view cert_flag,
                                             const std::string& key_file,
                                             absl::string_view key_flag, absl::Time now) {
  absl::StatusOr<std::string> cert_pem = ReadFile(cert_file, cert_flag);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFile(key_file, key_flag);
  if (!key_pem.ok()) return key_pem.status();

  std::vector<Certificate> chain = ReadCertificates(*cert_pem);
  if (chain.empty()) return Invalid(cert_flag, cert_file, "holds no PEM certificate");
  if (absl::StrContains(*key_pem, "ENCRYPTED")) {
    return Invalid(key_flag, key_file,
                   "is encrypted; the server needs the key without a passphrase (protect the "
                   "file instead)");
  }
  Bio key_bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  // No passphrase callback may prompt on a terminal: refuse instead.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return -1; };
  Key key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (key == nullptr) {
    return Invalid(key_flag, key_file,
                   absl::StrCat("holds no PEM private key (", OpenSslReason(), ")"));
  }
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return Invalid(key_flag, key_file,
                   absl::StrCat("is not the private key of the first certificate in ",
                                cert_flag, " (", cert_file, ")"));
  }
  CertificateInfo info;
  info.subject = Subject(leaf);
  info.not_before = ToTime(X509_get0_notBefore(leaf));
  info.not_after = ToTime(X509_get0_notAfter(leaf));
  info.chain_length = static_cast<int>(chain.size());
  info.dns_names = DnsNames(leaf);
  if (now >= info.not_after) {
    return Invalid(cert_flag, cert_file,
                   absl::StrCat("expired at ", absl::FormatTime(info.not_after)));
  }
  if (now < info.not_before) {
    return Invalid(cert_flag, cert_file,
                   absl::StrCat("is not valid before ", absl::FormatTime(info.not_before)));
  }
  return info;
}

absl::StatusOr<int> CheckCaBundle(const std::string& ca_file, absl::string_view flag) {
  absl::StatusOr<std::string> pem = ReadFile(ca_file, flag);
  if (!pem.ok()) return pem.status();
  const std::vector<Certificate> certificates = ReadCertificates(*pem);
  if (certificates.empty()) return Invalid(flag, ca_file, "holds no PEM certificate");
  return static_cast<int>(certificates.size());
}

}  // namespace switchboard::tls
