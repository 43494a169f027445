// Two identity_server processes on one real PostgreSQL, as two replicas run
// behind a load balancer (one key folder and one identity key for both): a
// start retried on the other replica gets the same challenge, wrong codes
// sent to either count against one challenge, the code is accepted once,
// and every event reaches a relay's sink exactly once.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/events/read_json_lines.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/identity/v1/code_delivery.pb.h"
#include "switchboard/identity/v1/identity_service.grpc.pb.h"

namespace switchboard::identity {
namespace {

using auth::Role;

// A count in identity's tables (its own schema, libs/host).
int64_t Count(const std::string& uri, const std::string& sql) {
  return testing::CountInSchema(uri, "identity", sql);
}

constexpr char kBinary[] = "services/identity/identity_server";

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return context;
}

// The codes a replica handed to its development outbox, by challenge id.
std::map<std::string, std::string> Codes(const std::string& data_dir) {
  std::map<std::string, std::string> codes;
  const std::string text = testing::ReadFile(data_dir + "/DEVELOPMENT-ONLY-code-outbox.jsonl");
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StrContains(line, "DEVELOPMENT ONLY")) continue;
    v1::CodeDeliveryRequest request;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &request).ok());
    codes[request.challenge_id()] = request.code();
  }
  return codes;
}

TEST(ReplicasProcessTest, TwoReplicasOnOnePostgresCountEveryAttemptAndAcceptACodeOnce) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  testing::TestTokens tokens("identity");
  tokens.WriteFolder(dir + "/keys");

  auto replica = [&](const std::string& name, const std::vector<std::string>& more) {
    std::vector<std::string> flags = {
        "--data_dir=" + dir + "/" + name, "--keys_dir=" + dir + "/keys", "--database=" + uri,
        "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1", "--drain_deadline=3s"};
    flags.insert(flags.end(), more.begin(), more.end());
    return std::make_unique<testing::ServerProcess>(kBinary, flags, dir + "/" + name + ".log");
  };
  // A makes the identity key; B is given the same one, as replicas must be
  // (codes are hashed and secrets sealed with it).
  auto a = replica("a", {});
  ASSERT_GT(a->grpc_port(), 0) << a->log();
  auto b = replica("b", {"--identity_key_file=" + dir + "/a/identity.key"});
  ASSERT_GT(b->grpc_port(), 0) << b->log();
  auto stub_of = [](const testing::ServerProcess& server) {
    return v1::IdentityService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                            grpc::InsecureChannelCredentials()));
  };
  auto stub_a = stub_of(*a);
  auto stub_b = stub_of(*b);
  const std::string customer = tokens.For(Role::kCustomer, "cust-1");

  v1::RegisterContactRequest contact;
  contact.set_customer_id("cust-1");
  contact.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  contact.set_address("cust-1@example.com");
  v1::RegisterContactResponse registered;
  grpc::Status status = stub_b->RegisterContact(
      Context(tokens.For(Role::kService, "accounts")).get(), contact, &registered);
  ASSERT_TRUE(status.ok()) << status.error_message() << b->log();

  // Started on A, the client's retry on B: the same challenge, no second code.
  v1::StartVerificationRequest start;
  start.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  start.set_session_id("s-1");
  start.set_request_id("start-1");
  v1::StartVerificationResponse started, restarted;
  status = stub_a->StartVerification(Context(customer).get(), start, &started);
  ASSERT_TRUE(status.ok()) << status.error_message() << a->log();
  status = stub_b->StartVerification(Context(customer).get(), start, &restarted);
  ASSERT_TRUE(status.ok()) << status.error_message() << b->log();
  EXPECT_TRUE(restarted.replayed());
  EXPECT_EQ(restarted.challenge_id(), started.challenge_id());
  const std::string code = Codes(dir + "/a")[started.challenge_id()];
  ASSERT_EQ(code.size(), 6u);
  EXPECT_TRUE(Codes(dir + "/b").empty());

  // Wrong codes on B then A count against one challenge.
  const std::string wrong = code == "000000" ? "111111" : "000000";
  int expected_remaining = started.max_attempts();
  for (v1::IdentityService::Stub* stub : {stub_b.get(), stub_a.get(), stub_b.get()}) {
    v1::CompleteVerificationRequest complete;
    complete.set_challenge_id(started.challenge_id());
    complete.set_code(wrong);
    v1::CompleteVerificationResponse response;
    auto context = Context(customer);
    status = stub->CompleteVerification(context.get(), complete, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    const auto remaining = context->GetServerTrailingMetadata().find("attempts-remaining");
    ASSERT_NE(remaining, context->GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(remaining->second.data(), remaining->second.size()),
              absl::StrCat(--expected_remaining));
  }

  // The right code on A; its retry on B gets the same token id; a new
  // request on B finds the challenge used.
  v1::CompleteVerificationRequest complete;
  complete.set_challenge_id(started.challenge_id());
  complete.set_code(code);
  complete.set_request_id("done-1");
  v1::CompleteVerificationResponse completed, recompleted, again;
  status = stub_a->CompleteVerification(Context(customer).get(), complete, &completed);
  ASSERT_TRUE(status.ok()) << status.error_message() << a->log();
  status = stub_b->CompleteVerification(Context(customer).get(), complete, &recompleted);
  ASSERT_TRUE(status.ok()) << status.error_message() << b->log();
  EXPECT_TRUE(recompleted.replayed());
  EXPECT_EQ(recompleted.token_id(), completed.token_id());
  complete.set_request_id("done-2");
  status = stub_b->CompleteVerification(Context(customer).get(), complete, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();

  // Both stop cleanly (each relay flushes); the shared outbox is empty.
  EXPECT_EQ(a->Terminate(absl::Seconds(10)), 0) << a->log();
  EXPECT_EQ(b->Terminate(absl::Seconds(10)), 0) << b->log();
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM challenges"), 1);
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM outbox"), 0);

  // contact changed, started, 3 failed, succeeded, and the used challenge's
  // failure: each in exactly one replica's events file, once.
  std::map<std::string, int> published;  // event_id -> times
  std::map<std::string, int> types;       // type -> events
  for (const char* name : {"a", "b"}) {
    const std::string path = absl::StrCat(dir, "/", name, "/events/identity.jsonl");
    absl::StatusOr<std::vector<events::JsonLine>> lines = events::ReadJsonLines(path);
    if (absl::IsNotFound(lines.status())) continue;  // that replica's relay published none
    ASSERT_TRUE(lines.ok()) << lines.status();
    for (const events::JsonLine& line : *lines) {
      ++published[line.event.event_id()];
      ++types[line.event.type()];
    }
  }
  for (const auto& [event_id, times] : published) EXPECT_EQ(times, 1) << event_id;
  EXPECT_EQ(types, (std::map<std::string, int>{{"identity.contact_changed", 1},
                                               {"identity.verification_started", 1},
                                               {"identity.verification_failed", 4},
                                               {"identity.verification_succeeded", 1}}));
}

}  // namespace
}  // namespace switchboard::identity
