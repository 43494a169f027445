#include "services/bot/evaluation.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "libs/clock/clock.h"
#include "prometheus/registry.h"

namespace switchboard::bot {
namespace {

double Ratio(int a, int b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; }

}  // namespace

double EvalReport::intent_accuracy() const { return Ratio(intent_correct, intent_cases); }
double EvalReport::category_accuracy() const { return Ratio(category_correct, intent_cases); }
double EvalReport::escalation_precision() const {
  return Ratio(escalations_correct, escalations_predicted);
}
double EvalReport::escalation_recall() const {
  return Ratio(escalations_correct, escalations_expected);
}
double EvalReport::off_topic_rejection() const { return Ratio(off_topic_rejected, off_topic); }

absl::StatusOr<std::vector<EvalCase>> ReadEvalCases(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat(path, ": cannot be read"));
  std::vector<EvalCase> cases;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != 4 || (fields[3] != "yes" && fields[3] != "no")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", number, ": expected session<TAB>text<TAB>intent<TAB>yes|no"));
    }
    cases.push_back({number, fields[0], fields[1], fields[2] == "-" ? "" : fields[2],
                     fields[3] == "yes"});
  }
  return cases;
}

absl::StatusOr<EvalReport> Evaluate(const std::string& kb_path,
                                    const std::vector<EvalCase>& cases,
                                    const BotOptions& options) {
  prometheus::Registry registry;
  BotMetrics metrics(registry);
  MemoryEventLog events(0);
  FakeClock clock;
  Bot bot(kb_path, &events, &clock, &metrics, options);
  if (absl::StatusOr<Bot::ReloadResult> loaded = bot.Reload("bot_eval"); !loaded.ok()) {
    return loaded.status();
  }
  std::shared_ptr<const KnowledgeBase> kb = bot.knowledge_base();
  EvalReport report;
  for (const EvalCase& c : cases) {
    if (!c.intent.empty() && kb->Find(c.intent) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", c.line, ": unknown intent '", c.intent, "'"));
    }
  }
  std::string previous_session;
  for (const EvalCase& c : cases) {
    const std::string session =
        c.session == "-" ? absl::StrCat("eval-", c.line) : absl::StrCat("eval-", c.session);
    v1::AnswerRequest request;
    request.set_session_id(session);
    request.set_turn_id(absl::StrCat("t", c.line));
    request.set_text(c.text);
    request.set_channel(common::v1::CHANNEL_CHAT);
    v1::AnswerResponse response;
    absl::Status status;
    bot.Answer(request, &response, [&](absl::Status s) { status = s; });
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("line ", c.line, ": ", status.ToString()));
    }
    ++report.cases;
    const std::string top =
        response.intent_guesses().empty() ? "" : response.intent_guesses(0).intent_id();
    const float confidence =
        response.intent_guesses().empty() ? 0.f : response.intent_guesses(0).confidence();
    const bool escalated = response.outcome() == v1::ANSWER_OUTCOME_ESCALATED;
    bool right;
    if (!c.intent.empty()) {
      ++report.intent_cases;
      right = top == c.intent;
      if (right) ++report.intent_correct;
      if (response.category() == kb->Find(c.intent)->category) ++report.category_correct;
      if (response.outcome() == v1::ANSWER_OUTCOME_CLARIFIED) ++report.clarified;
    } else {
      right = response.outcome() == v1::ANSWER_OUTCOME_NOT_UNDERSTOOD || escalated;
      if (!c.escalate) {
        ++report.off_topic;
        if (right) ++report.off_topic_rejected;
      }
    }
    if (!c.intent.empty() && !response.intent_guesses().empty()) {
      const int bin = std::min(9, static_cast<int>(confidence * 10));
      ++report.bin_cases[bin];
      report.bin_confidence_sum[bin] += confidence;
      if (top == c.intent) ++report.bin_correct[bin];
    }
    if (c.escalate) ++report.escalations_expected;
    if (escalated) ++report.escalations_predicted;
    if (c.escalate && escalated) ++report.escalations_correct;
    if (!right || c.escalate != escalated) {
      report.misses.push_back(absl::StrFormat(
          "%d: %s -> %s %s %.2f (expected %s%s)", c.line, c.text,
          v1::AnswerOutcome_Name(response.outcome()).substr(sizeof("ANSWER_OUTCOME_") - 1),
          top.empty() ? "-" : top, confidence, c.intent.empty() ? "-" : c.intent,
          c.escalate ? ", escalate" : ""));
    }
  }
  return report;
}

std::string FormatReport(const EvalReport& r, bool with_misses) {
  std::string out = absl::StrFormat(
      "utterances:             %d\n"
      "top-1 intent accuracy:  %.3f (%d/%d)\n"
      "category accuracy:      %.3f (%d/%d)\n"
      "escalation precision:   %.3f (%d/%d)\n"
      "escalation recall:      %.3f (%d/%d)\n"
      "off-topic not answered: %.3f (%d/%d)\n"
      "clarified (of intent cases): %d\n"
      "reliability of the top guess's confidence (bin: cases, mean confidence, "
      "fraction right):\n",
      r.cases, r.intent_accuracy(), r.intent_correct, r.intent_cases, r.category_accuracy(),
      r.category_correct, r.intent_cases, r.escalation_precision(), r.escalations_correct,
      r.escalations_predicted, r.escalation_recall(), r.escalations_correct,
      r.escalations_expected, r.off_topic_rejection(), r.off_topic_rejected, r.off_topic,
      r.clarified);
  for (int b = 0; b < 10; ++b) {
    if (r.bin_cases[b] == 0) continue;
    absl::StrAppendFormat(&out, "  [%.1f, %.1f): %3d  %.2f  %.2f\n", b / 10.0, (b + 1) / 10.0,
                          r.bin_cases[b], r.bin_confidence_sum[b] / r.bin_cases[b],
                          Ratio(r.bin_correct[b], r.bin_cases[b]));
  }
  if (with_misses) {
    absl::StrAppend(&out, "misses:\n");
    for (const std::string& m : r.misses) absl::StrAppend(&out, "  ", m, "\n");
  }
  return out;
}

}  // namespace switchboard::bot
