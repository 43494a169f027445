#include "services/bot/evaluation.h"

#include "gtest/gtest.h"
#include "services/bot/default_models.h"

namespace switchboard::bot {
namespace {

// The targets of the held-out dev set, as floors: a change to the base,
// the models or the decision that loses quality fails here. bot_eval
// prints the figures with the misses.
TEST(EvaluationTest, DevSetMeetsTheTargets) {
  auto kb = LoadKnowledgeBase("services/bot/kb/intents.kb", ModelOptions(), DefaultModels());
  ASSERT_TRUE(kb.ok()) << kb.status();
  auto cases = ReadEvalCases("services/bot/eval/dev.tsv");
  ASSERT_TRUE(cases.ok()) << cases.status();
  EXPECT_GE(cases->size(), 400u);
  const std::vector<NearCopy> copies = FindNearCopies(**kb, *cases, 0.8);
  for (const NearCopy& c : copies) {
    ADD_FAILURE() << "dev.tsv:" << c.line << " copies a training phrasing: \"" << c.text
                  << "\" ~ \"" << c.training << "\" (" << c.similarity << ")";
  }
  auto report = Evaluate(*kb, *cases, BotOptions());
  ASSERT_TRUE(report.ok()) << report.status();
  const std::string figures = FormatReport(*report, /*with_misses=*/true);
  EXPECT_GE(report->category_accuracy(), 0.95) << figures;
  EXPECT_GE(report->intent_accuracy(), 0.90) << figures;
  EXPECT_EQ(report->human_recall(), 1.0) << figures;
  EXPECT_EQ(report->sensitive_recall(), 1.0) << figures;
  EXPECT_GE(report->escalation_precision(), 0.90) << figures;
  EXPECT_GE(report->off_topic_rejection(), 0.90) << figures;
}

TEST(EvaluationTest, SimilarityIsDifflibsRatioOverMeaningfulCharacters) {
  // difflib.SequenceMatcher(None, "abcd", "bcde").ratio() == 0.75
  EXPECT_DOUBLE_EQ(Similarity("abcd", "bcde"), 0.75);
  // Case, spaces and punctuation do not hide a copy.
  EXPECT_DOUBLE_EQ(Similarity("My deposit, hasn't arrived!", "my deposit hasnt arrived"), 1.0);
  EXPECT_DOUBLE_EQ(Similarity("充值没到账。", "充值没到账"), 1.0);
  EXPECT_NEAR(Similarity("充值没到账", "提现没到账"), 0.6, 1e-9);
  EXPECT_EQ(Similarity("👍", "hello"), 0.0);
}

TEST(EvaluationTest, ScoresWhatTheBotDidNotItsGuess) {
  auto kb = ParseKnowledgeBase("test.kb", R"(human_request: en | get me a human
out_of_scope: en | what is the weather like
intent: deposit
category: deposit
title: zh-CN | 充值
title: en | Deposit
example: zh-CN | 充值没到账
example: en | my deposit has not arrived
example: en | deposit missing
answer: zh-CN | 请稍候。
answer: en | Please wait.
intent: stolen
category: account_security
title: zh-CN | 被盗
title: en | Stolen
sensitive: true
example: zh-CN | 账号被盗了
example: en | my account was hacked
answer: zh-CN | 转人工。
answer: en | An agent will help.
)");
  ASSERT_TRUE(kb.ok()) << kb.status();
  std::vector<EvalCase> cases = {
      {1, "-", "my deposit has not arrived", "deposit", Expected::kNone},
      // Expected escalation, but the bot answers: a miss on both counts.
      {2, "-", "deposit missing", "deposit", Expected::kHuman},
      {3, "-", "my account was hacked", "stolen", Expected::kSensitive},
  };
  auto report = Evaluate(*kb, cases, BotOptions());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->intent_cases, 3);
  EXPECT_EQ(report->intent_correct, 3) << FormatReport(*report, true);
  EXPECT_EQ(report->escalations_expected, 2);
  EXPECT_EQ(report->escalations_correct, 1);
  EXPECT_EQ(report->human_expected, 1);
  EXPECT_EQ(report->human_recalled, 0);
  EXPECT_EQ(report->sensitive_recalled, 1);
  EXPECT_EQ(report->misses.size(), 1u);
}

TEST(EvaluationTest, MalformedLinesAreNamed) {
  auto cases = ReadEvalCases("services/bot/kb/intents.kb");  // not a TSV
  ASSERT_FALSE(cases.ok());
  EXPECT_EQ(cases.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cases.status().message().find("intents.kb:"), absl::string_view::npos);
}

}  // namespace
}  // namespace switchboard::bot
