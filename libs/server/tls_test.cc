// TLS and mTLS on a real libs/server Server, dialed with gRPC's own SSL
// credentials (libs/client's ChannelSecurity is tested against it apart).
#include "libs/server/tls.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"
#include "libs/server/server.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/test_certificates.h"

namespace switchboard::server {
namespace {

using ::switchboard::testing::TestCertificates;
using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;
using ::testing::HasSubstr;

class EchoImpl final : public EchoService::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const EchoRequest* request, EchoResponse* response) override {
    response->set_text(request->text());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// What the process writes to stderr (fd 2, where libs/log writes) while it
// exists.
class CapturedStderr {
 public:
  CapturedStderr() : path_(storage::MakeTempDir() + "/stderr") {
    std::fflush(stderr);
    saved_ = dup(2);
    const int fd = open(path_.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
  }
  ~CapturedStderr() { Release(); }
  // Restores stderr and returns what was written.
  std::string Release() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, 2);
      close(saved_);
      saved_ = -1;
    }
    return ReadAll(path_);
  }

 private:
  std::string path_;
  int saved_ = -1;
};

class TlsServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestCertificates({"server", "client"});
    other_pki_ = new TestCertificates({"server", "client"});
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete other_pki_;
  }

  ~TlsServerTest() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  static ServerTlsOptions Tls(const TestCertificates& pki) {
    ServerTlsOptions tls;
    tls.cert_file = pki.cert("server");
    tls.key_file = pki.key("server");
    return tls;
  }

  absl::Status Start(const ServerTlsOptions& tls, const std::string& bind = "127.0.0.1") {
    ServerOptions options;
    options.service_name = "tls-test";
    options.bind_address = bind;
    options.tls = tls;
    options.drain_deadline = absl::Seconds(1);
    auto server = Server::Start(options, {&echo_}, std::make_shared<prometheus::Registry>());
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    return absl::OkStatus();
  }

  // SSL credentials trusting `trust`'s CA, presenting `client`'s "client"
  // certificate if given.
  static std::shared_ptr<grpc::ChannelCredentials> Ssl(const TestCertificates& trust,
                                                       const TestCertificates* client = nullptr) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadAll(trust.ca());
    if (client != nullptr) {
      options.pem_cert_chain = ReadAll(client->cert("client"));
      options.pem_private_key = ReadAll(client->key("client"));
    }
    return grpc::SslCredentials(options);
  }

  // A health check over a new connection (never one a previous call made).
  grpc::Status Check(const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                     const std::string& host = "127.0.0.1") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(
        absl::StrCat(host, ":", server_->port()), credentials, args));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, {}, &response);
    if (status.ok() && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "not SERVING");
    }
    return status;
  }

  static TestCertificates* pki_;
  static TestCertificates* other_pki_;
  EchoImpl echo_;
  std::unique_ptr<Server> server_;
};

TestCertificates* TlsServerTest::pki_ = nullptr;
TestCertificates* TlsServerTest::other_pki_ = nullptr;

TEST_F(TlsServerTest, ServesHealthAndCallsOverTls) {
  ASSERT_TRUE(Start(Tls(*pki_)).ok());
  EXPECT_TRUE(Check(Ssl(*pki_)).ok());
  EXPECT_TRUE(Check(Ssl(*pki_), "localhost").ok());
  auto stub = EchoService::NewStub(
      grpc::CreateChannel(absl::StrCat("localhost:", server_->port()), Ssl(*pki_)));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  EchoRequest request;
  request.set_text("over tls");
  EchoResponse response;
  ASSERT_TRUE(stub->Echo(&context, request, &response).ok());
  EXPECT_EQ(response.text(), "over tls");
}

TEST_F(TlsServerTest, RefusesPlaintextOnATlsPort) {
  ASSERT_TRUE(Start(Tls(*pki_)).ok());
  EXPECT_EQ(Check(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, AClientTrustingAnotherCaCannotConnect) {
  ASSERT_TRUE(Start(Tls(*pki_)).ok());
  EXPECT_EQ(Check(Ssl(*other_pki_)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, MutualTlsRefusesClientsWithoutACertificateOfItsCa) {
  ServerTlsOptions tls = Tls(*pki_);
  tls.client_ca_file = pki_->ca();
  tls.require_client_cert = true;
  ASSERT_TRUE(Start(tls).ok());
  EXPECT_TRUE(Check(Ssl(*pki_, pki_)).ok());
  EXPECT_EQ(Check(Ssl(*pki_)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(Ssl(*pki_, other_pki_)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, OptionalClientCertificatesAreVerifiedWhenPresented) {
  ServerTlsOptions tls = Tls(*pki_);
  tls.client_ca_file = pki_->ca();
  ASSERT_TRUE(Start(tls).ok());
  EXPECT_TRUE(Check(Ssl(*pki_)).ok());
  EXPECT_TRUE(Check(Ssl(*pki_, pki_)).ok());
  EXPECT_EQ(Check(Ssl(*pki_, other_pki_)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, ARenewedCertificateIsServedWithoutARestart) {
  // The server's files, replaced below as a certificate manager would: a
  // complete new file renamed over each.
  const std::string dir = storage::MakeTempDir();
  ServerTlsOptions tls;
  tls.cert_file = dir + "/server.pem";
  tls.key_file = dir + "/server.key";
  tls.reload_interval = absl::Seconds(1);
  std::filesystem::copy_file(pki_->cert("server"), tls.cert_file);
  std::filesystem::copy_file(pki_->key("server"), tls.key_file);
  ASSERT_TRUE(Start(tls).ok());
  ASSERT_TRUE(Check(Ssl(*pki_)).ok());

  std::filesystem::copy_file(other_pki_->cert("server"), dir + "/next.pem");
  std::filesystem::copy_file(other_pki_->key("server"), dir + "/next.key");
  std::filesystem::rename(dir + "/next.key", tls.key_file);
  std::filesystem::rename(dir + "/next.pem", tls.cert_file);
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  grpc::Status renewed = Check(Ssl(*other_pki_));
  while (!renewed.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(200));
    renewed = Check(Ssl(*other_pki_));
  }
  EXPECT_TRUE(renewed.ok()) << renewed.error_message();
  EXPECT_EQ(Check(Ssl(*pki_)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, StartRefusesAKeyThatIsNotTheCertificates) {
  ServerTlsOptions tls = Tls(*pki_);
  tls.key_file = other_pki_->key("server");
  const absl::Status started = Start(tls);
  EXPECT_EQ(started.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(started.message(), HasSubstr("--tls_key_file"));
  EXPECT_THAT(started.message(), HasSubstr("is not the private key"));

  ServerOptions options;
  options.tls = tls;
  EXPECT_EQ(ApplyServerOptions(options).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsServerTest, OptionsThatDoNotGoTogetherAreRefusedNamingTheFlag) {
  const auto refused = [](const ServerTlsOptions& tls, const std::string& flag) {
    const absl::Status status = ValidateServerTls(tls);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(status.message(), HasSubstr(flag));
    ServerOptions options;
    options.tls = tls;
    EXPECT_EQ(ApplyServerOptions(options).code(), absl::StatusCode::kInvalidArgument) << flag;
  };
  ServerTlsOptions cert_only;
  cert_only.cert_file = pki_->cert("server");
  refused(cert_only, "--tls_key_file");
  ServerTlsOptions key_only;
  key_only.key_file = pki_->key("server");
  refused(key_only, "--tls_cert_file");
  ServerTlsOptions ca_without_tls;
  ca_without_tls.client_ca_file = pki_->ca();
  refused(ca_without_tls, "--tls_client_ca_file");
  ServerTlsOptions require_without_ca = Tls(*pki_);
  require_without_ca.require_client_cert = true;
  refused(require_without_ca, "--tls_require_client_cert");
  ServerTlsOptions fast_reload = Tls(*pki_);
  fast_reload.reload_interval = absl::Milliseconds(100);
  refused(fast_reload, "--tls_reload_interval");
  ServerTlsOptions missing_ca = Tls(*pki_);
  missing_ca.client_ca_file = pki_->dir() + "/missing.pem";
  EXPECT_THAT(CheckServerTlsFiles(missing_ca, absl::Now()).message(),
              HasSubstr("--tls_client_ca_file"));

  EXPECT_TRUE(ValidateServerTls({}).ok());
  EXPECT_TRUE(CheckServerTlsFiles(Tls(*pki_), absl::Now()).ok());
}

TEST_F(TlsServerTest, TheFlagsFillTheOptions) {
  ServerOptions options;
  config::FlagSet flags("tls-test", [](const char*) -> const char* { return nullptr; });
  AddServerFlags(flags, &options);
  const char* argv[] = {"tls-test", "--tls_cert_file=/c.pem", "--tls_key_file=/k.pem",
                        "--tls_client_ca_file=/ca.pem", "--tls_require_client_cert",
                        "--tls_reload_interval=5m"};
  ASSERT_TRUE(flags.Parse(6, argv).ok());
  EXPECT_EQ(options.tls.cert_file, "/c.pem");
  EXPECT_EQ(options.tls.key_file, "/k.pem");
  EXPECT_EQ(options.tls.client_ca_file, "/ca.pem");
  EXPECT_TRUE(options.tls.require_client_cert);
  EXPECT_EQ(options.tls.reload_interval, absl::Minutes(5));
  EXPECT_EQ(TransportName(options.tls), "mtls");
  options.tls.require_client_cert = false;
  EXPECT_EQ(TransportName(options.tls), "tls_client_cert_optional");
  options.tls.client_ca_file.clear();
  EXPECT_EQ(TransportName(options.tls), "tls");
  EXPECT_EQ(TransportName({}), "plaintext");
}

TEST(IsLoopbackAddressTest, OnlyAddressesThisMachineAloneCanReach) {
  for (const char* loopback : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                               "LOCALHOST", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(loopback)) << loopback;
  }
  for (const char* network : {"0.0.0.0", "::", "[::]", "10.0.0.7", "192.168.1.2", "::2",
                              "fe80::1", "::ffff:10.0.0.1", "example.com", "", "[::1",
                              "128.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackAddress(network)) << network;
  }
}

// The lines of `log` whose event is `event`.
std::vector<std::string> Events(const std::string& log, const std::string& event) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, absl::StrCat("\"event\":\"", event, "\""))) {
      found.emplace_back(line);
    }
  }
  return found;
}

TEST_F(TlsServerTest, PlaintextBeyondLoopbackIsWarnedAboutOnceNamingTheAddress) {
  CapturedStderr captured;
  ASSERT_TRUE(Start({}, "0.0.0.0").ok());
  const std::string log = captured.Release();
  const std::vector<std::string> warnings = Events(log, "plaintext_grpc_on_network");
  ASSERT_EQ(warnings.size(), 1u) << log;
  EXPECT_THAT(warnings[0], HasSubstr("\"level\":\"warning\""));
  EXPECT_THAT(warnings[0], HasSubstr(absl::StrCat("\"address\":\"0.0.0.0:", server_->port())));
  EXPECT_THAT(warnings[0], HasSubstr("\"service\":\"tls-test\""));
  EXPECT_THAT(Events(log, "server_started").at(0), HasSubstr("\"transport\":\"plaintext\""));
}

TEST_F(TlsServerTest, NoWarningOnLoopbackOrWithTls) {
  {
    CapturedStderr captured;
    ASSERT_TRUE(Start({}, "127.0.0.1").ok());
    const std::string log = captured.Release();
    EXPECT_TRUE(Events(log, "plaintext_grpc_on_network").empty()) << log;
    server_->Shutdown();
  }
  CapturedStderr captured;
  ServerTlsOptions tls = Tls(*pki_);
  tls.client_ca_file = pki_->ca();
  tls.require_client_cert = true;
  ASSERT_TRUE(Start(tls, "0.0.0.0").ok());
  const std::string log = captured.Release();
  EXPECT_TRUE(Events(log, "plaintext_grpc_on_network").empty()) << log;
  EXPECT_THAT(Events(log, "server_started").at(0), HasSubstr("\"transport\":\"mtls\""));
  const std::vector<std::string> certificate = Events(log, "tls_certificate");
  ASSERT_EQ(certificate.size(), 1u) << log;
  EXPECT_THAT(certificate[0], HasSubstr("\"service\":\"tls-test\""));
  EXPECT_THAT(certificate[0], HasSubstr("CN=server"));
  EXPECT_THAT(certificate[0], HasSubstr("\"days_left\":396"));
}

}  // namespace
}  // namespace switchboard::server
