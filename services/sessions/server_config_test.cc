#include "services/sessions/server_config.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace switchboard::sessions {
namespace {

TEST(ServerConfigTest, SlaByCategoryParsesNamesInAnyCase) {
  absl::flat_hash_map<int, absl::Duration> targets;
  ASSERT_TRUE(ParseSlaByCategory(" account_security=4h, DEPOSIT = 24h ", &targets).ok());
  EXPECT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[common::v1::CATEGORY_ACCOUNT_SECURITY], absl::Hours(4));
  EXPECT_EQ(targets[common::v1::CATEGORY_DEPOSIT], absl::Hours(24));
}

TEST(ServerConfigTest, SlaByCategoryQuotesTheItemAtFault) {
  absl::flat_hash_map<int, absl::Duration> targets;
  for (const char* bad : {"deposit", "deposit=0s", "deposit=soon", "unspecified=1h", "moon=1h"}) {
    const absl::Status s = ParseSlaByCategory(bad, &targets);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(absl::StrCat("--email_sla_by_category: \"", bad, "\"")),
              absl::string_view::npos)
        << s;
  }
}

TEST(ServerConfigTest, CategoriesParseAndRefuseUnknownOnes) {
  absl::flat_hash_set<int> categories;
  ASSERT_TRUE(ParseCategories("deposit, withdrawal", &categories).ok());
  EXPECT_TRUE(categories.contains(common::v1::CATEGORY_DEPOSIT));
  EXPECT_TRUE(categories.contains(common::v1::CATEGORY_WITHDRAWAL));
  const absl::Status s = ParseCategories("deposit,lunch", &categories);
  EXPECT_EQ(s.message(),
            "--business_hours_sla_categories: \"lunch\" is not a category, e.g. "
            "deposit,withdrawal");
}

TEST(ServerConfigTest, CheckCompletesTheOptionsFromTheFlags) {
  ServerConfig config;
  config.stream_backlog = 7;
  config.closed_cache_size = 3;
  config.reads_burst = 9;
  config.business_hours_sla_categories = "deposit";
  ASSERT_TRUE(CheckServerConfig(config).ok());
  EXPECT_EQ(config.service.max_stream_backlog, 7u);
  EXPECT_EQ(config.sessions.closed_cache_size, 3u);
  EXPECT_EQ(config.service.reads_burst, 9);
  EXPECT_TRUE(config.sessions.business_hours_sla_categories.contains(
      common::v1::CATEGORY_DEPOSIT));
}

TEST(ServerConfigTest, CheckRefusesLimitsBelowOneAndDurationsAtZero) {
  ServerConfig threads;
  threads.bot_threads = 0;
  EXPECT_EQ(CheckServerConfig(threads).code(), absl::StatusCode::kInvalidArgument);
  ServerConfig peers;
  peers.peer_threads = 0;
  EXPECT_EQ(CheckServerConfig(peers).code(), absl::StatusCode::kInvalidArgument);
  ServerConfig sweep;
  sweep.sweep_interval = absl::ZeroDuration();
  const absl::Status s = CheckServerConfig(sweep);
  EXPECT_NE(s.message().find("--sweep_interval"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace switchboard::sessions
