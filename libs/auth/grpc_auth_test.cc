#include "libs/auth/grpc_auth.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "libs/auth/key_folder.h"
#include "libs/clock/clock.h"
#include "switchboard/bot/v1/bot_service.pb.h"

namespace switchboard::auth {
namespace {

TEST(BearerTokenTest, ExtractsToken) {
  EXPECT_EQ(BearerToken("Bearer abc.def.ghi").value_or(""), "abc.def.ghi");
  EXPECT_EQ(BearerToken("bearer abc").value_or(""), "abc");
  EXPECT_EQ(BearerToken("BEARER\tabc").value_or(""), "abc");
  EXPECT_EQ(BearerToken("  Bearer   abc  ").value_or(""), "abc");
}

TEST(BearerTokenTest, RejectsOtherForms) {
  for (absl::string_view header :
       {"", " ", "Bearer", "Bearer ", "Bearer  \t ", "Bearerabc", "Basic abc",
        "Token abc", "abc", "Bearer a b", "Bearer a\nb", "Bear abc"}) {
    absl::StatusOr<absl::string_view> token = BearerToken(header);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated)
        << "\"" << header << "\"";
  }
}

// Answers every method as the bot's RPC of the same name would be
// authorized: authenticates the call, applies the bot's policy, and returns
// the principal in trailing metadata, or the error as the call's status.
class WhoAmIService : public grpc::CallbackGenericService {
 public:
  WhoAmIService(const TokenVerifier* verifier, const Clock* clock)
      : verifier_(verifier), clock_(clock) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new Reactor(context, *verifier_, clock_->Now());
  }

 private:
  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(grpc::GenericCallbackServerContext* context,
            const TokenVerifier& verifier, absl::Time now) {
      const std::string& path = context->method();
      const std::string method = path.substr(path.rfind('/') + 1);
      absl::StatusOr<Principal> principal = AuthenticateAndAuthorize(
          *context, verifier, ServicePolicy::Of(bot::v1::AnswerRequest::descriptor()
                                                    ->file()
                                                    ->service(0)
                                                    ->full_name()),
          now, method);
      if (!principal.ok()) {
        Finish(grpc::Status(
            static_cast<grpc::StatusCode>(principal.status().code()),
            std::string(principal.status().message())));
        return;
      }
      context->AddTrailingMetadata("x-subject", principal->subject);
      context->AddTrailingMetadata("x-role",
                                   std::string(RoleName(principal->role)));
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    grpc::Slice empty_{""};
    grpc::ByteBuffer response_{&empty_, 1};
  };

  const TokenVerifier* verifier_;
  const Clock* clock_;
};

class AuthenticateCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    stub_ = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  struct Result {
    grpc::Status status;
    std::string subject;
    std::string role;
  };

  // Calls `method`; `prepare` adds metadata to the context.
  template <typename Prepare>
  Result Call(Prepare prepare, const std::string& method = "Answer") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    prepare(context);
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    Result result;
    stub_->UnaryCall(&context, "/test.WhoAmI/" + method, grpc::StubOptions(),
                     &request, &response, [&](grpc::Status status) {
                       result.status = std::move(status);
                       done.Notify();
                     });
    done.WaitForNotification();
    const auto& trailers = context.GetServerTrailingMetadata();
    if (auto it = trailers.find("x-subject"); it != trailers.end()) {
      result.subject = std::string(it->second.data(), it->second.size());
    }
    if (auto it = trailers.find("x-role"); it != trailers.end()) {
      result.role = std::string(it->second.data(), it->second.size());
    }
    return result;
  }

  std::string Mint(absl::string_view subject, Role role) {
    return MintAccessToken(issuer_, Principal{std::string(subject), role,
                                              clock_.Now() + absl::Hours(1)},
                           clock_.Now())
        .value_or("");
  }
  std::string Service(const std::string& caller) {
    return MintServiceToken(TokenSigner(keys_.services.at(caller), std::string(kServiceIssuer)),
                            caller, "bot", clock_.Now(), absl::Minutes(10))
        .value_or("");
  }

  static KeyFolder NewKeys() {
    absl::StatusOr<KeyFolder> keys = KeyFolder::Generate();
    EXPECT_TRUE(keys.ok()) << keys.status();
    return *std::move(keys);
  }
  static TokenVerifier::KeySources Sources(const KeyFolder& keys) {
    return {FixedKeys(keys.AccessKeys()), FixedKeys(keys.ServiceKeys()),
            FixedKeys(keys.VerificationKeys())};
  }

  FakeClock clock_;
  KeyFolder keys_ = NewKeys();
  TokenSigner issuer_{keys_.issuer, std::string(kDevelopmentIssuer)};
  TokenVerifier verifier_{Sources(keys_), VerifierOptions{"bot"}};
  WhoAmIService service_{&verifier_, &clock_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(AuthenticateCallTest, AcceptsAttachedToken) {
  std::string token = Mint("alice", Role::kSupervisor);
  Result result =
      Call([&](grpc::ClientContext& c) { AttachToken(c, token); });
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.subject, "alice");
  EXPECT_EQ(result.role, "supervisor");
}

TEST_F(AuthenticateCallTest, AppliesTheRpcsPolicy) {
  // bot.Answer: supervisors and the sessions service.
  const std::string sessions = Service("sessions");
  Result result = Call([&](grpc::ClientContext& c) { AttachToken(c, sessions); });
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.subject, "sessions");
  EXPECT_EQ(result.role, "service");

  const std::string routing = Service("routing");
  result = Call([&](grpc::ClientContext& c) { AttachToken(c, routing); });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(result.status.error_message(), "service routing may not call Answer");

  const std::string agent = Mint("ana", Role::kAgent);
  result = Call([&](grpc::ClientContext& c) { AttachToken(c, agent); });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(result.status.error_message(), "role agent may not call Answer");
  // bot.ListIntents admits agents.
  result = Call([&](grpc::ClientContext& c) { AttachToken(c, agent); }, "ListIntents");
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  // A method the service does not have is refused.
  result = Call([&](grpc::ClientContext& c) { AttachToken(c, agent); }, "Nope");
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthenticateCallTest, RejectsMissingToken) {
  Result result = Call([](grpc::ClientContext&) {});
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(result.status.error_message(), "missing authorization metadata");
}

TEST_F(AuthenticateCallTest, RejectsOtherSchemesAndBadTokens) {
  std::string token = Mint("alice", Role::kAgent);
  for (std::string header :
       {absl::StrCat("Basic ", token), token, std::string("Bearer garbage"),
        absl::StrCat("Bearer ", token, "x")}) {
    Result result = Call([&](grpc::ClientContext& c) {
      c.AddMetadata("authorization", header);
    });
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << header;
    EXPECT_TRUE(result.subject.empty());
  }
}

TEST_F(AuthenticateCallTest, RejectsTwoTokens) {
  std::string token = Mint("alice", Role::kAgent);
  Result result = Call([&](grpc::ClientContext& c) {
    AttachToken(c, token);
    AttachToken(c, Service("sessions"));
  });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthenticateCallTest, RejectsExpiredToken) {
  std::string token = Mint("alice", Role::kAgent);
  clock_.Advance(absl::Hours(2));
  Result result =
      Call([&](grpc::ClientContext& c) { AttachToken(c, token); });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(result.status.error_message(), "token expired");
}

}  // namespace
}  // namespace switchboard::auth
