#include "services/bot/evaluation.h"

#include "gtest/gtest.h"

namespace switchboard::bot {
namespace {

// Floors just below what the base achieves (bot_eval prints the figures);
// a change to the base or the matcher that loses quality fails here.
TEST(EvaluationTest, QualityStaysAboveTheFloors) {
  auto cases = ReadEvalCases("services/bot/eval/utterances.tsv");
  ASSERT_TRUE(cases.ok()) << cases.status();
  auto report = Evaluate("services/bot/kb/intents.kb", *cases, BotOptions());
  ASSERT_TRUE(report.ok()) << report.status();
  std::string figures = FormatReport(*report, /*with_misses=*/true);
  EXPECT_GE(report->cases, 150) << figures;
  EXPECT_GE(report->intent_accuracy(), 0.91) << figures;
  EXPECT_GE(report->category_accuracy(), 0.92) << figures;
  EXPECT_GE(report->escalation_precision(), 0.95) << figures;
  EXPECT_GE(report->escalation_recall(), 0.93) << figures;
  EXPECT_GE(report->off_topic_rejection(), 0.9) << figures;
}

TEST(EvaluationTest, MalformedLinesAreNamed) {
  auto cases = ReadEvalCases("services/bot/kb/intents.kb");  // not a TSV
  ASSERT_FALSE(cases.ok());
  EXPECT_EQ(cases.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cases.status().message().find("intents.kb:"), absl::string_view::npos);
}

}  // namespace
}  // namespace switchboard::bot
