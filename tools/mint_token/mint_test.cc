#include "tools/mint_token/mint.h"

#include <sys/stat.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/verifier.h"
#include "libs/storage/test_dir.h"

namespace switchboard::mint_token {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

const char* NoEnvironment(const char*) { return nullptr; }

class MintTokenTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "mint_token");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return mint_token::Run(static_cast<int>(argv.size()), argv.data(), kNow, out_, err_,
                           NoEnvironment);
  }
  std::string Token() const { return std::string(absl::StripSuffix(out_.str(), "\n")); }

  // Checks tokens as the service `audience` would with the folder's keys.
  std::unique_ptr<auth::TokenVerifier> Verifier(const std::string& audience) {
    absl::StatusOr<auth::KeyFolder> keys = auth::ReadKeyFolder(keys_dir_);
    EXPECT_TRUE(keys.ok()) << keys.status();
    auth::VerifierOptions options;
    options.service = audience;
    return std::make_unique<auth::TokenVerifier>(
        auth::TokenVerifier::KeySources{auth::FixedKeys(keys->AccessKeys()),
                                        auth::FixedKeys(keys->ServiceKeys()),
                                        auth::FixedKeys(keys->VerificationKeys())},
        options);
  }

  std::string data_dir_ = storage::MakeTempDir();
  std::string keys_dir_ = data_dir_ + "/keys";
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(MintTokenTest, GeneratesKeysOnceAndMintsWhatServicesAccept) {
  ASSERT_EQ(Run({"--generate_keys=" + keys_dir_}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), keys_dir_ + "\n");
  EXPECT_TRUE(auth::ReadKeyFolder(keys_dir_).ok());
  // Never replaced.
  EXPECT_EQ(Run({"--generate_keys=" + keys_dir_}), kExitFailure);
  EXPECT_TRUE(absl::StrContains(err_.str(), "never replaced")) << err_.str();

  // An agent's token from DATA_DIR/keys, valid for --ttl.
  ASSERT_EQ(Run({"--data_dir=" + data_dir_, "--subject=agent-7", "--role=agent", "--ttl=30m"}),
            kExitOk)
      << err_.str();
  EXPECT_EQ(err_.str(), "");
  absl::StatusOr<auth::Principal> principal = Verifier("presence")->VerifyCaller(Token(), kNow);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "agent-7");
  EXPECT_EQ(principal->role, auth::Role::kAgent);
  EXPECT_EQ(principal->expires_at, kNow + absl::Minutes(30));

  // A supervisor's, with --keys_dir; 12 hours by default.
  ASSERT_EQ(Run({"--keys_dir", keys_dir_, "--subject", "sup", "--role", "supervisor"}), kExitOk)
      << err_.str();
  principal = Verifier("bot")->VerifyCaller(Token(), kNow);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->expires_at, kNow + absl::Hours(12));

  // Routing's service token to sessions, signed with routing's key; 10 minutes.
  ASSERT_EQ(Run({"--keys_dir=" + keys_dir_, "--subject=routing", "--role=service",
                 "--audience=sessions"}),
            kExitOk)
      << err_.str();
  principal = Verifier("sessions")->VerifyCaller(Token(), kNow);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "routing");
  EXPECT_EQ(principal->role, auth::Role::kService);
  EXPECT_EQ(principal->expires_at, kNow + absl::Minutes(10));
  EXPECT_FALSE(Verifier("presence")->VerifyCaller(Token(), kNow).ok());

  // Another key file than the folder's: the bot's key, claiming routing.
  ASSERT_EQ(Run({"--keys_dir=" + keys_dir_, "--key_file=" + keys_dir_ + "/bot.pem",
                 "--subject=routing", "--role=service", "--audience=sessions"}),
            kExitOk);
  EXPECT_EQ(Verifier("sessions")->VerifyCaller(Token(), kNow).status().message(),
            "key belongs to another service");
}

TEST_F(MintTokenTest, MissingKeysFail) {
  EXPECT_EQ(Run({"--data_dir=" + data_dir_, "--subject=a", "--role=agent"}), kExitFailure);
  EXPECT_TRUE(absl::StrContains(err_.str(), keys_dir_ + "/development-issuer.pem"))
      << err_.str();
  EXPECT_TRUE(absl::StrContains(err_.str(), "--generate_keys")) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(MintTokenTest, BadFlagsExitWithTwo) {
  const std::string dir = "--keys_dir=" + keys_dir_;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{dir, "--role=agent"}, "--subject is required"},
      {{dir, "--subject=a"}, "--role is required"},
      {{dir, "--subject=a", "--role=admin"}, "unknown --role \"admin\""},
      {{dir, "--subject=routing", "--role=service"}, "--audience"},
      {{dir, "--subject=a", "--role=agent", "--audience=bot"}, "--audience is for"},
      {{dir, "--subject=a", "--role=agent", "--ttl=soon"}, "--ttl"},
      {{dir, "--subject=a", "--role=agent", "--ttl=-1h"}, "--ttl"},
      {{dir, "--subject=a", "--role=agent", "--ttl=inf"}, "--ttl"},
      {{dir, "--subject=a", "--role=agent", "--colour=red"}, "--colour"},
      {{dir, "--subject=a", "--role=agent", "extra"}, "extra"},
      {{dir, "--subject", std::string(129, 'x'), "--role=agent"}, "128"},
      {{dir, "--subject=a", "--role"}, "--role needs a value"},
      {{"--generate_keys=" + keys_dir_, "--subject=a"}, "--generate_keys takes no"},
  };
  for (const auto& [args, expected] : cases) {
    EXPECT_EQ(Run(args), kExitBadFlags) << expected;
    EXPECT_TRUE(absl::StrContains(err_.str(), expected)) << err_.str();
    EXPECT_TRUE(absl::StrContains(err_.str(), "usage: mint_token"));
    EXPECT_EQ(out_.str(), "");
  }
  // Flag errors are found before any key is read or made.
  struct stat st;
  EXPECT_NE(stat(keys_dir_.c_str(), &st), 0);
}

TEST_F(MintTokenTest, SubjectMustBeUtf8) {
  ASSERT_EQ(Run({"--generate_keys=" + keys_dir_}), kExitOk);
  EXPECT_EQ(Run({"--keys_dir=" + keys_dir_, "--subject=\xff", "--role=agent"}), kExitBadFlags);
  EXPECT_TRUE(absl::StrContains(err_.str(), "UTF-8")) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

}  // namespace
}  // namespace switchboard::mint_token
