// Prints the bot's quality on the knowledge base's own phrasings (train),
// on the held-out development set (dev) and by k-fold cross-validation,
// after checking that no dev utterance copies a training phrasing: top-1
// intent accuracy, category accuracy and confusion, escalation precision
// and recall by reason, and the reliability of the confidence. Exits 1
// when a dev utterance is a near-copy (similarity >= --max_similarity).
//
// --score=FILE scores any other labelled file in the dev format (utterances
// written outside the repository) and prints only its figures; its
// near-copies of training phrasings are listed but do not fail the run, and
// the figures are printed again without them. --explain=TEXT (repeatable)
// prints how the bot reads a text instead: tokens, safety model and cues,
// both rankers, the mixed ranking and the outcome. --sweep prints how the
// safety thresholds trade recall for precision under cross-validation.
//
//   bazel run //services/bot:bot_eval [-- --misses] [-- --kb=FILE]
//       [-- --dev=FILE] [-- --folds=5] [-- --max_similarity=0.8]
//       [-- --score=FILE] [-- --explain=TEXT]... [-- --sweep]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "services/bot/default_models.h"
#include "services/bot/evaluation.h"

namespace switchboard::bot {
namespace {

int Run(int argc, char** argv) {
  bool misses = false;
  std::string kb_path = "services/bot/kb/intents.kb";
  std::string dev_path = "services/bot/eval/dev.tsv";
  int folds = 5;
  double max_similarity = 0.8;
  std::string score_path;
  std::vector<std::string> explain;
  bool sweep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool ok = true;
    if (arg == "--misses") {
      misses = true;
    } else if (absl::StartsWith(arg, "--kb=")) {
      kb_path = arg.substr(5);
    } else if (absl::StartsWith(arg, "--dev=")) {
      dev_path = arg.substr(6);
    } else if (absl::StartsWith(arg, "--folds=")) {
      ok = absl::SimpleAtoi(arg.substr(8), &folds) && (folds == 0 || folds >= 2);
    } else if (arg == "--sweep") {
      sweep = true;
    } else if (absl::StartsWith(arg, "--explain=")) {
      explain.push_back(arg.substr(10));
    } else if (absl::StartsWith(arg, "--score=")) {
      score_path = arg.substr(8);
      ok = !score_path.empty();
    } else if (absl::StartsWith(arg, "--max_similarity=")) {
      ok = absl::SimpleAtod(arg.substr(17), &max_similarity);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: bot_eval [--misses] [--kb=FILE] [--dev=FILE] [--folds=K (0: none, "
                   "else at least 2)] [--max_similarity=R] [--score=FILE] [--explain=TEXT]... [--sweep]\n");
      return 2;
    }
  }
  const BotOptions options;
  // The built-in base's models come with the binary; another base's are
  // trained here.
  auto kb = LoadKnowledgeBase(kb_path, options.models, DefaultModels());
  if (!kb.ok()) {
    std::fprintf(stderr, "bot_eval: %s\n", kb.status().ToString().c_str());
    return 1;
  }
  if (sweep) {
    absl::StatusOr<std::string> table = SweepSafetyThresholds(**kb, folds < 2 ? 5 : folds, options);
    if (!table.ok()) {
      std::fprintf(stderr, "bot_eval: %s\n", table.status().ToString().c_str());
      return 1;
    }
    std::printf("%s", table->c_str());
    return 0;
  }
  if (!explain.empty()) {
    for (const std::string& text : explain) {
      std::printf("%s\n", Explain(*kb, text, options).c_str());
    }
    return 0;
  }
  if (!score_path.empty()) {
    auto cases = ReadEvalCases(score_path);
    if (!cases.ok()) {
      std::fprintf(stderr, "bot_eval: %s\n", cases.status().ToString().c_str());
      return 1;
    }
    const std::vector<NearCopy> copies = FindNearCopies(**kb, *cases, max_similarity);
    std::printf("== %s: %zu utterances, %zu near-copies of training phrasings "
                "(similarity >= %.2f)\n",
                score_path.c_str(), cases->size(), copies.size(), max_similarity);
    for (const NearCopy& c : copies) {
      std::printf("  %s:%d: %.2f \"%s\" ~ \"%s\"\n", score_path.c_str(), c.line,
                  c.similarity, c.text.c_str(), c.training.c_str());
    }
    absl::StatusOr<EvalReport> r = Evaluate(*kb, *cases, options);
    if (!r.ok()) {
      std::fprintf(stderr, "bot_eval: %s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("\n%s", FormatReport(*r, misses).c_str());
    // The same without the near-copies: what the bot makes of phrasings
    // unlike any it was trained on.
    absl::flat_hash_set<int> copied;
    for (const NearCopy& c : copies) copied.insert(c.line);
    std::vector<EvalCase> novel;
    for (const EvalCase& c : *cases) {
      if (!copied.contains(c.line)) novel.push_back(c);
    }
    r = Evaluate(*kb, novel, options);
    if (!r.ok()) {
      std::fprintf(stderr, "bot_eval: %s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("\n== without the near-copies (%zu utterances)\n%s", novel.size(),
                FormatReport(*r, /*with_misses=*/false).c_str());
    return 0;
  }
  auto dev = ReadEvalCases(dev_path);
  if (!dev.ok()) {
    std::fprintf(stderr, "bot_eval: %s\n", dev.status().ToString().c_str());
    return 1;
  }
  const std::vector<NearCopy> copies = FindNearCopies(**kb, *dev, max_similarity);
  std::printf("== held-out check: %zu dev utterances against the base's phrasings, "
              "similarity >= %.2f: %zu near-copies\n",
              dev->size(), max_similarity, copies.size());
  for (const NearCopy& c : copies) {
    std::printf("  %s:%d: %.2f \"%s\" ~ \"%s\"\n", dev_path.c_str(), c.line, c.similarity,
                c.text.c_str(), c.training.c_str());
  }
  if (!copies.empty()) {
    std::fprintf(stderr, "bot_eval: FAILED: the dev set copies training phrasings\n");
    return 1;
  }
  auto report = [&](const char* title, const absl::StatusOr<EvalReport>& r) {
    if (!r.ok()) {
      std::fprintf(stderr, "bot_eval: %s: %s\n", title, r.status().ToString().c_str());
      std::exit(1);
    }
    std::printf("\n== %s\n%s", title, FormatReport(*r, misses).c_str());
  };
  report("train (the base's own phrasings, answered by the model trained on them)",
         Evaluate(*kb, TrainingCases(**kb), options));
  report("dev (held out, never trained on)", Evaluate(*kb, *dev, options));
  if (folds > 0) {
    const std::string title = std::to_string(folds) +
                              "-fold cross-validation (each phrasing answered by a model "
                              "trained without it)";
    report(title.c_str(), CrossValidate(**kb, folds, options));
  }
  return 0;
}

}  // namespace
}  // namespace switchboard::bot

int main(int argc, char** argv) { return switchboard::bot::Run(argc, argv); }
