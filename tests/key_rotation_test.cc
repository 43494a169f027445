// Keys rotate on a running service, as the README's "Rotating keys" says: a
// key added to a JWKS file is accepted, and a key removed from it refused,
// within the refresh interval, with no restart. Presence runs as a process
// on a key folder; the test rewrites its access and service key sets the
// way an operator would (a complete file renamed over the old one).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/keys.h"
#include "libs/auth/token.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard {
namespace {

using auth::Role;
using grpc::StatusCode;
namespace pv1 = presence::v1;

class KeyRotationTest : public ::testing::Test {
 protected:
  KeyRotationTest()
      : dir_(storage::MakeTempDir()),
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "presence")),
        presence_("services/presence/presence_server",
                  {"--data_dir=" + dir_, "--keys_dir=" + dir_ + "/keys",
                   "--key_refresh_interval=100ms", "--port=0", "--metrics_port=0",
                   "--bind_address=127.0.0.1", "--drain_deadline=2s"},
                  dir_ + "/presence.log") {}

  void SetUp() override {
    ASSERT_GT(presence_.grpc_port(), 0) << presence_.log();
    stub_ = pv1::PresenceService::NewStub(
        grpc::CreateChannel(presence_.address(), grpc::InsecureChannelCredentials()));
  }

  // A supervisor-only call.
  StatusCode ListAgents(const std::string& token) {
    grpc::ClientContext context;
    auth::AttachToken(context, token);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    pv1::ListAgentsResponse response;
    return stub_->ListAgents(&context, {}, &response).error_code();
  }

  // A routing-only call; an agent presence does not know is NOT_FOUND, past
  // authorization.
  StatusCode Reserve(const std::string& token) {
    grpc::ClientContext context;
    auth::AttachToken(context, token);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    pv1::ReserveCapacityRequest request;
    request.set_agent_id("nobody");
    request.set_session_id("s-1");
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.mutable_hold()->set_seconds(60);
    request.set_holder_id(1);
    pv1::ReserveCapacityResponse response;
    return stub_->ReserveCapacity(&context, request, &response).error_code();
  }

  // `edit` applied to the key set file `name`, written whole beside it and
  // renamed over it.
  void EditKeySet(const std::string& name, const std::function<auth::KeySet(auth::KeySet)>& edit) {
    const std::string path = absl::StrCat(dir_, "/keys/", name);
    absl::StatusOr<auth::KeySet> keys = auth::KeySet::FromJson(testing::ReadFile(path));
    ASSERT_TRUE(keys.ok()) << keys.status();
    const std::string next = edit(*std::move(keys)).ToJson();
    const std::string temporary = path + ".new";
    FILE* file = std::fopen(temporary.c_str(), "w");
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(std::fwrite(next.data(), 1, next.size(), file), next.size());
    ASSERT_EQ(std::fclose(file), 0);
    ASSERT_EQ(std::rename(temporary.c_str(), path.c_str()), 0);
  }

  // Whether `call` answers `code` within a generous deadline.
  static bool Eventually(const std::function<StatusCode()>& call, StatusCode code) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (call() == code) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::string dir_;
  testing::TestTokens tokens_;
  testing::ServerProcess presence_;
  std::unique_ptr<pv1::PresenceService::Stub> stub_;
};

TEST_F(KeyRotationTest, AnAccessKeyIsAcceptedOnceAddedAndRefusedOnceRemoved) {
  const auth::SigningKey next = *auth::SigningKey::Generate();
  const auth::TokenSigner next_issuer(next, std::string(auth::kDevelopmentIssuer));
  const std::string new_token = *auth::MintAccessToken(
      next_issuer, {"sup-1", Role::kSupervisor, absl::Now() + absl::Hours(1)}, absl::Now());
  const std::string old_token = tokens_.For(Role::kSupervisor, "sup-1");
  EXPECT_EQ(ListAgents(old_token), StatusCode::OK);
  EXPECT_EQ(ListAgents(new_token), StatusCode::UNAUTHENTICATED);

  // 1. The new key joins the set beside the old one.
  EditKeySet(auth::kAccessKeysFile, [&](auth::KeySet keys) {
    EXPECT_TRUE(keys.Add(next.kid(), next.public_key()).ok());
    return keys;
  });
  EXPECT_TRUE(Eventually([&] { return ListAgents(new_token); }, StatusCode::OK))
      << presence_.log();
  EXPECT_EQ(ListAgents(old_token), StatusCode::OK);

  // 4. The old key leaves it: its tokens stop working, unexpired as they are.
  EditKeySet(auth::kAccessKeysFile, [&](const auth::KeySet&) {
    auth::KeySet only_new;
    EXPECT_TRUE(only_new.Add(next.kid(), next.public_key()).ok());
    return only_new;
  });
  EXPECT_TRUE(Eventually([&] { return ListAgents(old_token); }, StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(ListAgents(new_token), StatusCode::OK);
}

TEST_F(KeyRotationTest, AServiceKeyRotatesBoundToItsService) {
  const auth::SigningKey next = *auth::SigningKey::Generate();
  const auth::TokenSigner next_signer(next, std::string(auth::kServiceIssuer));
  const std::string as_routing = *auth::MintServiceToken(next_signer, "routing", "presence",
                                                         absl::Now(), absl::Minutes(10));
  const std::string as_bot =
      *auth::MintServiceToken(next_signer, "bot", "presence", absl::Now(), absl::Minutes(10));
  const std::string old_token = tokens_.ServiceToken("routing", "presence");
  EXPECT_EQ(Reserve(old_token), StatusCode::NOT_FOUND);
  EXPECT_EQ(Reserve(as_routing), StatusCode::UNAUTHENTICATED);

  EditKeySet(auth::kServiceKeysFile, [&](auth::KeySet keys) {
    EXPECT_TRUE(keys.Add(next.kid(), next.public_key(), "routing").ok());
    return keys;
  });
  EXPECT_TRUE(Eventually([&] { return Reserve(as_routing); }, StatusCode::NOT_FOUND))
      << presence_.log();
  // The new key is routing's: it speaks for no other service.
  EXPECT_EQ(Reserve(as_bot), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reserve(old_token), StatusCode::NOT_FOUND);

  EditKeySet(auth::kServiceKeysFile, [&](const auth::KeySet& keys) {
    auth::KeySet without_old;
    for (const auth::KeySet::Key& key : keys.keys()) {
      if (key.kid != tokens_.keys().services.at("routing").kid()) {
        EXPECT_TRUE(without_old.Add(key.kid, key.key, key.service).ok());
      }
    }
    return without_old;
  });
  EXPECT_TRUE(Eventually([&] { return Reserve(old_token); }, StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(Reserve(as_routing), StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace switchboard
