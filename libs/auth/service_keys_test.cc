#include "libs/auth/service_keys.h"

#include <sys/stat.h>

#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/auth/key_folder.h"
#include "libs/config/flags.h"
#include "libs/storage/test_dir.h"

namespace switchboard::auth {
namespace {

const absl::Time kNow = absl::Now();

absl::Status Parse(config::FlagSet& flags, std::vector<std::string> args) {
  std::vector<const char*> argv = {"test"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return flags.Parse(static_cast<int>(argv.size()), argv.data());
}

config::FlagSet::Environment NoEnvironment() {
  return [](const char*) -> const char* { return nullptr; };
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(ServiceKeysTest, ALocalRunMakesDevelopmentKeysOnce) {
  const std::string data_dir = storage::MakeTempDir();
  KeyOptions options;
  absl::StatusOr<ServiceKeys> sessions = LoadServiceKeys(options, "sessions", data_dir, true);
  ASSERT_TRUE(sessions.ok()) << sessions.status();
  ASSERT_NE(sessions->signer, nullptr);
  absl::StatusOr<ServiceKeys> routing = LoadServiceKeys(options, "routing", data_dir, true);
  ASSERT_TRUE(routing.ok()) << routing.status();
  absl::StatusOr<ServiceKeys> bot = LoadServiceKeys(options, "bot", data_dir, false);
  ASSERT_TRUE(bot.ok()) << bot.status();
  EXPECT_EQ(bot->signer, nullptr);

  // Sessions' service token to routing passes routing's checks, not the bot's.
  const std::string token = *MintServiceToken(*sessions->signer, "sessions", "routing", kNow,
                                              absl::Minutes(10));
  absl::StatusOr<Principal> caller = routing->verifier->VerifyCaller(token, kNow);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->subject, "sessions");
  EXPECT_EQ(bot->verifier->VerifyCaller(token, kNow).status().message(), "wrong audience");

  // The development issuer's key in the folder makes access tokens.
  absl::StatusOr<KeyFolder> folder = ReadKeyFolder(data_dir + "/keys");
  ASSERT_TRUE(folder.ok()) << folder.status();
  const TokenSigner issuer(folder->issuer, std::string(kDevelopmentIssuer));
  EXPECT_TRUE(bot->verifier
                  ->VerifyCaller(*MintAccessToken(issuer, {"ana", Role::kAgent,
                                                           kNow + absl::Hours(1)},
                                                  kNow),
                                 kNow)
                  .ok());
}

TEST(ServiceKeysTest, GivenKeysAreNeverMade) {
  const std::string dir = storage::MakeTempDir();
  KeyOptions options;
  options.keys_dir = dir + "/keys";
  absl::StatusOr<ServiceKeys> keys = LoadServiceKeys(options, "bot", dir, false);
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(keys.status().message(), dir + "/keys/access.jwks"))
      << keys.status();
  EXPECT_FALSE(Exists(dir + "/keys"));
}

TEST(ServiceKeysTest, FlagsNameEachFile) {
  const std::string dir = storage::MakeTempDir();
  absl::StatusOr<KeyFolder> folder = KeyFolder::Generate();
  ASSERT_TRUE(folder.ok());
  ASSERT_TRUE(WriteKeyFolder(*folder, dir + "/elsewhere").ok());
  std::ofstream(dir + "/feedback-2026.pem") << folder->services.at("feedback").ToPem();
  KeyOptions options;
  config::FlagSet flags("feedback", NoEnvironment());
  AddKeyFlags(flags, &options, /*signs_service_tokens=*/true);
  ASSERT_TRUE(Parse(flags, {"--keys_dir=" + dir + "/elsewhere",
                            "--service_signing_key=" + dir + "/feedback-2026.pem",
                            "--max_service_token_lifetime=5m", "--access_issuer=https://login"})
                  .ok());
  absl::StatusOr<ServiceKeys> keys = LoadServiceKeys(options, "feedback", dir, true);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->signer->key().kid(), folder->services.at("feedback").kid());
  EXPECT_EQ(keys->verifier->options().max_service_lifetime, absl::Minutes(5));
  EXPECT_EQ(keys->verifier->options().access_issuer, "https://login");
  EXPECT_FALSE(Exists(dir + "/keys"));
}

TEST(ServiceKeysTest, RefusesASigningKeyItsPeersWouldRefuse) {
  const std::string dir = storage::MakeTempDir();
  absl::StatusOr<KeyFolder> folder = KeyFolder::Generate();
  ASSERT_TRUE(folder.ok());
  ASSERT_TRUE(WriteKeyFolder(*folder, dir + "/keys").ok());
  KeyOptions options;
  options.keys_dir = dir + "/keys";
  // Routing's key, published as routing's, cannot sign for sessions.
  options.service_signing_key = dir + "/keys/routing.pem";
  absl::StatusOr<ServiceKeys> keys = LoadServiceKeys(options, "sessions", dir, true);
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(keys.status().message(), "another service")) << keys.status();
  // A key not published at all.
  options.service_signing_key = dir + "/keys/development-issuer.pem";
  keys = LoadServiceKeys(options, "sessions", dir, true);
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(keys.status().message(), "wrong issuer")) << keys.status();
}

TEST(ServiceKeysTest, RefusesNonsense) {
  const std::string dir = storage::MakeTempDir();
  KeyOptions zero;
  zero.max_access_token_lifetime = absl::ZeroDuration();
  EXPECT_EQ(LoadServiceKeys(zero, "bot", dir, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  KeyOptions clash;
  clash.access_issuer = std::string(kServiceIssuer);
  EXPECT_EQ(LoadServiceKeys(clash, "bot", dir, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(dir + "/keys"));
}

}  // namespace
}  // namespace switchboard::auth
