#include "services/bot/cues.h"

#include "gtest/gtest.h"

namespace switchboard::bot {
namespace {

bool Matches(absl::string_view pattern, absl::string_view text) {
  absl::StatusOr<Cue> cue = Cue::Parse(pattern);
  EXPECT_TRUE(cue.ok()) << pattern << ": " << cue.status();
  return cue.ok() && cue->Matches(Analyze(text, nullptr));
}

TEST(CueTest, EverySlotMustMatchInAnyOrder) {
  EXPECT_TRUE(Matches("账号/账户 + 被盗/被黑", "昨天晚上我的账户好像被黑了"));
  EXPECT_TRUE(Matches("账号/账户 + 被盗/被黑", "被盗了！我的账号"));
  EXPECT_FALSE(Matches("账号/账户 + 被盗/被黑", "我的账号登不上"));
}

TEST(CueTest, EnglishAlternativesAreStemmedWholeWordSequences) {
  EXPECT_TRUE(Matches("someone + logged in", "Someone LOGGED-IN to my account"));
  EXPECT_TRUE(Matches("talk to + person", "can i talk to a real person"));
  EXPECT_TRUE(Matches("withdraw", "withdrawals"));
  // Whole words: "agent" is not in "agenda".
  EXPECT_FALSE(Matches("agent", "what is on the agenda"));
  EXPECT_TRUE(Matches("unauthori*", "an unauthorised login"));
  EXPECT_TRUE(Matches("unauthori*", "UNAUTHORIZED withdrawal"));
}

TEST(CueTest, MixedTextMatchesBothScripts) {
  EXPECT_TRUE(Matches("账号/account + hack*", "我的account被hacked了"));
}

TEST(CueTest, NegatedSlotsExclude) {
  const char* pattern = "人工 + !审核/智能";
  EXPECT_TRUE(Matches(pattern, "帮我转人工"));
  EXPECT_FALSE(Matches(pattern, "提现要人工审核多久"));
  EXPECT_FALSE(Matches(pattern, "你们用人工智能吗"));
}

TEST(CueTest, WholeMessageAlternativesMatchOnlyWhenNothingElseIsSaid) {
  const char* pattern = "=客服/=kefu/=ke fu";
  EXPECT_TRUE(Matches(pattern, "客服"));
  EXPECT_TRUE(Matches(pattern, "客服！！"));
  EXPECT_TRUE(Matches(pattern, "客服 客服客服"));
  EXPECT_TRUE(Matches(pattern, "KEFU?"));
  EXPECT_TRUE(Matches(pattern, "ke fu ke fu"));
  EXPECT_FALSE(Matches(pattern, "客服邮箱是多少"));
  EXPECT_FALSE(Matches(pattern, "客服你好，我的充值没到"));
  EXPECT_FALSE(Matches(pattern, "kefu email"));
  EXPECT_FALSE(Matches(pattern, "客服 email"));
  EXPECT_FALSE(Matches(pattern, "ke"));
}

TEST(CueTest, BadPatternsAreRejectedWithTheProblem) {
  EXPECT_NE(Cue::Parse("被盗 + ").status().message().find("empty slot"), std::string::npos);
  EXPECT_NE(Cue::Parse("!审核").status().message().find("not negated"), std::string::npos);
  EXPECT_NE(Cue::Parse("被hack").status().message().find("mixes"), std::string::npos);
  EXPECT_NE(Cue::Parse("被盗*").status().message().find("English"), std::string::npos);
  EXPECT_NE(Cue::Parse("???").status().message().find("no word"), std::string::npos);
  EXPECT_NE(Cue::Parse("=").status().message().find("no word"), std::string::npos);
}

}  // namespace
}  // namespace switchboard::bot
