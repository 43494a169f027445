#pragma once

#include <string>
#include <vector>

namespace switchboard::testing {

// A certificate authority and certificates it signs, for TLS tests, made by
// tools/dev_certs.sh (openssl) in a new temporary folder: the same files
// `tools/run.sh --tls` uses. Each certificate names localhost, 127.0.0.1
// and ::1 and serves both as a server and as a client certificate. No
// private key is ever committed: every test run makes its own.
//
//   testing::TestCertificates pki({"server", "client"});
//   options.tls.cert_file = pki.cert("server");
//
// Aborts the test binary when openssl fails, since no TLS test can run
// without certificates (the message says why).
class TestCertificates {
 public:
  explicit TestCertificates(const std::vector<std::string>& names);

  // Makes certificates for more names, signed by the same CA.
  void Add(const std::vector<std::string>& names);

  const std::string& dir() const { return dir_; }
  // The CA's certificate (PEM): the bundle that trusts every certificate here.
  std::string ca() const { return dir_ + "/ca.pem"; }
  // The CA's private key, to sign certificates of one's own.
  std::string ca_key() const { return dir_ + "/ca.key"; }
  std::string cert(const std::string& name) const { return dir_ + "/" + name + ".pem"; }
  std::string key(const std::string& name) const { return dir_ + "/" + name + ".key"; }

 private:
  std::string dir_;
};

}  // namespace switchboard::testing
