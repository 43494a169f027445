#include "tools/cli/command_line.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::cli {
namespace {

using ::testing::ElementsAre;

TEST(SplitTest, SeparatesPositionalsFromFlagsOfEveryForm) {
  SplitArgs split = Split({"s-1", "--text", "hello there", "--json", "--as=ana", "more", "--",
                           "--not-a-flag"},
                          {"json"});
  EXPECT_THAT(split.positional, ElementsAre("s-1", "more", "--not-a-flag"));
  EXPECT_THAT(split.flags,
              ElementsAre("switchboard", "--text", "hello there", "--json", "--as=ana"));
}

TEST(SplitTest, BoolFlagsDoNotSwallowTheNextArgument) {
  SplitArgs split = Split({"--accept", "offer-1", "--noaccept", "x", "--help"}, {"accept"});
  EXPECT_THAT(split.positional, ElementsAre("offer-1", "x"));
  EXPECT_THAT(split.flags, ElementsAre("switchboard", "--accept", "--noaccept", "--help"));
}

TEST(SplitTest, AValueFlagAtTheEndIsLeftForTheFlagParserToReport) {
  SplitArgs split = Split({"--text"}, {});
  EXPECT_TRUE(split.positional.empty());
  EXPECT_THAT(split.flags, ElementsAre("switchboard", "--text"));
}

TEST(ParseEnumTest, AcceptsShortLongAndDashedNamesInAnyCase) {
  const auto* category = common::v1::Category_descriptor();
  EXPECT_EQ(*ParseEnum(category, "category", "deposit"), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(*ParseEnum(category, "category", "CATEGORY_DEPOSIT"), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(*ParseEnum(category, "category", "Account-Security"),
            common::v1::CATEGORY_ACCOUNT_SECURITY);
}

TEST(ParseEnumTest, RejectsUnknownAndUnspecifiedNamingTheFlagAndTheChoices) {
  const auto* channel = common::v1::Channel_descriptor();
  absl::StatusOr<int> bad = ParseEnum(channel, "channel", "fax");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "--channel: unknown value \"fax\"; use one of chat, email, phone, social");
  EXPECT_FALSE(ParseEnum(channel, "channel", "unspecified").ok());
  EXPECT_FALSE(ParseEnum(channel, "channel", "").ok());
}

TEST(ParseEnumTest, ListsAreCommaSeparated) {
  const auto* category = common::v1::Category_descriptor();
  EXPECT_THAT(*ParseEnumList(category, "categories", "deposit, kyc"),
              ElementsAre(common::v1::CATEGORY_DEPOSIT, common::v1::CATEGORY_KYC));
  EXPECT_TRUE(ParseEnumList(category, "categories", "")->empty());
  EXPECT_FALSE(ParseEnumList(category, "categories", "deposit,nope").ok());
}

TEST(EnumLabelTest, StripsThePrefixAndLowerCases) {
  EXPECT_EQ(EnumLabel(common::v1::Category_descriptor(), common::v1::CATEGORY_FROZEN_FUNDS),
            "frozen_funds");
  EXPECT_EQ(EnumLabel(common::v1::Channel_descriptor(), 99), "99");
}

TEST(ParseNamedCountsTest, ParsesNameColonCount) {
  auto counts = ParseNamedCounts("capacity", "chat:3,email:0");
  ASSERT_TRUE(counts.ok());
  EXPECT_THAT(*counts, ElementsAre(std::make_pair(std::string("chat"), 3),
                                   std::make_pair(std::string("email"), 0)));
  for (const char* bad : {"chat", "chat:x", ":3", "chat:-1", "chat:1:2"}) {
    absl::StatusOr<std::vector<std::pair<std::string, int>>> parsed =
        ParseNamedCounts("capacity", bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HumanDurationTest, PicksAReadableUnit) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(850)), "850 ms");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(4300)), "4.3 s");
  EXPECT_EQ(HumanDuration(absl::Seconds(185)), "3 min 05 s");
  EXPECT_EQ(HumanDuration(absl::Minutes(130)), "2 h 10 min");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(-5)), "-5 ms");
}

TEST(HumanBytesTest, PicksABinaryUnit) {
  EXPECT_EQ(HumanBytes(0), "0 bytes");
  EXPECT_EQ(HumanBytes(1), "1 byte");
  EXPECT_EQ(HumanBytes(1023), "1023 bytes");
  EXPECT_EQ(HumanBytes(12'595), "12.3 KiB");
  EXPECT_EQ(HumanBytes(4 << 20), "4.0 MiB");
  EXPECT_EQ(HumanBytes(int64_t{3} << 29), "1.5 GiB");
}

}  // namespace
}  // namespace switchboard::cli
