#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/bot/bot.h"

namespace switchboard::bot {

// One labelled utterance of the evaluation file (eval/utterances.tsv).
struct EvalCase {
  int line = 0;
  // "-" for a fresh session; equal names are consecutive turns of one
  // dialogue.
  std::string session;
  std::string text;
  // Expected intent id; empty when no intent is right.
  std::string intent;
  bool escalate = false;
};

// Reads the tab-separated evaluation file. Errors: Unavailable (unreadable),
// InvalidArgument naming the line.
absl::StatusOr<std::vector<EvalCase>> ReadEvalCases(const std::string& path);

// The figures of one evaluation run.
struct EvalReport {
  int cases = 0;
  // Cases with an expected intent, and those whose top guess was it.
  int intent_cases = 0;
  int intent_correct = 0;
  // Of the intent cases, those whose reported category was the intent's.
  int category_correct = 0;
  // Cases without an intent that the bot did not answer (it asked to
  // rephrase, or escalated).
  int off_topic = 0;
  int off_topic_rejected = 0;
  // Escalation as a classifier: true positives, predicted, expected.
  int escalations_correct = 0;
  int escalations_predicted = 0;
  int escalations_expected = 0;
  // Outcomes of intent cases that were not answered outright.
  int clarified = 0;
  // Reliability table of the top guess's confidence over intent cases with
  // a guess, in tenths: cases, correct ones and summed confidence per bin.
  std::array<int, 10> bin_cases{};
  std::array<int, 10> bin_correct{};
  std::array<double, 10> bin_confidence_sum{};
  // "line: text -> got (expected)" for every miss.
  std::vector<std::string> misses;

  double intent_accuracy() const;
  double category_accuracy() const;
  double escalation_precision() const;
  double escalation_recall() const;
  double off_topic_rejection() const;
};

// Runs `cases` through a Bot over the knowledge base at `kb_path` (events in
// memory). Errors: the knowledge base's.
absl::StatusOr<EvalReport> Evaluate(const std::string& kb_path,
                                    const std::vector<EvalCase>& cases,
                                    const BotOptions& options);

// The report as printed by bot_eval.
std::string FormatReport(const EvalReport& report, bool with_misses);

}  // namespace switchboard::bot
