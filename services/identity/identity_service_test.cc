#include "services/identity/identity_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/verification_token.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/identity/sqlite_store.h"
#include "services/identity/totp.h"

namespace switchboard::identity {
namespace {

using auth::Role;
using common::v1::VERIFICATION_METHOD_EMAIL_OTP;
using common::v1::VERIFICATION_METHOD_SMS_OTP;
using common::v1::VERIFICATION_METHOD_TOTP;
using grpc::StatusCode;
using testing::ContextWithToken;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool IsHexOrDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Whether `code` occurs in `bytes` on its own, not as part of a longer run of
// digits or hex (timestamps in microseconds and hex ids are full of 6-digit
// runs, which would make a plain substring search flaky).
bool ContainsCode(const std::string& bytes, const std::string& code) {
  for (size_t at = bytes.find(code); at != std::string::npos;
       at = bytes.find(code, at + 1)) {
    const bool before = at > 0 && IsHexOrDigit(bytes[at - 1]);
    const bool after = at + code.size() < bytes.size() && IsHexOrDigit(bytes[at + code.size()]);
    if (!before && !after) return true;
  }
  return false;
}

std::string Base32Decode(absl::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    buffer = (buffer << 5) | (c >= 'A' && c <= 'Z' ? c - 'A' : c - '2' + 26);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

// The one value of trailer `key`; "" if there is none, "<N values>" if it
// came more than once.
std::string Trailer(const grpc::ClientContext& context, const std::string& key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  const size_t count = trailers.count(key);
  if (count == 0) return "";
  if (count > 1) return "<" + std::to_string(count) + " values>";
  const auto it = trailers.find(key);
  return std::string(it->second.data(), it->second.size());
}

// Identity as main() wires it, on a real SQLite file and the development code
// outbox, behind a real server.
class IdentityServiceTest : public ::testing::Test {
 protected:
  IdentityServiceTest()
      : dir_(storage::MakeTempDir()),
        db_(*storage::Database::Open({dir_ + "/identity.db"})) {
    clock_.Set(absl::Now());
    EXPECT_TRUE(db_->Migrate(IdentityMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteIdentityStore>(committer_.get(), dir_ + "/identity.db",
                                                   "switchboard.identity.v1", nullptr);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<IdentityMetrics>(*registry_);
    outbox_path_ = dir_ + "/" + DevelopmentCodeOutbox::kFileName;
    outbox_ = std::move(*DevelopmentCodeOutbox::Open(outbox_path_));
    identity_ = std::make_unique<Identity>(store_.get(), &clock_, metrics_.get(), &hasher_,
                                           &box_, &tokens_.verification_signer(), outbox_.get(),
                                           IdentityOptions());
    service_ = std::make_unique<IdentityService>(identity_.get(), &tokens_.verifier(),
                                                 RealClock(), &pool_);
    server_ = std::make_unique<testing::TestServer>(
        std::vector<grpc::Service*>{service_.get()}, registry_);
    stub_ = v1::IdentityService::NewStub(server_->channel());
  }

  ~IdentityServiceTest() override {
    server_.reset();
    pool_.Stop();
  }

  // A new logic and server over the same store, with these options.
  void Rebuild(IdentityOptions options, IdentityService::Options service_options) {
    server_.reset();
    service_.reset();
    identity_ = std::make_unique<Identity>(store_.get(), &clock_, metrics_.get(), &hasher_,
                                           &box_, &tokens_.verification_signer(), outbox_.get(),
                                           options);
    service_ = std::make_unique<IdentityService>(identity_.get(), &tokens_.verifier(),
                                                 RealClock(), &pool_, service_options);
    server_ = std::make_unique<testing::TestServer>(
        std::vector<grpc::Service*>{service_.get()}, registry_);
    stub_ = v1::IdentityService::NewStub(server_->channel());
  }

  // The code delivered for `challenge_id`.
  std::string CodeFor(const std::string& challenge_id) {
    for (const auto& delivered : Delivered()) {
      if (delivered.challenge_id() == challenge_id) return delivered.code();
    }
    return "";
  }

  std::string Customer(const std::string& id) { return tokens_.For(Role::kCustomer, id); }
  // The exchange's account system, the one service identity admits.
  std::string Accounts() { return tokens_.For(Role::kService, "accounts"); }
  std::string Sessions() { return tokens_.For(Role::kService, "sessions"); }
  std::string Supervisor() { return tokens_.For(Role::kSupervisor, "sup-1"); }
  std::string Agent() { return tokens_.For(Role::kAgent, "agent-1"); }

  grpc::Status Register(const std::string& customer, common::v1::VerificationMethod method,
                        const std::string& address) {
    v1::RegisterContactRequest request;
    request.set_customer_id(customer);
    request.set_method(method);
    request.set_address(address);
    v1::RegisterContactResponse response;
    return stub_->RegisterContact(ContextWithToken(Accounts()).get(), request, &response);
  }

  grpc::Status Start(const std::string& token, v1::StartVerificationRequest request,
                     v1::StartVerificationResponse* response,
                     grpc::ClientContext* context = nullptr) {
    auto own = ContextWithToken(token);
    return stub_->StartVerification(context ? context : own.get(), request, response);
  }

  // Every code the development outbox holds, oldest first.
  std::vector<v1::CodeDeliveryRequest> Delivered() {
    std::vector<v1::CodeDeliveryRequest> out;
    std::istringstream lines(ReadFile(outbox_path_));
    std::string line;
    std::getline(lines, line);
    EXPECT_EQ(line, DevelopmentCodeOutbox::kHeader);
    while (std::getline(lines, line)) {
      v1::CodeDeliveryRequest request;
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &request).ok()) << line;
      out.push_back(request);
    }
    return out;
  }

  // An email verification of `customer` through the API; returns the token.
  std::string VerifyByEmail(const std::string& customer) {
    EXPECT_TRUE(Register(customer, VERIFICATION_METHOD_EMAIL_OTP, customer + "@example.com")
                    .ok());
    v1::StartVerificationRequest start;
    start.set_method(VERIFICATION_METHOD_EMAIL_OTP);
    v1::StartVerificationResponse started;
    EXPECT_TRUE(Start(Customer(customer), start, &started).ok());
    v1::CompleteVerificationRequest complete;
    complete.set_challenge_id(started.challenge_id());
    complete.set_code(Delivered().back().code());
    v1::CompleteVerificationResponse completed;
    EXPECT_TRUE(stub_->CompleteVerification(ContextWithToken(Customer(customer)).get(),
                                            complete, &completed)
                    .ok());
    return completed.verification_token();
  }

  const std::string dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteIdentityStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<IdentityMetrics> metrics_;
  std::string outbox_path_;
  std::unique_ptr<DevelopmentCodeOutbox> outbox_;
  FakeClock clock_;
  testing::TestTokens tokens_{"identity"};
  CodeHasher hasher_{std::string(32, 'h')};
  SecretBox box_{std::string(32, 's')};
  server::BlockingPool pool_{4};
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<IdentityService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::IdentityService::Stub> stub_;
};

TEST_F(IdentityServiceTest, EmailVerificationEndToEndLeavesNoCodeInLogsOrDatabase) {
  // Everything the service logs during the flow goes to a file we scan.
  const std::string log_path = dir_ + "/stderr.log";
  const int saved_stderr = dup(STDERR_FILENO);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(log_fd, 0);
  dup2(log_fd, STDERR_FILENO);

  ASSERT_TRUE(Register("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "ana@example.com").ok());
  v1::StartVerificationRequest start;
  start.set_method(VERIFICATION_METHOD_EMAIL_OTP);
  start.set_session_id("sess-1");
  start.set_language("zh-CN");
  v1::StartVerificationResponse started;
  grpc::Status status = Start(Customer("cust-1"), start, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(started.method(), VERIFICATION_METHOD_EMAIL_OTP);
  EXPECT_EQ(started.max_attempts(), 5);
  EXPECT_LE(started.challenge_id().size(), 64u);
  EXPECT_EQ(started.expires_at().seconds() - started.resend_available_at().seconds(),
            5 * 60 - 30);

  std::vector<v1::CodeDeliveryRequest> delivered = Delivered();
  ASSERT_EQ(delivered.size(), 1u);
  const v1::CodeDeliveryRequest request = delivered[0];
  EXPECT_EQ(request.customer_id(), "cust-1");
  EXPECT_EQ(request.address(), "ana@example.com");
  EXPECT_EQ(request.language(), "zh-CN");
  EXPECT_EQ(request.challenge_id(), started.challenge_id());
  EXPECT_EQ(request.expires_at().seconds(), started.expires_at().seconds());
  std::vector<std::string> codes = {request.code()};

  // A wrong code says how many tries are left, in the trailer.
  v1::CompleteVerificationRequest complete;
  complete.set_challenge_id(started.challenge_id());
  complete.set_code(request.code() == "000000" ? "111111" : "000000");
  v1::CompleteVerificationResponse completed;
  auto wrong_context = ContextWithToken(Customer("cust-1"));
  status = stub_->CompleteVerification(wrong_context.get(), complete, &completed);
  EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Trailer(*wrong_context, "attempts-remaining"), "4");
  EXPECT_EQ(status.error_message().find(request.code()), std::string::npos);

  // Another customer cannot complete it: it does not exist for them.
  complete.set_code(request.code());
  status = stub_->CompleteVerification(ContextWithToken(Customer("cust-2")).get(), complete,
                                       &completed);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);

  status = stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                       &completed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(completed.customer_id(), "cust-1");
  EXPECT_EQ(completed.session_id(), "sess-1");
  EXPECT_EQ(completed.verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
  EXPECT_FALSE(completed.token_id().empty());
  const std::string token = completed.verification_token();

  // Reuse of the used code.
  status = stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                       &completed);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION);

  // Other services check the token.
  v1::ValidateTokenRequest validate;
  validate.set_verification_token(token);
  validate.set_customer_id("cust-1");
  validate.set_session_id("sess-1");
  validate.set_min_level(common::v1::VERIFICATION_LEVEL_BASIC);
  v1::ValidateTokenResponse validated;
  EXPECT_EQ(
      stub_->ValidateToken(ContextWithToken(Sessions()).get(), validate, &validated).error_code(),
      StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(
      stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate, &validated).ok());
  EXPECT_TRUE(validated.valid());
  EXPECT_EQ(validated.customer_id(), "cust-1");
  EXPECT_EQ(validated.token_id(), completed.token_id());
  EXPECT_EQ(validated.verification().method(), VERIFICATION_METHOD_EMAIL_OTP);
  validate.set_customer_id("cust-2");
  ASSERT_TRUE(
      stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate, &validated).ok());
  EXPECT_FALSE(validated.valid());
  EXPECT_EQ(validated.reason(), v1::INVALID_TOKEN_REASON_WRONG_CUSTOMER);
  validate.set_customer_id("");
  validate.set_min_level(common::v1::VERIFICATION_LEVEL_STRONG);
  ASSERT_TRUE(
      stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate, &validated).ok());
  EXPECT_EQ(validated.reason(), v1::INVALID_TOKEN_REASON_LEVEL_TOO_LOW);
  // Offline, against identity's public keys, as sessions does it.
  auto claims =
      auth::VerifyVerificationToken(*tokens_.VerifierFor("sessions"), token, absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->customer_id, "cust-1");

  // Starting again at once is rate limited, with retry-after.
  auto limited_context = ContextWithToken(Customer("cust-1"));
  status = Start("", start, &started, limited_context.get());
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Trailer(*limited_context, "retry-after"), "30");
  EXPECT_NE(status.error_message().find("retry after 30 s"), std::string::npos);

  // A few more codes to look for, over SMS too.
  ASSERT_TRUE(Register("cust-3", VERIFICATION_METHOD_SMS_OTP, "+8613800138000").ok());
  for (const char* customer : {"cust-2", "cust-3"}) {
    ASSERT_TRUE(Register(customer, VERIFICATION_METHOD_EMAIL_OTP, "x@example.com").ok());
    start.set_method(std::string(customer) == "cust-3" ? VERIFICATION_METHOD_SMS_OTP
                                                       : VERIFICATION_METHOD_EMAIL_OTP);
    ASSERT_TRUE(Start(Customer(customer), start, &started).ok());
    codes.push_back(Delivered().back().code());
  }

  const std::string metrics = server_->Metrics();
  EXPECT_NE(metrics.find("switchboard_identity_verifications_total{method=\"email_otp\","
                         "outcome=\"succeeded\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("switchboard_identity_rate_limited_total{call=\"start_verification\"}"
                         " 1"),
            std::string::npos);

  fflush(stderr);
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  close(log_fd);
  committer_->Stop();  // Everything on disk.
  const std::string logs = ReadFile(log_path);
  const std::string database =
      ReadFile(dir_ + "/identity.db") + ReadFile(dir_ + "/identity.db-wal");
  ASSERT_FALSE(database.empty());
  for (const std::string& code : codes) {
    EXPECT_FALSE(ContainsCode(logs, code)) << "a code is in the log";
    EXPECT_FALSE(ContainsCode(database, code)) << "a code is in the database";
    EXPECT_FALSE(ContainsCode(metrics, code)) << "a code is in the metrics";
  }
  EXPECT_EQ(logs.find(token), std::string::npos);
  EXPECT_EQ(database.find(token), std::string::npos);
}

TEST_F(IdentityServiceTest, EveryRpcAuthenticatesAndAuthorizes) {
  using Call = std::function<grpc::Status(grpc::ClientContext*)>;
  v1::StartVerificationRequest start;
  start.set_customer_id("cust-1");
  start.set_method(VERIFICATION_METHOD_EMAIL_OTP);
  v1::CompleteVerificationRequest complete;
  complete.set_challenge_id("chl_x");
  complete.set_code("123456");
  v1::ValidateTokenRequest validate;
  validate.set_verification_token("x.y.z");
  v1::RegisterContactRequest contact;
  contact.set_customer_id("cust-1");
  contact.set_method(VERIFICATION_METHOD_EMAIL_OTP);
  v1::StartTotpEnrollmentRequest enroll;
  enroll.set_customer_id("cust-1");
  v1::ConfirmTotpEnrollmentRequest confirm;
  confirm.set_enrollment_id("enr_x");
  confirm.set_code("123456");
  v1::ListAccountChangesRequest list_changes;
  list_changes.set_customer_id("cust-1");
  v1::ConfirmAccountChangeRequest confirm_change;
  confirm_change.set_change_id("chg_x");
  confirm_change.set_code("123456");
  v1::CancelAccountChangeRequest cancel_change;
  cancel_change.set_change_id("chg_x");
  const std::vector<std::pair<std::string, Call>> calls = {
      {"StartVerification",
       [&](grpc::ClientContext* c) {
         v1::StartVerificationResponse r;
         return stub_->StartVerification(c, start, &r);
       }},
      {"CompleteVerification",
       [&](grpc::ClientContext* c) {
         v1::CompleteVerificationResponse r;
         return stub_->CompleteVerification(c, complete, &r);
       }},
      {"ValidateToken",
       [&](grpc::ClientContext* c) {
         v1::ValidateTokenResponse r;
         return stub_->ValidateToken(c, validate, &r);
       }},
      {"RegisterContact",
       [&](grpc::ClientContext* c) {
         v1::RegisterContactResponse r;
         return stub_->RegisterContact(c, contact, &r);
       }},
      {"StartTotpEnrollment",
       [&](grpc::ClientContext* c) {
         v1::StartTotpEnrollmentResponse r;
         return stub_->StartTotpEnrollment(c, enroll, &r);
       }},
      {"ConfirmTotpEnrollment",
       [&](grpc::ClientContext* c) {
         v1::ConfirmTotpEnrollmentResponse r;
         return stub_->ConfirmTotpEnrollment(c, confirm, &r);
       }},
      {"ListAccountChanges",
       [&](grpc::ClientContext* c) {
         v1::ListAccountChangesResponse r;
         return stub_->ListAccountChanges(c, list_changes, &r);
       }},
      {"ConfirmAccountChange",
       [&](grpc::ClientContext* c) {
         v1::ConfirmAccountChangeResponse r;
         return stub_->ConfirmAccountChange(c, confirm_change, &r);
       }},
      {"CancelAccountChange",
       [&](grpc::ClientContext* c) {
         v1::CancelAccountChangeResponse r;
         return stub_->CancelAccountChange(c, cancel_change, &r);
       }},
  };
  const std::string verification = VerifyByEmail("cust-9");
  const std::string expired = tokens_.Access(
      {"cust-1", Role::kCustomer, absl::Now() - absl::Seconds(1)}, absl::Now() - absl::Hours(1));
  const std::string foreign = testing::TestTokens("identity").For(Role::kCustomer, "cust-1");
  for (const auto& [name, call] : calls) {
    for (const std::string& token : {std::string(), std::string("garbage"), verification,
                                     foreign, expired}) {
      EXPECT_EQ(call(ContextWithToken(token).get()).error_code(), StatusCode::UNAUTHENTICATED)
          << name;
    }
    grpc::Status agent = call(ContextWithToken(Agent()).get());
    EXPECT_EQ(agent.error_code(), StatusCode::PERMISSION_DENIED) << name;
    EXPECT_NE(agent.error_message().find(name), std::string::npos) << agent.error_message();
  }
  // Customers may not validate tokens or set contacts.
  EXPECT_EQ(calls[2].second(ContextWithToken(Customer("cust-1")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(calls[3].second(ContextWithToken(Customer("cust-1")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  // Supervisors do not start verifications for customers.
  EXPECT_EQ(calls[0].second(ContextWithToken(Supervisor()).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  // Customers act for themselves only.
  EXPECT_EQ(calls[0].second(ContextWithToken(Customer("cust-2")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(calls[4].second(ContextWithToken(Customer("cust-2")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  // Of the services, only the account system calls identity, and only to
  // set contacts.
  for (const auto& [name, call] : calls) {
    EXPECT_EQ(call(ContextWithToken(Sessions()).get()).error_code(),
              StatusCode::PERMISSION_DENIED)
        << name;
    if (name != "RegisterContact") {
      EXPECT_EQ(call(ContextWithToken(Accounts()).get()).error_code(),
                StatusCode::PERMISSION_DENIED)
          << name;
    }
  }
  EXPECT_EQ(calls[6].second(ContextWithToken(Customer("cust-2")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  // An unknown change is NOT_FOUND for everyone allowed to ask.
  for (const std::string& token : {Customer("cust-1"), Supervisor()}) {
    EXPECT_EQ(calls[7].second(ContextWithToken(token).get()).error_code(), StatusCode::NOT_FOUND);
    EXPECT_EQ(calls[8].second(ContextWithToken(token).get()).error_code(), StatusCode::NOT_FOUND);
  }
  // Supervisors name the customer.
  list_changes.clear_customer_id();
  grpc::Status unnamed = calls[6].second(ContextWithToken(Supervisor()).get());
  EXPECT_EQ(unnamed.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unnamed.error_message().find("customer_id"), std::string::npos);
  list_changes.set_customer_id("cust-1");
  EXPECT_TRUE(calls[6].second(ContextWithToken(Supervisor()).get()).ok());

  // A customer's enrollment needs their own verification token.
  enroll.clear_customer_id();
  EXPECT_EQ(calls[4].second(ContextWithToken(Customer("cust-1")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  enroll.set_verification_token(verification);  // cust-9's
  grpc::Status foreign_proof = calls[4].second(ContextWithToken(Customer("cust-1")).get());
  EXPECT_EQ(foreign_proof.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_NE(foreign_proof.error_message().find("verification_token"), std::string::npos);
  enroll.set_verification_token(Customer("cust-1"));  // an access token
  EXPECT_EQ(calls[4].second(ContextWithToken(Customer("cust-1")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
  std::string tampered = verification;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  enroll.set_verification_token(tampered);
  EXPECT_EQ(calls[4].second(ContextWithToken(Customer("cust-9")).get()).error_code(),
            StatusCode::PERMISSION_DENIED);
}

TEST_F(IdentityServiceTest, AnAddressFailingForSeveralCustomersIsLockedOutForAll) {
  IdentityOptions options;
  options.source_lockout_failures = 3;
  Rebuild(options, {"x-client-address"});
  for (const char* customer : {"c1", "c2", "c3"}) {
    ASSERT_TRUE(Register(customer, VERIFICATION_METHOD_EMAIL_OTP,
                         absl::StrCat(customer, "@example.com"))
                    .ok());
  }
  // As the proxy in front of identity names the client.
  const auto from = [&](const std::string& token, const std::string& address) {
    auto context = ContextWithToken(token);
    if (!address.empty()) context->AddMetadata("x-client-address", address);
    return context;
  };
  const auto start = [&](const std::string& token, const std::string& address) {
    v1::StartVerificationRequest request;
    request.set_method(VERIFICATION_METHOD_EMAIL_OTP);
    v1::StartVerificationResponse response;
    grpc::Status status =
        stub_->StartVerification(from(token, address).get(), request, &response);
    return std::make_pair(status, response.challenge_id());
  };
  const auto wrong = [&](const std::string& token, const std::string& address,
                         const std::string& challenge_id, grpc::ClientContext* context) {
    v1::CompleteVerificationRequest request;
    request.set_challenge_id(challenge_id);
    const std::string code = CodeFor(challenge_id);
    request.set_code(code == "000000" ? "000001" : "000000");
    v1::CompleteVerificationResponse response;
    if (!address.empty()) context->AddMetadata("x-client-address", address);
    auth::AttachToken(*context, token);
    return stub_->CompleteVerification(context, request, &response);
  };
  const std::string attacker = "203.0.113.7";
  auto [c1_started, c1_challenge] = start(Customer("c1"), attacker);
  ASSERT_TRUE(c1_started.ok()) << c1_started.error_message();
  auto [c2_started, c2_challenge] = start(Customer("c2"), attacker);
  ASSERT_TRUE(c2_started.ok()) << c2_started.error_message();
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    EXPECT_EQ(wrong(Customer("c1"), attacker, c1_challenge, &context).error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  grpc::ClientContext third;
  grpc::Status locked = wrong(Customer("c2"), attacker, c2_challenge, &third);
  EXPECT_EQ(locked.error_code(), StatusCode::RESOURCE_EXHAUSTED) << locked.error_message();
  EXPECT_EQ(Trailer(third, "retry-after"), "1800");
  // Every customer from that address is refused; from elsewhere, or from
  // the connection's own address without the header, they are not.
  EXPECT_EQ(start(Customer("c3"), attacker).first.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(start(Customer("c3"), "198.51.100.1").first.ok());
  clock_.Advance(absl::Seconds(31));
  EXPECT_TRUE(start(Customer("c3"), "").first.ok());
}

TEST_F(IdentityServiceTest, ASupervisorsContactChangeWaitsForTheCustomerThroughTheApi) {
  ASSERT_TRUE(Register("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "ana@example.com").ok());
  const auto request_change = [&](const std::string& address) {
    v1::RegisterContactRequest request;
    request.set_customer_id("cust-1");
    request.set_method(VERIFICATION_METHOD_EMAIL_OTP);
    request.set_address(address);
    request.set_language("zh-CN");
    v1::RegisterContactResponse response;
    grpc::Status status =
        stub_->RegisterContact(ContextWithToken(Supervisor()).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  };
  const v1::RegisterContactResponse asked = request_change("other@example.com");
  ASSERT_TRUE(asked.has_pending_change());
  const v1::AccountChange& change = asked.pending_change();
  EXPECT_TRUE(asked.replaced());
  EXPECT_EQ(change.state(), v1::ACCOUNT_CHANGE_STATE_PENDING);
  EXPECT_EQ(change.requested_by(), "sup-1");
  ASSERT_EQ(change.notified_size(), 1);
  EXPECT_EQ(change.notified(0), VERIFICATION_METHOD_EMAIL_OTP);
  // The notice went to the old address, through the development outbox.
  const v1::CodeDeliveryRequest notice = Delivered().back();
  EXPECT_EQ(notice.purpose(), v1::DELIVERY_PURPOSE_ACCOUNT_CHANGE_NOTICE);
  EXPECT_EQ(notice.address(), "ana@example.com");
  EXPECT_EQ(notice.account_change().change_id(), change.change_id());
  EXPECT_EQ(notice.language(), "zh-CN");

  // The customer sees it, without staff names; other customers do not.
  v1::ListAccountChangesResponse listed;
  ASSERT_TRUE(stub_->ListAccountChanges(ContextWithToken(Customer("cust-1")).get(), {}, &listed)
                  .ok());
  ASSERT_EQ(listed.changes_size(), 1);
  EXPECT_EQ(listed.changes(0).change_id(), change.change_id());
  EXPECT_TRUE(listed.changes(0).requested_by().empty());
  v1::ConfirmAccountChangeRequest confirm;
  confirm.set_change_id(change.change_id());
  confirm.set_code(notice.code());
  v1::ConfirmAccountChangeResponse confirmed;
  EXPECT_EQ(stub_->ConfirmAccountChange(ContextWithToken(Customer("cust-2")).get(), confirm,
                                        &confirmed)
                .error_code(),
            StatusCode::NOT_FOUND);
  // Staff need the code; a customer's proof must be their own.
  v1::ConfirmAccountChangeRequest no_code = confirm;
  no_code.clear_code();
  EXPECT_EQ(stub_->ConfirmAccountChange(ContextWithToken(Supervisor()).get(), no_code, &confirmed)
                .error_code(),
            StatusCode::INVALID_ARGUMENT);
  no_code.set_verification_token(VerifyByEmail("cust-9"));
  EXPECT_EQ(stub_->ConfirmAccountChange(ContextWithToken(Customer("cust-1")).get(), no_code,
                                        &confirmed)
                .error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::ConfirmAccountChangeRequest wrong = confirm;
  wrong.set_code(notice.code() == "000000" ? "000001" : "000000");
  grpc::ClientContext wrong_context;
  auth::AttachToken(wrong_context, Customer("cust-1"));
  EXPECT_EQ(stub_->ConfirmAccountChange(&wrong_context, wrong, &confirmed).error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Trailer(wrong_context, "attempts-remaining"), "4");
  // Nothing changed so far.
  v1::StartVerificationRequest start;
  start.set_method(VERIFICATION_METHOD_EMAIL_OTP);
  v1::StartVerificationResponse started;
  ASSERT_TRUE(Start(Customer("cust-1"), start, &started).ok());
  EXPECT_EQ(Delivered().back().address(), "ana@example.com");
  // The customer confirms with the code: in effect at once.
  grpc::Status status =
      stub_->ConfirmAccountChange(ContextWithToken(Customer("cust-1")).get(), confirm, &confirmed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(confirmed.change().state(), v1::ACCOUNT_CHANGE_STATE_APPLIED);
  EXPECT_EQ(confirmed.change().resolution(),
            v1::ACCOUNT_CHANGE_RESOLUTION_CONFIRMED_BY_CUSTOMER);
  EXPECT_EQ(confirmed.change().resolved_by(), "cust-1");
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(Start(Customer("cust-1"), start, &started).ok());
  EXPECT_EQ(Delivered().back().address(), "other@example.com");

  // The next one the customer cancels.
  const v1::RegisterContactResponse again = request_change("third@example.com");
  v1::CancelAccountChangeRequest cancel;
  cancel.set_change_id(again.pending_change().change_id());
  v1::CancelAccountChangeResponse cancelled;
  ASSERT_TRUE(
      stub_->CancelAccountChange(ContextWithToken(Customer("cust-1")).get(), cancel, &cancelled)
          .ok());
  EXPECT_EQ(cancelled.change().state(), v1::ACCOUNT_CHANGE_STATE_CANCELLED);
  v1::ListAccountChangesRequest for_cust_1;
  for_cust_1.set_customer_id("cust-1");
  ASSERT_TRUE(
      stub_->ListAccountChanges(ContextWithToken(Supervisor()).get(), for_cust_1, &listed).ok());
  ASSERT_EQ(listed.changes_size(), 2);
  EXPECT_EQ(listed.changes(0).resolution(),
            v1::ACCOUNT_CHANGE_RESOLUTION_CANCELLED_BY_CUSTOMER);
  EXPECT_EQ(listed.changes(0).requested_by(), "sup-1");
}

TEST_F(IdentityServiceTest, TotpEnrollmentAndVerificationThroughTheApi) {
  const std::string basic = VerifyByEmail("cust-1");
  v1::StartTotpEnrollmentRequest enroll;
  enroll.set_verification_token(basic);
  enroll.set_account_label("ana@example.com");
  v1::StartTotpEnrollmentResponse enrollment;
  grpc::Status status = stub_->StartTotpEnrollment(ContextWithToken(Customer("cust-1")).get(),
                                                   enroll, &enrollment);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(enrollment.digits(), 6);
  EXPECT_EQ(enrollment.period().seconds(), 30);
  EXPECT_EQ(enrollment.secret_base32().size(), 32u);
  EXPECT_NE(enrollment.otpauth_uri().find("Switchboard:ana%40example.com?secret="),
            std::string::npos);
  const std::string secret = Base32Decode(enrollment.secret_base32());

  v1::ConfirmTotpEnrollmentRequest confirm;
  confirm.set_enrollment_id(enrollment.enrollment_id());
  confirm.set_code(Hotp(secret, TotpStep(clock_.Now()), 6));
  v1::ConfirmTotpEnrollmentResponse confirmed;
  EXPECT_EQ(stub_->ConfirmTotpEnrollment(ContextWithToken(Customer("cust-2")).get(), confirm,
                                         &confirmed)
                .error_code(),
            StatusCode::NOT_FOUND);
  status = stub_->ConfirmTotpEnrollment(ContextWithToken(Customer("cust-1")).get(), confirm,
                                        &confirmed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(confirmed.replaced());

  clock_.Advance(absl::Seconds(31));
  v1::StartVerificationRequest start;
  start.set_method(VERIFICATION_METHOD_TOTP);
  v1::StartVerificationResponse started;
  ASSERT_TRUE(Start(Customer("cust-1"), start, &started).ok());
  v1::CompleteVerificationRequest complete;
  complete.set_challenge_id(started.challenge_id());
  complete.set_code(Hotp(secret, TotpStep(clock_.Now()), 6));
  v1::CompleteVerificationResponse completed;
  status = stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                       &completed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(completed.verification().level(), common::v1::VERIFICATION_LEVEL_STRONG);
  EXPECT_EQ(completed.verification().method(), VERIFICATION_METHOD_TOTP);

  // Replacing the authenticator needs the STRONG token, not the BASIC one.
  status = stub_->StartTotpEnrollment(ContextWithToken(Customer("cust-1")).get(), enroll,
                                      &enrollment);
  EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED);
  enroll.set_verification_token(completed.verification_token());
  status = stub_->StartTotpEnrollment(ContextWithToken(Customer("cust-1")).get(), enroll,
                                      &enrollment);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(IdentityServiceTest, BadInputIsInvalidArgumentNamingTheField) {
  auto field = [](const grpc::Status& s) {
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << s.error_message();
    return s.error_message().substr(0, s.error_message().find(':'));
  };
  v1::StartVerificationRequest start;
  v1::StartVerificationResponse started;
  EXPECT_EQ(field(Start(Customer("cust-1"), start, &started)), "method");
  start.set_method(static_cast<common::v1::VerificationMethod>(42));
  EXPECT_EQ(field(Start(Customer("cust-1"), start, &started)), "method");
  start.set_method(VERIFICATION_METHOD_SMS_OTP);
  start.set_session_id("no spaces allowed");
  EXPECT_EQ(field(Start(Customer("cust-1"), start, &started)), "session_id");
  start.set_session_id("");
  start.set_language("de");
  EXPECT_EQ(field(Start(Customer("cust-1"), start, &started)), "language");

  v1::CompleteVerificationRequest complete;
  v1::CompleteVerificationResponse completed;
  complete.set_code("123456");
  EXPECT_EQ(field(stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(),
                                              complete, &completed)),
            "challenge_id");
  complete.set_challenge_id("chl_x");
  for (const char* code : {"", "12345", "1234567", "abcdef", "12345\xd9"}) {
    complete.set_code(code);
    grpc::Status s = stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(),
                                                 complete, &completed);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << code;
  }

  v1::ValidateTokenRequest validate;
  v1::ValidateTokenResponse validated;
  EXPECT_EQ(field(stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate,
                                       &validated)),
            "verification_token");
  validate.set_verification_token(std::string(8 * 1024 + 1, 'a'));
  EXPECT_EQ(field(stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate,
                                       &validated)),
            "verification_token");
  validate.set_verification_token("a.b.c");
  validate.set_min_level(static_cast<common::v1::VerificationLevel>(7));
  EXPECT_EQ(field(stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate,
                                       &validated)),
            "min_level");
  validate.set_min_level(common::v1::VERIFICATION_LEVEL_UNSPECIFIED);
  ASSERT_TRUE(
      stub_->ValidateToken(ContextWithToken(Supervisor()).get(), validate, &validated).ok());
  EXPECT_FALSE(validated.valid());
  EXPECT_EQ(validated.reason(), v1::INVALID_TOKEN_REASON_MALFORMED);

  EXPECT_EQ(field(Register("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "not-an-email")),
            "address");
  EXPECT_EQ(field(Register("cust-1", VERIFICATION_METHOD_SMS_OTP, "12345")), "address");
  EXPECT_EQ(field(Register("cust-1", VERIFICATION_METHOD_TOTP, "")), "method");
  EXPECT_EQ(field(Register("", VERIFICATION_METHOD_SMS_OTP, "")), "customer_id");

  v1::StartTotpEnrollmentRequest enroll;
  enroll.set_customer_id("cust-1");
  enroll.set_account_label(std::string(65, 'x'));
  v1::StartTotpEnrollmentResponse enrollment;
  EXPECT_EQ(field(stub_->StartTotpEnrollment(ContextWithToken(Supervisor()).get(), enroll,
                                             &enrollment)),
            "account_label");
  v1::ConfirmTotpEnrollmentRequest confirm;
  confirm.set_code("123456");
  v1::ConfirmTotpEnrollmentResponse confirmed;
  EXPECT_EQ(field(stub_->ConfirmTotpEnrollment(ContextWithToken(Supervisor()).get(), confirm,
                                               &confirmed)),
            "enrollment_id");
  confirm.set_enrollment_id("enr_unknown");
  EXPECT_EQ(stub_->ConfirmTotpEnrollment(ContextWithToken(Supervisor()).get(), confirm,
                                         &confirmed)
                .error_code(),
            StatusCode::NOT_FOUND);
}

TEST_F(IdentityServiceTest, RetriesWithARequestIdGetTheFirstAnswerThroughTheApi) {
  ASSERT_TRUE(Register("cust-1", VERIFICATION_METHOD_EMAIL_OTP, "ana@example.com").ok());
  v1::StartVerificationRequest start;
  start.set_method(VERIFICATION_METHOD_EMAIL_OTP);
  start.set_request_id("start-1");
  v1::StartVerificationResponse first, retry;
  ASSERT_TRUE(Start(Customer("cust-1"), start, &first).ok());
  ASSERT_TRUE(Start(Customer("cust-1"), start, &retry).ok()) << "not rate limited: a retry";
  EXPECT_FALSE(first.replayed());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.challenge_id(), first.challenge_id());
  EXPECT_EQ(Delivered().size(), 1u);

  v1::CompleteVerificationRequest complete;
  complete.set_challenge_id(first.challenge_id());
  complete.set_code(Delivered().back().code());
  complete.set_request_id("complete-1");
  v1::CompleteVerificationResponse completed, completed_again;
  ASSERT_TRUE(stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                          &completed)
                  .ok());
  ASSERT_TRUE(stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                          &completed_again)
                  .ok());
  EXPECT_TRUE(completed_again.replayed());
  // The same verification: same token id, times and level (an ECDSA
  // signature differs on every signing, so the text may too).
  EXPECT_EQ(completed_again.token_id(), completed.token_id());
  EXPECT_EQ(completed_again.verification().SerializeAsString(),
            completed.verification().SerializeAsString());
  auto again = auth::VerifyVerificationToken(tokens_.verifier(),
                                             completed_again.verification_token(), absl::Now());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->token_id, completed.token_id());

  complete.set_request_id("bad key");
  v1::CompleteVerificationResponse refused;
  EXPECT_EQ(stub_->CompleteVerification(ContextWithToken(Customer("cust-1")).get(), complete,
                                        &refused)
                .error_code(),
            StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace switchboard::identity
