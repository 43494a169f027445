#include "libs/tls/certificates.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/test_certificates.h"

namespace switchboard::tls {
namespace {

using ::testing::HasSubstr;

class CertificatesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new testing::TestCertificates({"server", "other"}); }
  static void TearDownTestSuite() { delete pki_; }

  static std::string Write(const std::string& name, const std::string& text) {
    const std::string path = pki_->dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static absl::StatusOr<CertificateInfo> Check(const std::string& cert, const std::string& key,
                                               absl::Time now = absl::Now()) {
    return CheckKeyPair(cert, "--tls_cert_file", key, "--tls_key_file", now);
  }

  static testing::TestCertificates* pki_;
};

testing::TestCertificates* CertificatesTest::pki_ = nullptr;

TEST_F(CertificatesTest, AcceptsACertificateWithItsKeyAndDescribesIt) {
  absl::StatusOr<CertificateInfo> info = Check(pki_->cert("server"), pki_->key("server"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->subject, HasSubstr("CN=server"));
  EXPECT_EQ(info->chain_length, 1);
  // tools/dev_certs.sh names localhost, 127.0.0.1 and ::1: the addresses
  // are not DNS names.
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"localhost"});
  EXPECT_GT(info->not_after, absl::Now() + absl::Hours(24 * 390));
  EXPECT_LT(info->not_before, absl::Now() + absl::Minutes(1));
}

TEST_F(CertificatesTest, CountsEveryCertificateOfAChain) {
  const std::string chain =
      Write("chain.pem", Read(pki_->cert("server")) + Read(pki_->ca()));
  absl::StatusOr<CertificateInfo> info = Check(chain, pki_->key("server"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->chain_length, 2);
}

TEST_F(CertificatesTest, RefusesTheKeyOfAnotherCertificateNamingTheKeyFlag) {
  absl::StatusOr<CertificateInfo> info = Check(pki_->cert("server"), pki_->key("other"));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("--tls_key_file: " + pki_->key("other")));
  EXPECT_THAT(info.status().message(), HasSubstr("is not the private key"));
}

TEST_F(CertificatesTest, RefusesAMissingFileNamingItsFlag) {
  const std::string missing = pki_->dir() + "/missing.pem";
  absl::StatusOr<CertificateInfo> info = Check(missing, pki_->key("server"));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("--tls_cert_file: " + missing));
  EXPECT_THAT(info.status().message(), HasSubstr("cannot be read"));
  EXPECT_THAT(Check(pki_->cert("server"), missing).status().message(),
              HasSubstr("--tls_key_file: " + missing));
}

TEST_F(CertificatesTest, RefusesFilesSwappedOrOfTheWrongKind) {
  EXPECT_THAT(Check(pki_->key("server"), pki_->key("server")).status().message(),
              HasSubstr("--tls_cert_file: " + pki_->key("server") + " holds no PEM certificate"));
  EXPECT_THAT(Check(pki_->cert("server"), pki_->cert("server")).status().message(),
              HasSubstr("--tls_key_file: " + pki_->cert("server") + " holds no PEM private key"));
  const std::string garbage = Write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_EQ(Check(garbage, pki_->key("server")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Check(Write("empty.pem", ""), pki_->key("server")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CertificatesTest, RefusesAnEncryptedKeyWithoutAskingForAPassphrase) {
  const std::string encrypted = pki_->dir() + "/encrypted.key";
  ASSERT_EQ(std::system(absl::StrCat("openssl pkey -in '", pki_->key("server"),
                                     "' -aes256 -passout pass:secret -out '", encrypted,
                                     "'")
                            .c_str()),
            0);
  absl::StatusOr<CertificateInfo> info = Check(pki_->cert("server"), encrypted);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("is encrypted"));
}

TEST_F(CertificatesTest, RefusesACertificateOutsideItsValidity) {
  absl::StatusOr<CertificateInfo> info = Check(pki_->cert("server"), pki_->key("server"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(Check(pki_->cert("server"), pki_->key("server"), info->not_after).status().message(),
              HasSubstr("expired at"));
  EXPECT_THAT(Check(pki_->cert("server"), pki_->key("server"), info->not_before - absl::Hours(1))
                  .status()
                  .message(),
              HasSubstr("is not valid before"));
}

TEST_F(CertificatesTest, ACaBundleHoldsAtLeastOneCertificate) {
  absl::StatusOr<int> one = CheckCaBundle(pki_->ca(), "--tls_client_ca_file");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(*one, 1);
  const std::string two = Write("two.pem", Read(pki_->ca()) + Read(pki_->cert("other")));
  EXPECT_EQ(CheckCaBundle(two, "--tls_client_ca_file").value_or(0), 2);

  absl::StatusOr<int> key = CheckCaBundle(pki_->ca_key(), "--tls_client_ca_file");
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(key.status().message(),
              HasSubstr("--tls_client_ca_file: " + pki_->ca_key() + " holds no PEM certificate"));
  EXPECT_THAT(CheckCaBundle("", "--peer_tls_ca_file").status().message(),
              HasSubstr("--peer_tls_ca_file is empty"));
}

}  // namespace
}  // namespace switchboard::tls
