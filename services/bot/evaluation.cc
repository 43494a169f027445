#include "services/bot/evaluation.h"

#include <algorithm>
#include <fstream>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "libs/clock/clock.h"
#include "prometheus/registry.h"
#include "services/bot/ranker.h"
#include "services/bot/safety.h"

namespace switchboard::bot {
namespace {

using common::v1::EscalationReason;

double Ratio(int a, int b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; }

EscalationReason ReasonOf(Expected e) {
  switch (e) {
    case Expected::kHuman:
    case Expected::kComplaint:
      return common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED;
    case Expected::kSensitive:
      return common::v1::ESCALATION_REASON_SENSITIVE_TOPIC;
    case Expected::kNotUnderstood:
      return common::v1::ESCALATION_REASON_NOT_UNDERSTOOD;
    case Expected::kNone:
      break;
  }
  return common::v1::ESCALATION_REASON_UNSPECIFIED;
}

const char* ExpectedName(Expected e) {
  switch (e) {
    case Expected::kHuman:
      return "human";
    case Expected::kComplaint:
      return "complaint";
    case Expected::kSensitive:
      return "sensitive";
    case Expected::kNotUnderstood:
      return "not_understood";
    case Expected::kNone:
      break;
  }
  return "-";
}

std::string ShortCategory(int category) {
  if (category == 0) return "none";
  std::string name = common::v1::Category_Name(static_cast<common::v1::Category>(category))
                         .substr(sizeof("CATEGORY_") - 1);
  return absl::AsciiStrToLower(name.substr(0, 8));
}

// Code points of `text` that carry meaning: ASCII letters and digits
// (lower-cased) and every non-ASCII letter or ideograph; spaces, ASCII and
// CJK punctuation are dropped.
std::u32string Normalize(absl::string_view text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    char32_t cp;
    int length;
    if (b < 0x80) {
      cp = b;
      length = 1;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F;
      length = 2;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F;
      length = 3;
    } else {
      cp = b & 0x07;
      length = 4;
    }
    for (int k = 1; k < length && i + k < text.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    i += length;
    if (cp < 0x80) {
      if (absl::ascii_isalnum(static_cast<char>(cp))) {
        out.push_back(absl::ascii_tolower(static_cast<char>(cp)));
      }
    } else if (!(cp >= 0x2000 && cp <= 0x206F) && !(cp >= 0x3000 && cp <= 0x303F) &&
               !(cp >= 0xFF00 && cp <= 0xFF20)) {
      out.push_back(cp);
    }
  }
  return out;
}

// Ratcliff/Obershelp: the longest common block, then the same on each side
// of it, recursively; returns the matched length.
int Matched(const std::u32string& a, size_t a_lo, size_t a_hi, const std::u32string& b,
            size_t b_lo, size_t b_hi) {
  if (a_lo >= a_hi || b_lo >= b_hi) return 0;
  size_t best = 0, best_a = a_lo, best_b = b_lo;
  std::vector<size_t> previous(b_hi - b_lo + 1, 0), current(b_hi - b_lo + 1, 0);
  for (size_t i = a_lo; i < a_hi; ++i) {
    for (size_t j = b_lo; j < b_hi; ++j) {
      const size_t k = j - b_lo + 1;
      current[k] = a[i] == b[j] ? previous[k - 1] + 1 : 0;
      if (current[k] > best) {
        best = current[k];
        best_a = i + 1 - best;
        best_b = j + 1 - best;
      }
    }
    std::swap(previous, current);
  }
  if (best == 0) return 0;
  return static_cast<int>(best) + Matched(a, a_lo, best_a, b, b_lo, best_b) +
         Matched(a, best_a + best, a_hi, b, best_b + best, b_hi);
}

double NormalizedSimilarity(const std::u32string& a, const std::u32string& b) {
  if (a.empty() || b.empty()) return 0;
  return 2.0 * Matched(a, 0, a.size(), b, 0, b.size()) / (a.size() + b.size());
}

// Upper bound of the similarity from the shared code points alone
// (difflib's quick_ratio); both sorted.
double QuickBound(const std::u32string& a, const std::u32string& b) {
  size_t i = 0, j = 0, shared = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) {
      ++shared;
      ++i;
      ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return a.empty() || b.empty() ? 0 : 2.0 * shared / (a.size() + b.size());
}

}  // namespace

double EvalReport::intent_accuracy() const { return Ratio(intent_correct, intent_cases); }
double EvalReport::category_accuracy() const { return Ratio(category_correct, category_cases); }
double EvalReport::escalation_precision() const {
  return Ratio(escalations_correct, escalations_predicted);
}
double EvalReport::escalation_recall() const {
  return Ratio(escalations_correct, escalations_expected);
}
double EvalReport::human_recall() const { return Ratio(human_recalled, human_expected); }
double EvalReport::sensitive_recall() const {
  return Ratio(sensitive_recalled, sensitive_expected);
}
double EvalReport::off_topic_rejection() const { return Ratio(off_topic_rejected, off_topic); }

void EvalReport::Add(const EvalReport& o) {
  cases += o.cases;
  intent_cases += o.intent_cases;
  intent_correct += o.intent_correct;
  category_cases += o.category_cases;
  category_correct += o.category_correct;
  clarified += o.clarified;
  off_topic += o.off_topic;
  off_topic_rejected += o.off_topic_rejected;
  escalations_correct += o.escalations_correct;
  escalations_predicted += o.escalations_predicted;
  escalations_expected += o.escalations_expected;
  for (size_t i = 0; i < reason_expected.size(); ++i) {
    reason_expected[i] += o.reason_expected[i];
    reason_predicted[i] += o.reason_predicted[i];
    reason_correct[i] += o.reason_correct[i];
  }
  human_expected += o.human_expected;
  human_recalled += o.human_recalled;
  sensitive_expected += o.sensitive_expected;
  sensitive_recalled += o.sensitive_recalled;
  for (size_t i = 0; i < confusion.size(); ++i) {
    for (size_t j = 0; j < confusion[i].size(); ++j) confusion[i][j] += o.confusion[i][j];
  }
  for (size_t b = 0; b < bin_cases.size(); ++b) {
    bin_cases[b] += o.bin_cases[b];
    bin_correct[b] += o.bin_correct[b];
    bin_confidence_sum[b] += o.bin_confidence_sum[b];
  }
  misses.insert(misses.end(), o.misses.begin(), o.misses.end());
}

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
    Expected escalation = Expected::kNone;
    bool known = fields.size() == 4;
    if (known) {
      const std::string& e = fields[3];
      if (e == "human") {
        escalation = Expected::kHuman;
      } else if (e == "complaint") {
        escalation = Expected::kComplaint;
      } else if (e == "sensitive") {
        escalation = Expected::kSensitive;
      } else if (e == "not_understood") {
        escalation = Expected::kNotUnderstood;
      } else {
        known = e == "-";
      }
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", number,
          ": expected session<TAB>text<TAB>intent<TAB>-|human|complaint|sensitive|not_understood"));
    }
    cases.push_back({number, fields[0], fields[1], fields[2] == "-" ? "" : fields[2], escalation});
  }
  return cases;
}

std::vector<EvalCase> TrainingCases(const KnowledgeBase& kb) {
  std::vector<EvalCase> cases;
  for (const IntentSpec& intent : kb.intents) {
    const Expected escalation = intent.sensitive  ? Expected::kSensitive
                                : intent.handoff ? Expected::kComplaint
                                                 : Expected::kNone;
    for (const auto& [language, text] : intent.examples) {
      cases.push_back({0, "-", text, intent.id, escalation});
    }
  }
  for (const Phrasing& p : kb.human_requests) {
    cases.push_back({p.line, "-", p.text, "", Expected::kHuman});
  }
  for (const Phrasing& p : kb.out_of_scope) {
    cases.push_back({p.line, "-", p.text, "", Expected::kNone});
  }
  return cases;
}

absl::StatusOr<EvalReport> Evaluate(std::shared_ptr<const KnowledgeBase> kb,
                                    const std::vector<EvalCase>& cases,
                                    const BotOptions& options) {
  for (const EvalCase& c : cases) {
    if (!c.intent.empty() && kb->Find(c.intent) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", c.line, ": unknown intent '", c.intent, "'"));
    }
  }
  prometheus::Registry registry;
  BotMetrics metrics(registry);
  MemoryEventLog events(0);
  FakeClock clock;
  Bot bot("", &events, &clock, &metrics, options);
  bot.UseKnowledgeBase(kb);
  EvalReport report;
  int fresh = 0;
  for (const EvalCase& c : cases) {
    const std::string session = c.session == "-" ? absl::StrCat("fresh-", ++fresh)
                                                 : absl::StrCat("dialogue-", c.session);
    v1::AnswerRequest request;
    request.set_session_id(session);
    request.set_turn_id(absl::StrCat("t", fresh, "-", c.line));
    request.set_text(c.text);
    request.set_channel(common::v1::CHANNEL_CHAT);
    v1::AnswerResponse response;
    absl::Status status;
    bot.Answer(request, &response, [&](absl::Status s) { status = s; });
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("line ", c.line, ": ", status.ToString()));
    }
    ++report.cases;
    const bool escalated = response.outcome() == v1::ANSWER_OUTCOME_ESCALATED;
    const EscalationReason reason = escalated ? response.handoff().reason()
                                              : common::v1::ESCALATION_REASON_UNSPECIFIED;
    // The intent the bot acted on: answered, or handed over about.
    std::string acted;
    if (response.outcome() == v1::ANSWER_OUTCOME_ANSWERED) {
      acted = response.answered_intent_id();
    } else if (escalated && !response.handoff().intent_guesses().empty()) {
      acted = response.handoff().intent_guesses(0).intent_id();
    }
    const float confidence =
        response.intent_guesses().empty() ? 0.f : response.intent_guesses(0).confidence();
    bool right = true;
    if (!c.intent.empty()) {
      ++report.intent_cases;
      const IntentSpec* expected = kb->Find(c.intent);
      const bool intent_right = acted == c.intent;
      right = intent_right;
      if (intent_right) ++report.intent_correct;
      if (!expected->small_talk) {
        ++report.category_cases;
        ++report.confusion[expected->category][response.category()];
        if (response.category() == expected->category) ++report.category_correct;
      }
      if (response.outcome() == v1::ANSWER_OUTCOME_CLARIFIED) ++report.clarified;
      if (!response.intent_guesses().empty()) {
        const int bin = std::min(9, static_cast<int>(confidence * 10));
        ++report.bin_cases[bin];
        report.bin_confidence_sum[bin] += confidence;
        if (response.intent_guesses(0).intent_id() == c.intent) ++report.bin_correct[bin];
      }
    } else if (c.escalation == Expected::kNone) {
      ++report.off_topic;
      right = response.outcome() == v1::ANSWER_OUTCOME_NOT_UNDERSTOOD;
      if (right) ++report.off_topic_rejected;
    }
    const EscalationReason wanted = ReasonOf(c.escalation);
    if (wanted != common::v1::ESCALATION_REASON_UNSPECIFIED) {
      ++report.escalations_expected;
      ++report.reason_expected[wanted];
      if (escalated) ++report.escalations_correct;
      if (reason == wanted) ++report.reason_correct[wanted];
      if (reason != wanted) right = false;
    } else if (escalated) {
      right = false;
    }
    if (escalated) {
      ++report.escalations_predicted;
      ++report.reason_predicted[reason];
    }
    if (c.escalation == Expected::kHuman) {
      ++report.human_expected;
      if (reason == wanted) ++report.human_recalled;
    }
    if (c.escalation == Expected::kSensitive) {
      ++report.sensitive_expected;
      if (reason == wanted) ++report.sensitive_recalled;
    }
    if (!right) {
      report.misses.push_back(absl::StrFormat(
          "%d: %s -> %s %s %.2f (expected %s, %s)", c.line, c.text,
          v1::AnswerOutcome_Name(response.outcome()).substr(sizeof("ANSWER_OUTCOME_") - 1),
          acted.empty() ? "-" : acted, confidence, c.intent.empty() ? "-" : c.intent,
          ExpectedName(c.escalation)));
    }
  }
  return report;
}

namespace {

// Rebuilds `kb` without fold `fold` of `k` (phrasing i is in fold i % k)
// and calls `held_out` with the rebuilt base and the phrasings left out.
absl::Status ForEachFold(
    const KnowledgeBase& kb, int k,
    const ModelOptions& models,
    const std::function<absl::Status(std::shared_ptr<const KnowledgeBase>,
                                      const std::vector<EvalCase>&)>& held_out_fn) {
  if (k < 2) return absl::InvalidArgumentError("k: at least 2 folds");
  for (int fold = 0; fold < k; ++fold) {
    auto trained = std::make_shared<KnowledgeBase>(kb);
    trained->model_key.clear();
    std::vector<EvalCase> held_out;
    int i = 0;
    auto keep = [&](const EvalCase& as_case) {
      if (i++ % k != fold) return true;
      held_out.push_back(as_case);
      return false;
    };
    for (IntentSpec& intent : trained->intents) {
      const Expected escalation = intent.sensitive  ? Expected::kSensitive
                                  : intent.handoff ? Expected::kComplaint
                                                   : Expected::kNone;
      std::vector<std::pair<Language, std::string>> kept;
      for (auto& example : intent.examples) {
        if (keep({0, "-", example.second, intent.id, escalation})) kept.push_back(example);
      }
      intent.examples = std::move(kept);
    }
    auto filter = [&](std::vector<Phrasing>& phrasings, Expected escalation) {
      std::vector<Phrasing> kept;
      for (Phrasing& p : phrasings) {
        if (keep({p.line, "-", p.text, "", escalation})) kept.push_back(std::move(p));
      }
      phrasings = std::move(kept);
    };
    filter(trained->human_requests, Expected::kHuman);
    filter(trained->out_of_scope, Expected::kNone);
    if (absl::Status s = BuildModels(*trained, models); !s.ok()) return s;
    if (absl::Status s = held_out_fn(trained, held_out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EvalReport> CrossValidate(const KnowledgeBase& kb, int k,
                                         const BotOptions& options) {
  EvalReport total;
  absl::Status status = ForEachFold(
      kb, k, options.models,
      [&](std::shared_ptr<const KnowledgeBase> trained, const std::vector<EvalCase>& held_out) {
        absl::StatusOr<EvalReport> report = Evaluate(trained, held_out, options);
        if (!report.ok()) return report.status();
        total.Add(*report);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return total;
}

absl::StatusOr<std::string> SweepSafetyThresholds(const KnowledgeBase& kb, int k,
                                                  const BotOptions& options) {
  struct Signals {
    Expected expected = Expected::kNone;
    bool sensitive_cue = false;
    bool human_cue = false;
    float safety_sensitive = 0;
    float safety_human = 0;
    float ranking_sensitive = 0;
  };
  std::vector<Signals> all;
  absl::Status status = ForEachFold(
      kb, k, options.models,
      [&](std::shared_ptr<const KnowledgeBase> trained, const std::vector<EvalCase>& held_out) {
        for (const EvalCase& c : held_out) {
          const Analysis analysis = Analyze(c.text, &trained->lexicon);
          const SafetyVerdict verdict = CheckSafety(*trained, analysis, options.safety);
          Signals s;
          s.expected = c.escalation;
          s.sensitive_cue = verdict.sensitive_by_cue();
          s.human_cue = verdict.human_by_cue;
          s.safety_sensitive = verdict.sensitive_probability;
          s.safety_human = verdict.human_probability;
          const Ranking ranking =
              RankIntents(*trained, analysis, [](int) { return 1.f; }, options.rank);
          for (const RankedIntent& r : ranking.intents) {
            if (trained->intents[r.intent].sensitive) s.ranking_sensitive += r.confidence;
          }
          all.push_back(s);
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  std::string out = absl::StrFormat(
      "sensitive topics: a cue, or the safety model >= S, or the ranking >= R "
      "(%d-fold, %zu phrasings)\n  %-6s", k, all.size(), "S \\ R");
  const std::vector<float> grid = {0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 2.f};
  for (float r : grid) {
    absl::StrAppend(&out, r > 1 ? "           never" : absl::StrFormat("        %.1f     ", r));
  }
  absl::StrAppend(&out, "\n");
  for (float t : grid) {
    absl::StrAppend(&out, t > 1 ? "  never " : absl::StrFormat("  %.1f   ", t));
    for (float r : grid) {
      int expected = 0, predicted = 0, right = 0;
      for (const Signals& s : all) {
        const bool is = s.expected == Expected::kSensitive;
        const bool found = s.sensitive_cue || s.safety_sensitive >= t || s.ranking_sensitive >= r;
        expected += is;
        predicted += found;
        right += is && found;
      }
      absl::StrAppendFormat(&out, "  P %.3f R %.3f", Ratio(right, predicted),
                            Ratio(right, expected));
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "sensitive topics: a cue, or the mean of the two models >= M\n");
  for (float t : grid) {
    int expected = 0, predicted = 0, right = 0;
    for (const Signals& s : all) {
      const bool is = s.expected == Expected::kSensitive;
      const bool found = s.sensitive_cue || (s.safety_sensitive + s.ranking_sensitive) / 2 >= t;
      expected += is;
      predicted += found;
      right += is && found;
    }
    absl::StrAppendFormat(&out, "  M %s: precision %.3f recall %.3f (%d/%d, %d found)\n",
                          t > 1 ? "never" : absl::StrFormat("%.1f", t), Ratio(right, predicted),
                          Ratio(right, expected), right, expected, predicted);
  }
  absl::StrAppend(&out, "human requests: a cue, or the safety model >= H\n");
  for (float t : grid) {
    int expected = 0, predicted = 0, right = 0;
    for (const Signals& s : all) {
      const bool is = s.expected == Expected::kHuman;
      const bool found = s.human_cue || s.safety_human >= t;
      expected += is;
      predicted += found;
      right += is && found;
    }
    absl::StrAppendFormat(&out, "  H %s: precision %.3f recall %.3f (%d/%d, %d found)\n",
                          t > 1 ? "never" : absl::StrFormat("%.1f", t), Ratio(right, predicted),
                          Ratio(right, expected), right, expected, predicted);
  }
  return out;
}

double Similarity(absl::string_view a, absl::string_view b) {
  return NormalizedSimilarity(Normalize(a), Normalize(b));
}

std::vector<NearCopy> FindNearCopies(const KnowledgeBase& kb, const std::vector<EvalCase>& cases,
                                     double threshold) {
  struct Text {
    std::string original;
    std::u32string normalized;
    std::u32string sorted;
  };
  auto prepare = [](const std::string& text) {
    Text t{text, Normalize(text), {}};
    t.sorted = t.normalized;
    std::sort(t.sorted.begin(), t.sorted.end());
    return t;
  };
  std::vector<Text> training;
  for (const IntentSpec& intent : kb.intents) {
    for (const auto& example : intent.examples) training.push_back(prepare(example.second));
    for (const std::string& title : intent.titles) training.push_back(prepare(title));
  }
  for (const Phrasing& p : kb.human_requests) training.push_back(prepare(p.text));
  for (const Phrasing& p : kb.out_of_scope) training.push_back(prepare(p.text));
  std::vector<NearCopy> found;
  for (const EvalCase& c : cases) {
    const Text held_out = prepare(c.text);
    if (held_out.normalized.empty()) continue;
    for (const Text& t : training) {
      const size_t shorter = std::min(held_out.normalized.size(), t.normalized.size());
      const size_t total = held_out.normalized.size() + t.normalized.size();
      if (t.normalized.empty() || 2.0 * shorter / total < threshold) continue;
      if (QuickBound(held_out.sorted, t.sorted) < threshold) continue;
      const double similarity = NormalizedSimilarity(held_out.normalized, t.normalized);
      if (similarity >= threshold) found.push_back({c.line, c.text, t.original, similarity});
    }
  }
  return found;
}

std::string Explain(std::shared_ptr<const KnowledgeBase> kb, const std::string& text,
                    const BotOptions& options) {
  const Analysis analysis = Analyze(text, &kb->lexicon);
  std::string out = absl::StrCat("text:   ", text, "\ntokens: ", analysis.tokens, "\n");
  auto name = [&](int intent) {
    return intent >= 0 && intent < kb->NoIntent() ? kb->intents[intent].id
                                                  : std::string("(none)");
  };
  if (kb->safety_model != nullptr) {
    absl::StrAppend(&out, "safety model:");
    for (const auto& [label, p] : kb->safety_model->Predict(analysis.tokens, 4)) {
      const std::string what = label == KnowledgeBase::kSafeLabel    ? "safe"
                               : label == KnowledgeBase::kHumanLabel ? "human"
                                   : name(kb->escalating[label - KnowledgeBase::kHumanLabel - 1]);
      absl::StrAppendFormat(&out, " %s %.2f", what, p);
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "cues matched:");
  for (const SafetyCue& cue : kb->cues) {
    if (cue.cue.Matches(analysis)) {
      absl::StrAppend(&out, " line ", cue.line, " (", cue.intent < 0 ? "human" : name(cue.intent),
                      ")");
    }
  }
  const SafetyVerdict verdict = CheckSafety(*kb, analysis, options.safety);
  absl::StrAppendFormat(&out, "\nverdict: human %d, sensitive %d%s, handoff %s%s\n",
                        verdict.human, verdict.sensitive,
                        verdict.sensitive_by_cue() ? " (cue)" : "", name(verdict.handoff),
                        verdict.handoff_by_cue ? " (cue)" : "");
  if (kb->intent_model != nullptr) {
    absl::StrAppend(&out, "intent model:");
    for (const auto& [label, p] : kb->intent_model->Predict(analysis.tokens, 5)) {
      absl::StrAppendFormat(&out, " %s %.2f", name(label), p);
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "bm25:");
  for (const Candidate& c : kb->index.Rank(analysis.terms, 3, [](int) { return 1.f; })) {
    absl::StrAppendFormat(&out, " %s %.2f (coverage %.2f)", name(c.intent), c.score, c.coverage);
  }
  const Ranking ranking = RankIntents(*kb, analysis, [](int) { return 1.f; }, options.rank);
  absl::StrAppendFormat(&out, "\nranking: none %.2f", ranking.none);
  for (size_t i = 0; i < ranking.intents.size() && i < 5; ++i) {
    absl::StrAppendFormat(&out, " %s %.2f", name(ranking.intents[i].intent),
                          ranking.intents[i].confidence);
  }
  absl::StatusOr<EvalReport> report = Evaluate(kb, {{0, "-", text, "", Expected::kNone}}, options);
  absl::StrAppend(&out, "\nbot: ",
                  !report.ok()             ? report.status().ToString()
                  : report->misses.empty() ? std::string("NOT_UNDERSTOOD")
                                           : report->misses[0].substr(report->misses[0].find("-> ")),
                  "\n");
  return out;
}

std::string FormatReport(const EvalReport& r, bool with_misses) {
  std::string out = absl::StrFormat(
      "utterances:                  %d\n"
      "top-1 intent accuracy:       %.3f (%d/%d; acted on the right intent)\n"
      "category accuracy:           %.3f (%d/%d)\n"
      "clarified (of intent cases): %d\n"
      "escalation precision:        %.3f (%d/%d)\n"
      "escalation recall:           %.3f (%d/%d)\n"
      "explicit human requests:     recall %.3f (%d/%d)\n"
      "sensitive topics:            recall %.3f (%d/%d)\n"
      "off-topic and noise not answered: %.3f (%d/%d)\n",
      r.cases, r.intent_accuracy(), r.intent_correct, r.intent_cases, r.category_accuracy(),
      r.category_correct, r.category_cases, r.clarified, r.escalation_precision(),
      r.escalations_correct, r.escalations_predicted, r.escalation_recall(),
      r.escalations_correct, r.escalations_expected, r.human_recall(), r.human_recalled,
      r.human_expected, r.sensitive_recall(), r.sensitive_recalled, r.sensitive_expected,
      r.off_topic_rejection(), r.off_topic_rejected, r.off_topic);
  absl::StrAppend(&out, "escalation by reason (precision, recall):\n");
  for (int reason = 1; reason < static_cast<int>(r.reason_expected.size()); ++reason) {
    if (r.reason_expected[reason] == 0 && r.reason_predicted[reason] == 0) continue;
    absl::StrAppendFormat(
        &out, "  %-20s %.3f (%d/%d)  %.3f (%d/%d)\n",
        absl::AsciiStrToLower(
            common::v1::EscalationReason_Name(static_cast<EscalationReason>(reason))
                .substr(sizeof("ESCALATION_REASON_") - 1)),
        Ratio(r.reason_correct[reason], r.reason_predicted[reason]), r.reason_correct[reason],
        r.reason_predicted[reason], Ratio(r.reason_correct[reason], r.reason_expected[reason]),
        r.reason_correct[reason], r.reason_expected[reason]);
  }
  absl::StrAppend(&out, "categories (rows expected, columns reported):\n  ", std::string(9, ' '));
  for (int c = 0; c < 9; ++c) absl::StrAppendFormat(&out, "%9s", ShortCategory(c));
  absl::StrAppend(&out, "\n");
  for (int e = 1; e < 9; ++e) {
    absl::StrAppendFormat(&out, "  %-9s", ShortCategory(e));
    for (int c = 0; c < 9; ++c) absl::StrAppendFormat(&out, "%9d", r.confusion[e][c]);
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out,
                  "reliability of the top guess's confidence (bin: cases, mean confidence, "
                  "fraction right):\n");
  for (int b = 0; b < 10; ++b) {
    if (r.bin_cases[b] == 0) continue;
    absl::StrAppendFormat(&out, "  [%.1f, %.1f): %4d  %.2f  %.2f\n", b / 10.0, (b + 1) / 10.0,
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
