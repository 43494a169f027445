// ChannelSecurity and PeerChannel against a real libs/server Server serving
// plaintext, TLS and mTLS.
#include "libs/client/tls.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/client/peer.h"
#include "libs/config/flags.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"
#include "libs/server/server.h"
#include "libs/testing/test_certificates.h"

namespace switchboard::client {
namespace {

using ::switchboard::testing::TestCertificates;
using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;
using ::testing::HasSubstr;

class EchoImpl final : public EchoService::CallbackService {
 public:
  int calls() const { return calls_.load(); }

 private:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const EchoRequest* request, EchoResponse* response) override {
    calls_.fetch_add(1);
    response->set_text(request->text());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  std::atomic<int> calls_{0};
};

class ClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestCertificates({"server", "client"});
    other_pki_ = new TestCertificates({"server", "client"});
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete other_pki_;
  }
  ~ClientTlsTest() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // A server with TLS from pki_ (plaintext if `tls` is false), requiring
  // client certificates of pki_'s CA if `mutual`.
  void Start(bool tls, bool mutual = false) {
    server::ServerOptions options;
    options.service_name = "client-tls-test";
    options.bind_address = "127.0.0.1";
    options.drain_deadline = absl::Seconds(1);
    if (tls) {
      options.tls.cert_file = pki_->cert("server");
      options.tls.key_file = pki_->key("server");
    }
    if (mutual) {
      options.tls.client_ca_file = pki_->ca();
      options.tls.require_client_cert = true;
    }
    auto server =
        server::Server::Start(options, {&echo_}, std::make_shared<prometheus::Registry>());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  static ClientTlsOptions Trusting(const TestCertificates& pki) {
    ClientTlsOptions options;
    options.ca_file = pki.ca();
    return options;
  }
  static ClientTlsOptions WithCertificate(ClientTlsOptions options, const TestCertificates& pki) {
    options.cert_file = pki.cert("client");
    options.key_file = pki.key("client");
    return options;
  }

  static ChannelSecurity Security(const ClientTlsOptions& options) {
    absl::StatusOr<ChannelSecurity> security = ChannelSecurity::Create(options, "peer_");
    EXPECT_TRUE(security.ok()) << security.status();
    return security.value_or(ChannelSecurity());
  }

  // One Echo call on a new PeerChannel to `host`:port.
  grpc::Status Echo(const ChannelSecurity& security, const std::string& host = "127.0.0.1") {
    auto stub = EchoService::NewStub(
        PeerChannel(absl::StrCat(host, ":", server_->port()), security));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    EchoRequest request;
    request.set_text("hello");
    EchoResponse response;
    grpc::Status status = stub->Echo(&context, request, &response);
    if (status.ok()) {
      EXPECT_EQ(response.text(), "hello");
    }
    return status;
  }

  static TestCertificates* pki_;
  static TestCertificates* other_pki_;
  EchoImpl echo_;
  std::unique_ptr<server::Server> server_;
};

TestCertificates* ClientTlsTest::pki_ = nullptr;
TestCertificates* ClientTlsTest::other_pki_ = nullptr;

// Replicas behind one name (a headless Service's dns:/// name resolves to
// every pod): calls spread over all of them, not pinned to the first.
TEST(PeerChannelTest, BalancesCallsOverEveryAddressOfTheName) {
  server::ServerOptions options;
  options.service_name = "peer-balance-test";
  options.bind_address = "127.0.0.1";
  options.drain_deadline = absl::Seconds(1);
  EchoImpl first_echo;
  EchoImpl second_echo;
  auto first =
      server::Server::Start(options, {&first_echo}, std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      server::Server::Start(options, {&second_echo}, std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(second.ok()) << second.status();
  auto stub = EchoService::NewStub(PeerChannel(absl::StrCat(
      "ipv4:127.0.0.1:", (*first)->port(), ",127.0.0.1:", (*second)->port())));
  // Until both replicas have served calls; the second may connect later
  // than the first, so the bound is generous.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while ((first_echo.calls() == 0 || second_echo.calls() == 0) && absl::Now() < give_up) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    EchoRequest request;
    request.set_text("hello");
    EchoResponse response;
    ASSERT_TRUE(stub->Echo(&context, request, &response).ok());
  }
  EXPECT_GT(first_echo.calls(), 0);
  EXPECT_GT(second_echo.calls(), 0);
  (*first)->Shutdown();
  (*second)->Shutdown();
}

TEST_F(ClientTlsTest, WithoutACaFileItDialsPlaintext) {
  Start(/*tls=*/false);
  const ChannelSecurity security = Security({});
  EXPECT_FALSE(security.tls());
  EXPECT_EQ(security.name(), "plaintext");
  EXPECT_TRUE(Echo(security).ok());
  EXPECT_TRUE(Echo(ChannelSecurity()).ok());
}

TEST_F(ClientTlsTest, DialsTlsVerifyingTheServerAgainstItsCa) {
  Start(/*tls=*/true);
  const ChannelSecurity security = Security(Trusting(*pki_));
  EXPECT_TRUE(security.tls());
  EXPECT_EQ(security.name(), "tls");
  EXPECT_TRUE(Echo(security).ok());
  EXPECT_TRUE(Echo(security, "localhost").ok());
  EXPECT_EQ(Echo(Security(Trusting(*other_pki_))).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Echo(ChannelSecurity()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ClientTlsTest, PresentsItsCertificateToAServerThatRequiresOne) {
  Start(/*tls=*/true, /*mutual=*/true);
  const ChannelSecurity mutual = Security(WithCertificate(Trusting(*pki_), *pki_));
  EXPECT_EQ(mutual.name(), "mtls");
  EXPECT_TRUE(Echo(mutual).ok());
  EXPECT_EQ(Echo(Security(Trusting(*pki_))).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Echo(Security(WithCertificate(Trusting(*pki_), *other_pki_))).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ClientTlsTest, TheServerNameOverridesTheHostDialed) {
  Start(/*tls=*/true);
  ClientTlsOptions options = Trusting(*pki_);
  options.server_name = "localhost";
  EXPECT_TRUE(Echo(Security(options)).ok());
  // The certificate names localhost and 127.0.0.1 only: checking another
  // name fails even though the address dialed is in the certificate.
  options.server_name = "sessions.example.internal";
  EXPECT_EQ(Echo(Security(options)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ClientTlsTest, RenewedFilesApplyToNewConnectionsWithoutANewChannelSecurity) {
  // The server speaks for other_pki_ and accepts only its clients; the
  // client starts with pki_'s files, then gets other_pki_'s renamed over
  // them, as a certificate manager would deliver them.
  server::ServerOptions options;
  options.service_name = "client-tls-test";
  options.bind_address = "127.0.0.1";
  options.drain_deadline = absl::Seconds(1);
  options.tls.cert_file = other_pki_->cert("server");
  options.tls.key_file = other_pki_->key("server");
  options.tls.client_ca_file = other_pki_->ca();
  options.tls.require_client_cert = true;
  auto started =
      server::Server::Start(options, {&echo_}, std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = std::move(*started);

  const std::string dir = pki_->dir() + "/renewed";
  std::filesystem::create_directories(dir);
  ClientTlsOptions files;
  files.ca_file = dir + "/ca.pem";
  files.cert_file = dir + "/client.pem";
  files.key_file = dir + "/client.key";
  files.reload_interval = absl::Seconds(1);
  const auto deliver = [&](const TestCertificates& from) {
    for (const auto& [source, target] :
         {std::pair{from.ca(), files.ca_file}, std::pair{from.key("client"), files.key_file},
          std::pair{from.cert("client"), files.cert_file}}) {
      std::filesystem::copy_file(source, target + ".new",
                                 std::filesystem::copy_options::overwrite_existing);
      std::filesystem::rename(target + ".new", target);
    }
  };
  deliver(*pki_);
  const ChannelSecurity security = Security(files);
  EXPECT_EQ(Echo(security).error_code(), grpc::StatusCode::UNAVAILABLE);

  deliver(*other_pki_);
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  grpc::Status renewed = Echo(security);
  while (!renewed.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(200));
    renewed = Echo(security);
  }
  EXPECT_TRUE(renewed.ok()) << renewed.error_message();
}

TEST_F(ClientTlsTest, WrongOptionsAreRefusedNamingThePrefixedFlag) {
  const auto refused = [](const ClientTlsOptions& options, const std::string& text) {
    absl::StatusOr<ChannelSecurity> security = ChannelSecurity::Create(options, "peer_");
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(security.status().message(), HasSubstr(text));
  };
  ClientTlsOptions cert_only = Trusting(*pki_);
  cert_only.cert_file = pki_->cert("client");
  refused(cert_only, "--peer_tls_cert_file and --peer_tls_key_file go together");
  ClientTlsOptions cert_without_ca = WithCertificate({}, *pki_);
  refused(cert_without_ca, "--peer_tls_cert_file needs --peer_tls_ca_file");
  ClientTlsOptions name_without_ca;
  name_without_ca.server_name = "localhost";
  refused(name_without_ca, "--peer_tls_server_name needs --peer_tls_ca_file");
  ClientTlsOptions missing_ca;
  missing_ca.ca_file = pki_->dir() + "/missing.pem";
  refused(missing_ca, "--peer_tls_ca_file: " + missing_ca.ca_file + " cannot be read");
  ClientTlsOptions mismatched = WithCertificate(Trusting(*pki_), *pki_);
  mismatched.key_file = other_pki_->key("client");
  refused(mismatched, "--peer_tls_key_file: " + mismatched.key_file + " is not the private key");
  ClientTlsOptions fast = Trusting(*pki_);
  fast.reload_interval = absl::ZeroDuration();
  refused(fast, "--peer_tls_reload_interval must be at least 1s");

  absl::StatusOr<ChannelSecurity> tool = ChannelSecurity::Create(cert_without_ca, "");
  EXPECT_THAT(tool.status().message(), HasSubstr("--tls_cert_file needs --tls_ca_file"));
}

TEST(ClientTlsFlagsTest, ThePrefixNamesTheFlagsAndTheirEnvironmentVariables) {
  ClientTlsOptions options;
  config::FlagSet flags("routing", [](const char* name) -> const char* {
    return std::string(name) == "SWITCHBOARD_PEER_TLS_CA_FILE" ? "/etc/ca.pem" : nullptr;
  });
  AddClientTlsFlags(flags, &options, "peer_");
  const char* argv[] = {"routing", "--peer_tls_cert_file=/c.pem", "--peer_tls_key_file=/k.pem",
                        "--peer_tls_server_name=routing.internal",
                        "--peer_tls_reload_interval=30s"};
  ASSERT_TRUE(flags.Parse(5, argv).ok());
  EXPECT_EQ(options.ca_file, "/etc/ca.pem");
  EXPECT_EQ(options.cert_file, "/c.pem");
  EXPECT_EQ(options.key_file, "/k.pem");
  EXPECT_EQ(options.server_name, "routing.internal");
  EXPECT_EQ(options.reload_interval, absl::Seconds(30));

  ClientTlsOptions tool;
  config::FlagSet tool_flags("cli", [](const char*) -> const char* { return nullptr; });
  AddClientTlsFlags(tool_flags, &tool, "");
  const char* tool_argv[] = {"cli", "--tls_ca_file=/ca.pem"};
  ASSERT_TRUE(tool_flags.Parse(2, tool_argv).ok());
  EXPECT_EQ(tool.ca_file, "/ca.pem");
}

}  // namespace
}  // namespace switchboard::client
