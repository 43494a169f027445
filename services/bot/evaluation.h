#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/bot/bot.h"

namespace switchboard::bot {

// Why a turn must hand over, as labelled in eval/dev.tsv.
enum class Expected { kNone, kHuman, kComplaint, kSensitive, kNotUnderstood };

// One labelled utterance.
struct EvalCase {
  int line = 0;
  // "-" for a fresh session; equal names are consecutive turns of one
  // dialogue.
  std::string session;
  std::string text;
  // The intent the bot should act on; empty when none.
  std::string intent;
  Expected escalation = Expected::kNone;
};

// Reads a tab-separated evaluation file (see eval/dev.tsv). Errors:
// Unavailable (unreadable), InvalidArgument naming the line.
absl::StatusOr<std::vector<EvalCase>> ReadEvalCases(const std::string& path);

// The base's own phrasings as cases, each on a fresh session: every
// intent's examples (escalating as the intent does), the human requests
// and the out-of-scope texts.
std::vector<EvalCase> TrainingCases(const KnowledgeBase& kb);

// The figures of one evaluation run. Each turn is scored by what the bot
// did, not by its guesses: an intent case is right only when the bot
// answered that intent, or escalated with it as the handoff's first guess;
// a clarification is not an answer.
struct EvalReport {
  int cases = 0;
  // Cases with an expected intent; those the bot acted on rightly; those
  // whose reported category was the intent's (scored only for intents with
  // a topic: small talk keeps the conversation's category, so a "thanks"
  // has no category of its own to get right); those it asked to clarify.
  int intent_cases = 0;
  int intent_correct = 0;
  int category_cases = 0;
  int category_correct = 0;
  int clarified = 0;
  // Cases without intent or escalation (off-topic, noise), and those the
  // bot did not answer (NOT_UNDERSTOOD).
  int off_topic = 0;
  int off_topic_rejected = 0;
  // Escalation as a classifier, whatever the reason: right = expected and
  // done on that turn.
  int escalations_correct = 0;
  int escalations_predicted = 0;
  int escalations_expected = 0;
  // By reason (index: common::v1::EscalationReason): expected, done, and
  // done with the expected reason.
  std::array<int, 6> reason_expected{};
  std::array<int, 6> reason_predicted{};
  std::array<int, 6> reason_correct{};
  // Explicit human requests and sensitive topics: expected, and escalated
  // for that reason on that turn.
  int human_expected = 0;
  int human_recalled = 0;
  int sensitive_expected = 0;
  int sensitive_recalled = 0;
  // Categories of intent cases: [expected][reported] (index:
  // common::v1::Category; 0 = none reported).
  std::array<std::array<int, 9>, 9> confusion{};
  // Reliability of the top guess's confidence over intent cases with a
  // guess, in tenths: cases, right ones and summed confidence per bin.
  std::array<int, 10> bin_cases{};
  std::array<int, 10> bin_correct{};
  std::array<double, 10> bin_confidence_sum{};
  // "line: text -> what happened (expected)" for every miss.
  std::vector<std::string> misses;

  double intent_accuracy() const;
  double category_accuracy() const;
  double escalation_precision() const;
  double escalation_recall() const;
  double human_recall() const;
  double sensitive_recall() const;
  double off_topic_rejection() const;
  // Adds another run's counts (cross-validation folds).
  void Add(const EvalReport& other);
};

// Runs `cases` through a Bot over `kb` (events in memory, a fake clock).
// Errors: InvalidArgument (a case names an unknown intent).
absl::StatusOr<EvalReport> Evaluate(std::shared_ptr<const KnowledgeBase> kb,
                                    const std::vector<EvalCase>& cases,
                                    const BotOptions& options);

// k-fold cross-validation over the base's own phrasings: phrasing i is in
// fold i % k; each fold is answered by the base rebuilt without it. Errors:
// InvalidArgument (k < 2), those of BuildModels.
absl::StatusOr<EvalReport> CrossValidate(const KnowledgeBase& kb, int k,
                                         const BotOptions& options);

// How the safety thresholds trade recall for precision, under k-fold
// cross-validation over the base's own phrasings (as CrossValidate): for
// each held-out phrasing the safety model's and the ranking's
// probabilities are recorded with the cues' findings, then detection of
// sensitive topics (a cue, the safety model's sensitive intents together
// reaching a threshold, or the ranking's) and of human requests (a cue,
// or the safety model reaching a threshold) is scored over a grid of
// thresholds. Returns the table bot_eval prints. Errors: those of
// CrossValidate.
absl::StatusOr<std::string> SweepSafetyThresholds(const KnowledgeBase& kb, int k,
                                                  const BotOptions& options);

// A pair of a held-out text and a training phrasing that are too alike.
struct NearCopy {
  int line = 0;  // of the held-out case
  std::string text;
  std::string training;
  double similarity = 0;
};

// The pairs of a case text and a phrasing of the base (examples, titles,
// human requests, out-of-scope texts) whose similarity reaches
// `threshold`. Similarity is the Ratcliff/Obershelp ratio of Python's
// difflib.SequenceMatcher (2 * matched / total length), computed on code
// points after lower-casing and dropping spaces and punctuation, so that
// a copy with other punctuation still counts.
std::vector<NearCopy> FindNearCopies(const KnowledgeBase& kb, const std::vector<EvalCase>& cases,
                                     double threshold);

// The similarity above, of two texts.
double Similarity(absl::string_view a, absl::string_view b);

// How the bot reads `text` on a fresh session, for studying a miss: its
// classifier tokens, the safety model's probabilities and the cues that
// match (by line), the intent model's and BM25's candidates, the mixed
// ranking, and what the bot did.
std::string Explain(std::shared_ptr<const KnowledgeBase> kb, const std::string& text,
                    const BotOptions& options);

// The report as printed by bot_eval.
std::string FormatReport(const EvalReport& report, bool with_misses);

}  // namespace switchboard::bot
