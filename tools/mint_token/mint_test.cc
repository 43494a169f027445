#include "tools/mint_token/mint.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "libs/auth/token.h"

namespace switchboard::mint_token {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

const char* NoEnvironment(const char*) { return nullptr; }

class MintTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr ? base : "/tmp", "/mintXXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    key_file_ = pattern + "/token.key";
  }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "mint_token");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return mint_token::Run(static_cast<int>(argv.size()), argv.data(), kNow,
                           out_, err_, NoEnvironment);
  }

  std::string key_file_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(MintTokenTest, MintsAVerifiableToken) {
  ASSERT_EQ(Run({"--key_file=" + key_file_, "--subject=agent-7",
                 "--role=agent", "--ttl=30m", "--create_key"}),
            kExitOk)
      << err_.str();
  EXPECT_EQ(err_.str(), "");
  std::string token(absl::StripSuffix(out_.str(), "\n"));
  ASSERT_EQ(token.size() + 1, out_.str().size());

  absl::StatusOr<std::string> key = auth::LoadOrCreateKey(key_file_, false);
  ASSERT_TRUE(key.ok()) << key.status();
  auth::TokenCodec codec(*key);
  absl::StatusOr<auth::Principal> principal =
      auth::VerifyAccessToken(codec, token, kNow);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "agent-7");
  EXPECT_EQ(principal->role, auth::Role::kAgent);
  EXPECT_EQ(principal->expires_at, kNow + absl::Minutes(30));

  // The key is reused, with or without --create_key; the default ttl is 12h.
  ASSERT_EQ(Run({"--key_file", key_file_, "--subject", "sup", "--role",
                 "supervisor"}),
            kExitOk)
      << err_.str();
  principal = auth::VerifyAccessToken(
      codec, absl::StripSuffix(out_.str(), "\n"), kNow);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->expires_at, kNow + absl::Hours(12));
}

TEST_F(MintTokenTest, MissingKeyWithoutCreateFails) {
  EXPECT_EQ(Run({"--key_file=" + key_file_, "--subject=a", "--role=agent"}),
            kExitFailure);
  EXPECT_TRUE(absl::StrContains(err_.str(), key_file_)) << err_.str();
  EXPECT_TRUE(absl::StrContains(err_.str(), "--create_key")) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(MintTokenTest, BadFlagsExitWithTwo) {
  const std::string key = "--key_file=" + key_file_;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--subject=a", "--role=agent"}, "--key_file is required"},
      {{key, "--role=agent"}, "--subject is required"},
      {{key, "--subject=a"}, "--role is required"},
      {{key, "--subject=a", "--role=admin"}, "unknown --role \"admin\""},
      {{key, "--subject=a", "--role=agent", "--ttl=soon"}, "--ttl"},
      {{key, "--subject=a", "--role=agent", "--ttl=-1h"}, "--ttl"},
      {{key, "--subject=a", "--role=agent", "--ttl=0s"}, "--ttl"},
      {{key, "--subject=a", "--role=agent", "--ttl=inf"}, "--ttl"},
      {{key, "--subject=a", "--role=agent", "--colour=red"}, "--colour"},
      {{key, "--subject=a", "--role=agent", "extra"}, "extra"},
      {{key, "--subject", std::string(129, 'x'), "--role=agent"}, "128"},
      {{key, "--subject=a", "--role"}, "--role needs a value"},
  };
  for (const auto& [args, expected] : cases) {
    EXPECT_EQ(Run(args), kExitBadFlags) << expected;
    EXPECT_TRUE(absl::StrContains(err_.str(), expected)) << err_.str();
    EXPECT_TRUE(absl::StrContains(err_.str(), "usage: mint_token"));
    EXPECT_EQ(out_.str(), "");
  }
  // Flag errors are found before any key file is created.
  struct stat st;
  EXPECT_NE(stat(key_file_.c_str(), &st), 0);
}

TEST_F(MintTokenTest, SubjectMustBeUtf8) {
  EXPECT_EQ(Run({"--key_file=" + key_file_, "--subject=\xff", "--role=agent",
                 "--create_key"}),
            kExitBadFlags);
  EXPECT_TRUE(absl::StrContains(err_.str(), "UTF-8")) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

}  // namespace
}  // namespace switchboard::mint_token
