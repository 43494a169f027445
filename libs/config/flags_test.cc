#include "libs/config/flags.h"

#include <map>

#include "gtest/gtest.h"

namespace switchboard::config {
namespace {

class FlagsTest : public ::testing::Test {
 protected:
  FlagSet MakeFlags() {
    FlagSet flags("presence", [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    });
    flags.Add("port", &port_, "gRPC port");
    flags.Add("data_dir", &data_dir_, "data folder");
    flags.Add("reflection", &reflection_, "reflection");
    flags.Add("lease", &lease_, "lease time");
    return flags;
  }
  std::map<std::string, std::string> env_;
  int port_ = 7104;
  std::string data_dir_ = "data";
  bool reflection_ = true;
  absl::Duration lease_ = absl::Seconds(30);
};

TEST_F(FlagsTest, DefaultsHoldWithNoFlagsOrEnvironment) {
  const char* argv[] = {"presence"};
  ASSERT_TRUE(MakeFlags().Parse(1, argv).ok());
  EXPECT_EQ(port_, 7104);
  EXPECT_EQ(data_dir_, "data");
  EXPECT_TRUE(reflection_);
}

TEST_F(FlagsTest, CommandLineBeatsServiceEnvironmentBeatsSharedEnvironment) {
  env_["SWITCHBOARD_PRESENCE_PORT"] = "8000";
  env_["SWITCHBOARD_PORT"] = "9000";
  env_["SWITCHBOARD_DATA_DIR"] = "/var/sb";
  env_["SWITCHBOARD_LEASE"] = "45s";
  const char* argv[] = {"presence", "--noreflection"};
  ASSERT_TRUE(MakeFlags().Parse(2, argv).ok());
  EXPECT_EQ(port_, 8000);
  EXPECT_EQ(data_dir_, "/var/sb");
  EXPECT_FALSE(reflection_);
  EXPECT_EQ(lease_, absl::Seconds(45));

  const char* argv2[] = {"presence", "--port=7", "--data_dir", "/x"};
  ASSERT_TRUE(MakeFlags().Parse(4, argv2).ok());
  EXPECT_EQ(port_, 7);
  EXPECT_EQ(data_dir_, "/x");
}

TEST_F(FlagsTest, BadInputNamesTheFlagAndSource) {
  const char* unknown[] = {"presence", "--prot=1"};
  absl::Status s = MakeFlags().Parse(2, unknown);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--prot"), absl::string_view::npos);

  const char* bad_int[] = {"presence", "--port=abc"};
  EXPECT_EQ(MakeFlags().Parse(2, bad_int).code(),
            absl::StatusCode::kInvalidArgument);

  env_["SWITCHBOARD_LEASE"] = "forever";
  const char* none[] = {"presence"};
  s = MakeFlags().Parse(1, none);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("SWITCHBOARD_LEASE"), absl::string_view::npos);

  const char* missing[] = {"presence", "--port"};
  EXPECT_EQ(MakeFlags().Parse(2, missing).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchboard::config
