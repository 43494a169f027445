// The identity binary as operators run it locally: started as a process with
// a fresh data folder (codes go to the development outbox file), health-
// checked, a customer verified by email code, stopped with SIGTERM,
// restarted; and a supervisor's contact change waiting out its cool-down
// across a restart.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/identity/v1/code_delivery.pb.h"
#include "switchboard/identity/v1/identity_service.grpc.pb.h"

namespace switchboard {
namespace {

using identity::v1::IdentityService;

constexpr char kBinary[] = "services/identity/identity_server";
constexpr char kCustomer[] = "cust-1";
constexpr char kEmail[] = "cust-1@example.com";

// True when `code` occurs in `text` as a whole run of digits (so a code
// cannot hide inside a log line, and a longer number such as a timestamp's
// fraction is no false alarm).
bool ContainsDigitRun(const std::string& text, const std::string& code) {
  for (size_t at = text.find(code); at != std::string::npos; at = text.find(code, at + 1)) {
    const bool digit_before = at > 0 && std::isdigit(static_cast<unsigned char>(text[at - 1]));
    const size_t end = at + code.size();
    const bool digit_after =
        end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]));
    if (!digit_before && !digit_after) return true;
  }
  return false;
}

class IdentityProcessTest : public ::testing::Test {
 protected:
  IdentityProcessTest() : data_dir_(storage::MakeTempDir()) {}

  std::vector<std::string> Flags() const {
    return {"--data_dir=" + data_dir_, "--port=0", "--metrics_port=0",
            "--bind_address=127.0.0.1", "--drain_deadline=3s"};
  }

  std::unique_ptr<IdentityService::Stub> Connect(const testing::ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return IdentityService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "identity").For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  void ExpectServing() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest check;
    check.set_service("switchboard.identity.v1.IdentityService");
    grpc::health::v1::HealthCheckResponse serving;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, check, &serving).ok());
    EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  // Every delivery request in the development code outbox, oldest first.
  std::vector<identity::v1::CodeDeliveryRequest> Delivered() {
    std::vector<identity::v1::CodeDeliveryRequest> out;
    const std::string text =
        testing::ReadFile(data_dir_ + "/DEVELOPMENT-ONLY-code-outbox.jsonl");
    bool header = true;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      if (header) {  // the "development only" warning
        EXPECT_TRUE(absl::StrContains(line, "DEVELOPMENT ONLY")) << line;
        header = false;
        continue;
      }
      identity::v1::CodeDeliveryRequest request;
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &request).ok())
          << line;
      out.push_back(request);
    }
    return out;
  }

  identity::v1::ValidateTokenResponse Validate(IdentityService::Stub& stub,
                                               const std::string& verification_token) {
    identity::v1::ValidateTokenRequest request;
    request.set_verification_token(verification_token);
    request.set_customer_id(kCustomer);
    request.set_session_id("s-1");
    request.set_min_level(common::v1::VERIFICATION_LEVEL_BASIC);
    identity::v1::ValidateTokenResponse response;
    EXPECT_TRUE(
        stub.ValidateToken(Context(Token(auth::Role::kSupervisor, "sup-1")).get(), request,
                           &response)
            .ok());
    return response;
  }

  grpc::Status Complete(IdentityService::Stub& stub, const std::string& challenge_id,
                        const std::string& code,
                        identity::v1::CompleteVerificationResponse* response,
                        grpc::ClientContext* context = nullptr) {
    identity::v1::CompleteVerificationRequest request;
    request.set_challenge_id(challenge_id);
    request.set_code(code);
    auto own = Context(Token(auth::Role::kCustomer, kCustomer));
    return stub.CompleteVerification(context ? context : own.get(), request, response);
  }

  // Scrapes until `needle` shows up (a call is counted when the server sees
  // it close), up to 5 s.
  std::string MetricsWith(const testing::ServerProcess& server, const std::string& needle) {
    std::string metrics;
    for (int i = 0; i < 100 && !absl::StrContains(metrics, needle); ++i) {
      metrics = metrics::ScrapeMetrics("127.0.0.1", server.metrics_port()).value_or("");
      usleep(50'000);
    }
    return metrics;
  }

  std::string data_dir_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(IdentityProcessTest, VerifiesByEmailCodeAndTheTokenOutlivesARestart) {
  std::string challenge_id;
  std::string code;
  std::string verification_token;
  {
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);
    ExpectServing();

    identity::v1::RegisterContactRequest contact;
    contact.set_customer_id(kCustomer);
    contact.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    contact.set_address(kEmail);
    identity::v1::RegisterContactResponse registered;
    ASSERT_TRUE(stub->RegisterContact(Context(Token(auth::Role::kService, "accounts")).get(),
                                      contact, &registered)
                    .ok());
    EXPECT_FALSE(registered.replaced());

    identity::v1::StartVerificationRequest start;
    start.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    start.set_session_id("s-1");
    identity::v1::StartVerificationResponse started;
    ASSERT_TRUE(stub->StartVerification(Context(Token(auth::Role::kCustomer, kCustomer)).get(),
                                        start, &started)
                    .ok());
    challenge_id = started.challenge_id();
    ASSERT_FALSE(challenge_id.empty());

    // The code went to the registered address through the development outbox.
    std::vector<identity::v1::CodeDeliveryRequest> delivered = Delivered();
    ASSERT_EQ(delivered.size(), 1u);
    EXPECT_EQ(delivered[0].customer_id(), kCustomer);
    EXPECT_EQ(delivered[0].address(), kEmail);
    EXPECT_EQ(delivered[0].challenge_id(), challenge_id);
    code = delivered[0].code();
    ASSERT_EQ(code.size(), 6u);

    identity::v1::CompleteVerificationResponse completed;
    grpc::ClientContext wrong_context;
    auth::AttachToken(wrong_context, Token(auth::Role::kCustomer, kCustomer));
    grpc::Status wrong =
        Complete(*stub, challenge_id, code == "000000" ? "111111" : "000000", &completed,
                 &wrong_context);
    EXPECT_EQ(wrong.error_code(), grpc::StatusCode::PERMISSION_DENIED) << wrong.error_message();
    const auto remaining = wrong_context.GetServerTrailingMetadata().find("attempts-remaining");
    ASSERT_NE(remaining, wrong_context.GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(remaining->second.data(), remaining->second.size()),
              absl::StrCat(started.max_attempts() - 1));

    grpc::Status right = Complete(*stub, challenge_id, code, &completed);
    ASSERT_TRUE(right.ok()) << right.error_message();
    verification_token = completed.verification_token();
    ASSERT_FALSE(verification_token.empty());
    EXPECT_EQ(completed.customer_id(), kCustomer);
    EXPECT_EQ(completed.session_id(), "s-1");
    EXPECT_EQ(completed.verification().method(), common::v1::VERIFICATION_METHOD_EMAIL_OTP);

    identity::v1::ValidateTokenResponse validated = Validate(*stub, verification_token);
    EXPECT_TRUE(validated.valid()) << validated.ShortDebugString();
    EXPECT_EQ(validated.token_id(), completed.token_id());

    const std::string handled =
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"ValidateToken\","
        "grpc_service=\"switchboard.identity.v1.IdentityService\",grpc_type=\"unary\"} 1";
    const std::string metrics = MetricsWith(server, handled);
    EXPECT_TRUE(absl::StrContains(metrics, handled)) << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics, "switchboard_identity_challenges_started_total{method=\"email_otp\"} 1"))
        << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics,
        "switchboard_identity_verifications_total{method=\"email_otp\",outcome=\"succeeded\"} "
        "1"));
    EXPECT_TRUE(absl::StrContains(
        metrics,
        "switchboard_identity_verifications_total{method=\"email_otp\",outcome=\"wrong_code\"} "
        "1"));

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
  }

  // Every state change reached the event file before the process exited,
  // without the code, the token or the address.
  const std::string events = testing::ReadFile(data_dir_ + "/events/identity.jsonl");
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.contact_changed\"")) << events;
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.verification_started\""));
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.verification_failed\""));
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.verification_succeeded\""));
  EXPECT_FALSE(ContainsDigitRun(events, code)) << events;
  EXPECT_FALSE(absl::StrContains(events, verification_token));
  EXPECT_FALSE(absl::StrContains(events, kEmail));

  testing::ServerProcess restarted(kBinary, Flags(), data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
  auto stub = Connect(restarted);
  ExpectServing();
  // Signed with the shared key: still valid after the restart.
  identity::v1::ValidateTokenResponse validated = Validate(*stub, verification_token);
  EXPECT_TRUE(validated.valid()) << validated.ShortDebugString();
  EXPECT_EQ(validated.customer_id(), kCustomer);
  // The challenge was used up durably: its code cannot be used again.
  identity::v1::CompleteVerificationResponse reused;
  grpc::Status status = Complete(*stub, challenge_id, code, &reused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_TRUE(reused.verification_token().empty());
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0) << restarted.log();

  // Neither run logged the code or the token (the scan does find the code
  // where it is: in the development outbox).
  ASSERT_TRUE(ContainsDigitRun(
      testing::ReadFile(data_dir_ + "/DEVELOPMENT-ONLY-code-outbox.jsonl"), code));
  for (const char* log : {"/first.log", "/second.log"}) {
    const std::string text = testing::ReadFile(data_dir_ + log);
    EXPECT_FALSE(text.empty()) << log;
    EXPECT_FALSE(ContainsDigitRun(text, code)) << log << ":\n" << text;
    EXPECT_FALSE(absl::StrContains(text, verification_token)) << log;
  }
}

TEST_F(IdentityProcessTest, ASupervisorsContactChangeWaitsOutItsCooldownAcrossARestart) {
  std::vector<std::string> flags = Flags();
  flags.insert(flags.end(), {"--account_change_cooldown=4s", "--sweep_interval=200ms"});
  std::string change_id;
  {
    testing::ServerProcess server(kBinary, flags, data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);
    identity::v1::RegisterContactRequest contact;
    contact.set_customer_id(kCustomer);
    contact.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    contact.set_address(kEmail);
    identity::v1::RegisterContactResponse registered;
    ASSERT_TRUE(stub->RegisterContact(Context(Token(auth::Role::kService, "accounts")).get(),
                                      contact, &registered)
                    .ok());
    contact.set_address("someone-else@example.com");
    grpc::Status asked = stub->RegisterContact(
        Context(Token(auth::Role::kSupervisor, "sup-1")).get(), contact, &registered);
    ASSERT_TRUE(asked.ok()) << asked.error_message();
    ASSERT_TRUE(registered.has_pending_change());
    change_id = registered.pending_change().change_id();
    // The customer's own address got the notice.
    std::vector<identity::v1::CodeDeliveryRequest> delivered = Delivered();
    ASSERT_EQ(delivered.size(), 1u);
    EXPECT_EQ(delivered[0].address(), kEmail);
    EXPECT_EQ(delivered[0].purpose(), identity::v1::DELIVERY_PURPOSE_ACCOUNT_CHANGE_NOTICE);
    EXPECT_EQ(delivered[0].account_change().change_id(), change_id);
    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
  }
  // Restarted before the cool-down ends: the change is still pending, and
  // applies by itself once it has.
  testing::ServerProcess restarted(kBinary, flags, data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
  auto stub = Connect(restarted);
  identity::v1::ListAccountChangesRequest list;
  list.set_customer_id(kCustomer);
  identity::v1::AccountChangeState state = identity::v1::ACCOUNT_CHANGE_STATE_UNSPECIFIED;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(30);
       state != identity::v1::ACCOUNT_CHANGE_STATE_APPLIED && absl::Now() < give_up;) {
    identity::v1::ListAccountChangesResponse listed;
    ASSERT_TRUE(stub->ListAccountChanges(Context(Token(auth::Role::kSupervisor, "sup-1")).get(),
                                         list, &listed)
                    .ok());
    ASSERT_EQ(listed.changes_size(), 1);
    state = listed.changes(0).state();
    if (state != identity::v1::ACCOUNT_CHANGE_STATE_APPLIED) usleep(100'000);
  }
  ASSERT_EQ(state, identity::v1::ACCOUNT_CHANGE_STATE_APPLIED);
  identity::v1::StartVerificationRequest start;
  start.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  identity::v1::StartVerificationResponse started;
  ASSERT_TRUE(stub->StartVerification(Context(Token(auth::Role::kCustomer, kCustomer)).get(),
                                      start, &started)
                  .ok());
  EXPECT_EQ(Delivered().back().address(), "someone-else@example.com");
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0) << restarted.log();
  // Each step is an event naming the supervisor, without the addresses.
  const std::string events = testing::ReadFile(data_dir_ + "/events/identity.jsonl");
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.account_change_requested\""))
      << events;
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"identity.account_change_applied\""));
  EXPECT_TRUE(absl::StrContains(events, "\"requestedBy\":\"sup-1\"") ||
              absl::StrContains(events, "\"requested_by\":\"sup-1\""))
      << events;
  EXPECT_FALSE(absl::StrContains(events, "someone-else@example.com"));
  EXPECT_FALSE(absl::StrContains(events, kEmail));
}

}  // namespace
}  // namespace switchboard
